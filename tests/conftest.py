"""Shared fixtures: real assets (BPE file, trained SentencePiece model) and a local Ray cluster."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.assets.build_assets import cl100k_bpe_path, train_sentencepiece

REPO_ROOT = Path(__file__).resolve().parent.parent

# Ray Data progress bars are noise in test logs.
os.environ.setdefault("RAY_DATA_DISABLE_PROGRESS_BARS", "1")


@pytest.fixture(scope="session")
def bpe_path() -> Path:
    """The pinned real-sized cl100k_base BPE file (sha256 checked), a Llama3 stand-in."""
    return cl100k_bpe_path()


@pytest.fixture(scope="session")
def spm_path(tmp_path_factory) -> Path:
    """A SentencePiece model trained from text in this test session."""
    return train_sentencepiece(tmp_path_factory.mktemp("spm"))


@pytest.fixture(scope="session")
def ray_cluster():
    """A real local Ray cluster with 2 CPUs, shared by the whole session.

    Tests that need Ray take this fixture; it starts a fresh local cluster (never one that
    `ray start` left behind) and shuts it down at the end of the session.
    """
    import ray

    if ray.is_initialized():
        ray.shutdown()
    ray.init(
        address="local",
        num_cpus=2,
        include_dashboard=False,
        log_to_driver=False,
        configure_logging=False,
        runtime_env={"env_vars": {"RAY_DATA_DISABLE_PROGRESS_BARS": "1"}},
    )
    yield ray
    ray.shutdown()
