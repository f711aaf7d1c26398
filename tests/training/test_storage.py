"""A run's outputs in `ray.storage_path` (no Ray): what rank 0 copies, what the driver reads
back, and the summary written when rank 0 ran on another node than the driver."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from raytune_chat.config import ConfigError
from raytune_chat.training import RaySettings, RecipeSettings, parse_settings, write_summary
from raytune_chat.training._storage import copy_outputs_to_storage, output_in_storage

SECTIONS = {k: {} for k in ("model", "tokenizer", "dataset", "optimizer", "loss")}


def _settings(tmp_path: Path, node: str) -> RecipeSettings:
    """A run whose output_dir is `node`'s own folder and whose storage is shared."""
    ray = RaySettings(storage_path=str(tmp_path / "storage"), name="run")
    return RecipeSettings(output_dir=str(tmp_path / node / "out"), ray=ray)


def _files(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


def test_rank_zero_copies_its_outputs_but_not_checkpoints_or_token_stores(tmp_path):
    settings = _settings(tmp_path, "node_b")
    out = Path(settings.output_dir)
    for name in ("metrics.jsonl", "epoch_0/adapter_model.safetensors", "logs/log_1.jsonl"):
        (out / name).parent.mkdir(parents=True, exist_ok=True)
        (out / name).write_text(name)
    for name in ("ray_results/run/checkpoint_0/train_state.pt", "token_cache/store/part-0"):
        (out / name).parent.mkdir(parents=True, exist_ok=True)
        (out / name).write_text("not an output")
    merged = tmp_path / "node_b" / "weights" / "epoch_0"  # a checkpointer folder elsewhere
    merged.mkdir(parents=True)
    (merged / "model-00001-of-00001.safetensors").write_text("merged")

    uri = copy_outputs_to_storage(settings, [merged, out / "epoch_0"])
    assert uri == f"{tmp_path}/storage/run/outputs"
    assert _files(Path(uri)) == [
        "epoch_0/adapter_model.safetensors",
        "epoch_0/model-00001-of-00001.safetensors",
        "logs/log_1.jsonl",
        "metrics.jsonl",
    ]
    assert (Path(uri) / "metrics.jsonl").read_text() == "metrics.jsonl"
    assert output_in_storage(settings, out / "epoch_0") == f"{uri}/epoch_0"
    assert output_in_storage(settings, out / "epoch_1") is None


def test_without_storage_path_nothing_is_copied(tmp_path):
    settings = RecipeSettings(output_dir=str(tmp_path / "out"))
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "metrics.jsonl").write_text("{}")
    assert copy_outputs_to_storage(settings) is None
    assert output_in_storage(settings, tmp_path / "out") is None


def test_driver_on_another_node_summarises_from_storage(tmp_path):
    """Rank 0 wrote and copied on node b; the driver, on the head, has none of it locally."""
    rank0 = _settings(tmp_path, "node_b")
    out = Path(rank0.output_dir)
    (out / "epoch_0").mkdir(parents=True)
    (out / "epoch_0" / "adapter_model.safetensors").write_text("adapter")
    records = [{"step": 1, "loss": 2.5}, {"step": 2, "loss": 2.0}]
    (out / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    uri = copy_outputs_to_storage(rank0)

    driver = _settings(tmp_path, "head")
    Path(driver.output_dir).mkdir(parents=True)
    stats = SimpleNamespace(
        rows_read=4, rows_kept=4, rows_rejected=0, rejected_by_reason={}, rows_filtered=0,
        truncated_rows=0, dropped={}, num_tokens=100, num_trained_tokens=60,
        packing_fill_ratio=None, complete=True, rows_tokenized=4,
    )  # fmt: skip
    info = SimpleNamespace(stats=lambda: stats, store=None)
    result = SimpleNamespace(metrics={"global_step": 2, "epoch_done": 0}, checkpoint=None)
    summary = write_summary({}, driver, info, result, wall=1.0)

    assert (summary["first_loss"], summary["last_loss"]) == (2.5, 2.0)
    assert summary["adapter"] == f"{uri}/epoch_0"
    assert summary["outputs_in_storage"] == uri
    # The driver's summary and loss plot join rank 0's outputs in storage.
    assert json.loads((Path(uri) / "summary.json").read_text())["last_loss"] == 2.0
    assert (Path(uri) / "loss.png").read_bytes().startswith(b"\x89PNG")


def test_label_selector_is_one_dict_or_one_per_worker():
    per_worker = [{"rtc-node": "b"}, {"rtc-node": "head"}]
    cfg = {**SECTIONS, "output_dir": "o", "ray": {"num_workers": 2, "label_selector": per_worker}}
    assert parse_settings(cfg).ray.label_selector == per_worker
    with pytest.raises(ConfigError, match="ray.label_selector"):
        parse_settings({**cfg, "ray": {"label_selector": "rtc-node=b"}})
