"""The LoRA recipes end to end on a real local Ray cluster (fractional-CPU workers)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch
import yaml

from raytune_chat._cli import main
from raytune_chat.config import load_config
from raytune_chat.recipes import get_recipe
from raytune_chat.training.checkpointing._files import read_safetensors
from raytune_chat.training.metric_logging import read_metrics
from tests.recipes._tiny import fast_overrides, sample_conversations, write_chat_file

pytestmark = pytest.mark.slow

TUTORIAL_DATASET = """dataset:
  _component_: torchtune.datasets.chat_dataset
  source: json
  data_files: data/my_data.json
  split: train
  conversation_column: dialogue
  conversation_style: sharegpt
"""


def _losses(output_dir: Path) -> list[float]:
    return [r["loss"] for r in read_metrics(output_dir / "metrics.jsonl")]


def _tiny_meta_checkpoint(folder: Path) -> Path:
    """A tiny random Llama3 base in Meta's format (consolidated.00.pth + params.json)."""
    from raytune_chat.models import convert_weights
    from raytune_chat.models.llama3 import llama3

    torch.manual_seed(123)
    base = llama3(
        vocab_size=128256,
        num_layers=1,
        num_heads=2,
        num_kv_heads=1,
        embed_dim=32,
        intermediate_dim=64,
        max_seq_len=128,
    )
    folder.mkdir(parents=True)
    torch.save(convert_weights.tune_to_meta(base.state_dict()), folder / "consolidated.00.pth")
    params = {
        "dim": 32,
        "n_layers": 1,
        "n_heads": 2,
        "n_kv_heads": 1,
        "vocab_size": 128256,
        "norm_eps": 1e-5,
        "rope_theta": 500000.0,
    }
    (folder / "params.json").write_text(json.dumps(params))
    return folder


def test_tutorial_replay_writes_a_peft_adapter(ray_cluster, tmp_path, monkeypatch, capsys):
    """`cp`, edit the dataset section as the tutorial does, override to tiny CPU, epochs=15."""
    monkeypatch.chdir(tmp_path)
    assert main(["cp", "llama3/8B_lora_single_device", "custom.yaml"]) == 0
    text = Path("custom.yaml").read_text()
    text = re.sub(r"^dataset:\n(?:  .*\n|\n)*", TUTORIAL_DATASET, text, flags=re.M)
    Path("custom.yaml").write_text(text)
    assert yaml.safe_load(text)["dataset"]["_component_"] == "torchtune.datasets.chat_dataset"
    Path("data").mkdir()
    write_chat_file(Path("data/my_data.json"), sample_conversations(4))
    ckpt = _tiny_meta_checkpoint(tmp_path / "Meta-Tiny" / "original")
    out = tmp_path / "out"
    overrides = [
        o for o in fast_overrides(out, Path("data/my_data.json")) if not o.startswith("dataset.")
    ] + [
        f"tokenizer.path={load_config('tiny/llama3_lora_cpu')['tokenizer']['path']}",
        f"checkpointer.checkpoint_dir={ckpt}",
        "device=cpu",
        "dtype=fp32",
        "gradient_accumulation_steps=1",
        "max_steps_per_epoch=1",
        "log_peak_memory_stats=False",
        "~profiler",
    ]
    argv = ["run", "lora_finetune_single_device", "--config", "custom.yaml", *overrides]
    assert main([*argv, "epochs=15"]) == 0
    adapter_dir = out / "epoch_14"
    config = json.loads((adapter_dir / "adapter_config.json").read_text())
    assert config["peft_type"] == "LORA" and config["r"] == 4
    weights = read_safetensors(adapter_dir / "adapter_model.safetensors")
    assert any(k.endswith("q_proj.lora_A.weight") for k in weights), sorted(weights)[:4]
    assert list(adapter_dir.rglob("consolidated.00.pth"))  # merged weights too
    assert [r["step"] for r in read_metrics(out / "metrics.jsonl")] == list(range(1, 16))
    printed = capsys.readouterr().out
    assert re.search(rf"adapter\s+{re.escape(str(adapter_dir))}\n", printed), printed[-2000:]


