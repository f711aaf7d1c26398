"""Package re-exports: every public name resolves, IDEs see every one, light imports stay light."""

from __future__ import annotations

import importlib
import subprocess
import sys
from pathlib import Path

import pytest

from raytune_chat._lazy import type_checking_imports

LAZY_PACKAGES = [
    "raytune_chat.data",
    "raytune_chat.datasets",
    "raytune_chat.models.code_llama2",
    "raytune_chat.models.llama2",
    "raytune_chat.models.llama3",
    "raytune_chat.models.llama3_1",
    "raytune_chat.models.llama3_2",
    "raytune_chat.models.llama3_3",
    "raytune_chat.models.mistral",
    "raytune_chat.modules",
]


@pytest.mark.parametrize("name", LAZY_PACKAGES)
def test_every_exported_name_resolves_and_the_lazy_ones_are_real_imports(name):
    package = importlib.import_module(name)
    lazy = type_checking_imports(Path(package.__file__).read_text())
    assert lazy, f"{name} has no `if TYPE_CHECKING:` imports"
    assert set(lazy) <= set(package.__all__)
    for exported in package.__all__:
        assert getattr(package, exported) is not None
    for attr, module in lazy.items():
        assert getattr(package, attr) is getattr(importlib.import_module(module), attr)
    with pytest.raises(AttributeError, match="no attribute 'not_a_name'"):
        package.not_a_name  # noqa: B018


_PROBE = """
import pickle, sys
from raytune_chat.config import asset_path
from raytune_chat.models.llama3 import llama3_tokenizer
import raytune_chat.datasets, raytune_chat.datasets._datasource, raytune_chat.datasets._ledger_actor
blob = pickle.dumps(llama3_tokenizer(str(asset_path("cl100k_base"))))
print("torch" in sys.modules)
from raytune_chat.data import PaddedCollate
print("torch" in sys.modules)
"""


def test_tokenizing_processes_do_not_import_torch():
    # Ray Data read tasks, tokenizer actors and the ledger actor import only these modules;
    # torch would cost each of them ~1.3 CPU s and 130 MB (benchmarks/RESULTS.md).
    out = subprocess.run(
        [sys.executable, "-c", _PROBE], capture_output=True, text=True, check=True, timeout=300
    )
    assert out.stdout.split() == ["False", "True"]
