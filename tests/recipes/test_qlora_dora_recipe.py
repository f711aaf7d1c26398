"""torchtune's own QLoRA and DoRA configs, dataset swapped as the tutorial says, run at tiny
shape on CPU through the real recipe on a local Ray cluster, and lower the loss."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import torch
import yaml

from raytune_chat.config import load_config
from raytune_chat.models import convert_weights
from raytune_chat.models.llama3 import llama3
from raytune_chat.modules.low_precision import dequantize, to_nf4
from raytune_chat.recipes import get_recipe
from raytune_chat.training.checkpointing._files import read_safetensors, read_weights
from raytune_chat.training.metric_logging import read_metrics
from tests.recipes._tiny import fast_overrides, sample_conversations, write_chat_file

pytestmark = [pytest.mark.slow]
pytest.importorskip("torchao")

CONFIGS = json.loads(
    (Path(__file__).parents[1] / "config/fixtures/torchtune_0_6_1_lora_configs.json").read_text()
)["configs"]
# 128-wide MHA with a 256-wide MLP: every projection a whole number of NF4 blocks.
SHAPE = dict(
    vocab_size=128256,
    num_layers=1,
    num_heads=4,
    num_kv_heads=4,
    embed_dim=128,
    intermediate_dim=256,
    max_seq_len=128,
)


def _meta_checkpoint(folder: Path) -> Path:
    torch.manual_seed(123)
    base = llama3(**SHAPE)
    folder.mkdir(parents=True)
    torch.save(convert_weights.tune_to_meta(base.state_dict()), folder / "consolidated.00.pth")
    params = {"dim": 128, "n_layers": 1, "n_heads": 4, "n_kv_heads": 4, "vocab_size": 128256}
    (folder / "params.json").write_text(json.dumps(params))
    return folder


def _run(name: str, tmp_path: Path, extra: list[str]) -> tuple[Path, dict]:
    cfg = copy.deepcopy(CONFIGS[name]["config"])
    cfg["dataset"] = {
        "_component_": "torchtune.datasets.chat_dataset",
        "source": "json",
        "data_files": "unset",
        "split": "train",
        "conversation_column": "dialogue",
        "conversation_style": "sharegpt",
    }
    (tmp_path / "custom.yaml").write_text(yaml.safe_dump(cfg))
    data = write_chat_file(tmp_path / "chat.json", sample_conversations(40))
    out = tmp_path / "out"
    tiny_model = [f"model.{k}={v}" for k, v in SHAPE.items()]
    overrides = [
        *(o for o in fast_overrides(out, data) if not o.startswith("model")),
        "model=raytune_chat.models.llama3.lora_llama3",
        *tiny_model,
        "model.apply_lora_to_output=True",  # a random frozen head alone cannot fit the data
        f"tokenizer.path={load_config('tiny/llama3_lora_cpu')['tokenizer']['path']}",
        f"checkpointer.checkpoint_dir={_meta_checkpoint(tmp_path / 'base')}",
        "device=cpu",
        "dtype=fp32",
        "seed=0",
        "gradient_accumulation_steps=1",
        "max_steps_per_epoch=16",
        "optimizer.lr=3e-2",
        "lr_scheduler.num_warmup_steps=2",
        "enable_activation_checkpointing=False",
        "log_peak_memory_stats=False",
        "~profiler",
        *extra,
    ]
    summary = get_recipe(CONFIGS[name]["recipe"])(load_config(tmp_path / "custom.yaml", overrides))
    return out, summary


def _assert_loss_lowered(out: Path) -> None:
    losses = [r["loss"] for r in read_metrics(out / "metrics.jsonl")]
    assert len(losses) == 16
    assert sum(losses[-4:]) / 4 < 0.8 * losses[0], losses


def test_qlora_config_trains_and_saves_dequantized_merged_weights(ray_cluster, tmp_path):
    out, summary = _run("llama3/8B_qlora_single_device", tmp_path, ["model.quantize_base=True"])
    _assert_loss_lowered(out)
    adapter_dir = out / "epoch_0"
    assert summary["adapter"] == str(adapter_dir)
    config = json.loads((adapter_dir / "adapter_config.json").read_text())
    assert config["peft_type"] == "LORA" and "use_dora" not in config
    merged = read_weights(adapter_dir / "model" / "consolidated.00.pth")
    base = read_weights(tmp_path / "base" / "consolidated.00.pth")
    adapter = torch.load(adapter_dir / "adapter_model.pt", weights_only=True)
    wq = merged["layers.0.attention.wq.weight"]
    assert type(wq) is torch.Tensor and wq.dtype == torch.float32
    # merged = the NF4 base dequantized + (alpha / rank) * B @ A of the trained adapter
    lora_a, lora_b = (adapter[f"layers.0.attn.q_proj.lora_{x}.weight"] for x in "ab")
    assert lora_b.abs().sum() > 0
    nf4_base = dequantize(to_nf4(base["layers.0.attention.wq.weight"]))
    expected = nf4_base + config["lora_alpha"] / config["r"] * (lora_b @ lora_a)
    torch.testing.assert_close(wq, expected, rtol=0, atol=1e-5)


def test_dora_config_trains_the_magnitude(ray_cluster, tmp_path):
    out, _ = _run("llama3/8B_dora_single_device", tmp_path, [])
    _assert_loss_lowered(out)
    adapter_dir = out / "epoch_0"
    assert json.loads((adapter_dir / "adapter_config.json").read_text())["use_dora"] is True
    weights = read_safetensors(adapter_dir / "adapter_model.safetensors")
    key = "base_model.model.model.layers.0.self_attn.v_proj.lora_magnitude_vector"
    base = read_weights(tmp_path / "base" / "consolidated.00.pth")
    start = torch.linalg.norm(base["layers.0.attention.wv.weight"], dim=1)
    assert weights[key].shape == (128,)
    assert not torch.allclose(weights[key], start, atol=1e-4)  # it trained