def test_demo_config_loss_halves_and_reports(ray_cluster, tmp_path):
    rows = sample_conversations(48) + [
        {"dialogue": [{"from": "robot", "value": "beep"}, {"from": "gpt", "value": "boop"}]}
    ]
    data = write_chat_file(tmp_path / "chat.json", rows)
    out = tmp_path / "out"
    cfg = load_config(
        "tiny/llama3_lora_cpu",
        [
            *fast_overrides(out, data),
            "max_steps_per_epoch=null",
            "epochs=3",
            "max_steps=24",  # a step budget: one epoch of 48 rows, then the run ends
            "optimizer.lr=3e-2",
            "lr_scheduler.num_warmup_steps=2",
            "save_every_n_steps=100",
            "dataset.max_rejected_fraction=0.1",
        ],
    )
    summary = get_recipe("lora_finetune_single_device")(cfg)
    losses = _losses(out)
    assert len(losses) == 24
    assert sum(losses[-4:]) / 4 <= 0.5 * losses[0], losses
    assert summary["steps"] == 24 and summary["plan"]["planned_steps"] == 24
    assert summary["rows_rejected_by_reason"] == {"unknown_role": 1}
    assert summary["rows_kept"] == 48
    assert summary["trained_tokens"] > 0 and summary["tokens"] > summary["trained_tokens"]
    assert (out / "loss.png").stat().st_size > 1000
    # The summary points at the run's final adapter, not at a checkpoint copy in ray_results.
    assert summary["adapter"] == str(out / "epoch_0")
    assert summary["adapter_in_storage"].endswith("/adapter")
    weights = read_safetensors(out / "epoch_0" / "adapter_model.safetensors")
    lora_b = [v for k, v in weights.items() if "lora_B" in k]
    assert lora_b and all(v.abs().sum() > 0 for v in lora_b)  # B starts at zero: it learned
    record = read_metrics(out / "metrics.jsonl")[-1]
    for key in (
        "lr",
        "tokens_per_second",
        "trained_tokens_per_second",
        "data_wait_seconds",
        "peak_memory_gib",
    ):
        assert record[key] >= 0, key


def test_two_ddp_workers_track_one_worker_with_doubled_accumulation(ray_cluster, tmp_path):
    data = write_chat_file(tmp_path / "chat.json", sample_conversations(32, skip=100))
    common = [
        "max_steps_per_epoch=6",
        "shuffle=False",
        "optimizer.lr=1e-2",
        "save_every_n_steps=100",
        "log_peak_memory_stats=False",
    ]
    one = load_config(
        "tiny/llama3_lora_cpu",
        [*fast_overrides(tmp_path / "one", data), *common, "gradient_accumulation_steps=2"],
    )
    two = load_config(
        "tiny/llama3_lora_cpu",
        [
            *fast_overrides(tmp_path / "two", data),
            *common,
            "gradient_accumulation_steps=1",
            "ray.num_workers=2",
        ],
    )
    s1 = get_recipe("lora_finetune_single_device")(one)
    s2 = get_recipe("lora_finetune_distributed")(two)
    l1, l2 = _losses(tmp_path / "one"), _losses(tmp_path / "two")
    assert len(l1) == len(l2) == 6
    # same rows per step (2 workers x 1 batch vs 1 worker x 2 batches), same init
    assert s1["trained_tokens"] == pytest.approx(s2["trained_tokens"], rel=0.2)
    assert l2[0] == pytest.approx(l1[0], rel=0.02)
    for a, b in zip(l1, l2, strict=True):
        assert b == pytest.approx(a, rel=0.15), (l1, l2)
    assert l1[-1] < l1[0] and l2[-1] < l2[0]
