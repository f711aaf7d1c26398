"""Every LoRA, QLoRA and DoRA config torchtune 0.6.1 ships for Llama 2, Code Llama 2, Llama 3,
3.1, 3.2 (text), 3.3 and Mistral validates once the tutorial's `chat_dataset` replaces its
dataset, and its model section builds the right model (on the meta device, no memory).

The configs' keys and values are in `fixtures/torchtune_0_6_1_lora_configs.json` (see its
`source`); torchtune itself is not needed.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import torch

from raytune_chat.config import instantiate, resolve_interpolations
from raytune_chat.modules.peft import DoRALinear, LoRALinear
from raytune_chat.recipes import validate_config
from raytune_chat.training.recipe_config import TORCHTUNE_KEYS_WITHOUT_EFFECT

FIXTURE = json.loads(
    (Path(__file__).parent / "fixtures" / "torchtune_0_6_1_lora_configs.json").read_text()
)
CONFIGS = FIXTURE["configs"]

TUTORIAL_DATASET = {
    "_component_": "torchtune.datasets.chat_dataset",
    "source": "json",
    "data_files": "data/my_data.json",
    "split": "train",
    "conversation_column": "dialogue",
    "conversation_style": "sharegpt",
}

# family -> (vocab_size, rope base) of the model its configs build
FAMILY_SHAPES = {
    "llama2": (32_000, 10_000.0),
    "code_llama2": (32_016, 1_000_000.0),
    "llama3": (128_256, 500_000.0),
    "llama3_1": (128_256, 500_000.0),
    "llama3_2": (128_256, 500_000.0),
    "llama3_3": (128_256, 500_000.0),
    "mistral": (32_000, 10_000.0),
}


def _tutorial_config(name: str) -> dict:
    cfg = copy.deepcopy(CONFIGS[name]["config"])
    cfg["dataset"] = dict(TUTORIAL_DATASET)
    return resolve_interpolations(cfg)


def test_the_fixture_holds_exactly_the_33_configs():
    assert len(CONFIGS) == 33
    families = {name.split("/")[0] for name in CONFIGS}
    assert families == set(FAMILY_SHAPES)
    kinds = [next(k for k in ("qdora", "qlora", "dora", "lora") if k in n) for n in CONFIGS]
    assert {k: kinds.count(k) for k in set(kinds)} == {
        "lora": 18,
        "qlora": 12,
        "dora": 2,
        "qdora": 1,
    }
    assert all(entry["recipe"] for entry in CONFIGS.values())


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_torchtune_config_validates_with_the_tutorial_dataset(name, capsys):
    cfg = _tutorial_config(name)
    single = CONFIGS[name]["recipe"] == "lora_finetune_single_device"
    settings = validate_config(cfg, max_workers=1 if single else None)
    assert settings.output_dir == CONFIGS[name]["config"]["output_dir"]
    warned = {line.split("`")[1] for line in capsys.readouterr().err.splitlines()}
    assert warned == set(cfg) & set(TORCHTUNE_KEYS_WITHOUT_EFFECT)


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_torchtune_config_builds_its_model(name):
    cfg = _tutorial_config(name)
    model_cfg = cfg["model"]
    with torch.device("meta"):
        model = instantiate(model_cfg, key="model")
    vocab_size, rope_base = FAMILY_SHAPES[name.split("/")[0]]
    assert model.tok_embeddings.num_embeddings == vocab_size
    assert model.layers[0].attn.pos_embeddings.base == rope_base
    q_proj = model.layers[0].attn.q_proj
    expected = DoRALinear if model_cfg.get("use_dora") else LoRALinear
    assert type(q_proj) is expected
    assert q_proj.rank == model_cfg["lora_rank"]
    quantized = "qlora" in model_cfg["_component_"] or model_cfg.get("quantize_base", False)
    # on the meta device NF4 layers are marked, and quantize as their weights load
    assert q_proj.quantize_base == quantized
    assert getattr(model.layers[-1].mlp.w2, "quantize_base", False) == quantized
    assert not getattr(model.output, "quantize_base", False)  # the LM head stays unquantized
    assert ("qlora" in name or "qdora" in name) == quantized
    assert ("dora" in name) == bool(model_cfg.get("use_dora"))
