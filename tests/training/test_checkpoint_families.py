"""Llama 2 and Mistral HF checkpoints load through `model_type` LLAMA2 / MISTRAL into our
builders with transformers' logits, and the Meta format round-trips for each family."""

from __future__ import annotations

import json

import pytest
import torch

from raytune_chat.models import convert_weights
from raytune_chat.models.llama2 import llama2
from raytune_chat.models.mistral import mistral
from raytune_chat.training import FullModelHFCheckpointer, FullModelMetaCheckpointer

transformers = pytest.importorskip("transformers")

pytestmark = pytest.mark.slow

TOKENS = (torch.arange(2 * 20).reshape(2, 20) * 5) % 97
COMMON = dict(vocab_size=97, hidden_size=32, intermediate_size=48, num_hidden_layers=2,
              num_attention_heads=4, max_position_embeddings=64, rms_norm_eps=1e-5,
              attn_implementation="eager")  # fmt: skip


def _hf(family: str, tmp_path):
    torch.manual_seed(0)
    if family == "LLAMA2":
        config = transformers.LlamaConfig(
            **COMMON,
            num_key_value_heads=4,
            rope_parameters={"rope_type": "default", "rope_theta": 10_000.0},
        )
        model = transformers.LlamaForCausalLM(config)
        ours = llama2(vocab_size=97, num_layers=2, num_heads=4, num_kv_heads=4, embed_dim=32,
                      max_seq_len=64, intermediate_dim=48)  # fmt: skip
    else:
        config = transformers.MistralConfig(
            **COMMON,
            num_key_value_heads=2,
            sliding_window=None,
            rope_parameters={"rope_type": "default", "rope_theta": 10_000.0},
        )
        model = transformers.MistralForCausalLM(config)
        ours = mistral(vocab_size=97, num_layers=2, num_heads=4, num_kv_heads=2, embed_dim=32,
                       intermediate_dim=48, max_seq_len=64)  # fmt: skip
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name:
                p.uniform_(0.5, 1.5)
    model.eval().save_pretrained(tmp_path / "hf")
    return model, ours.eval()


@pytest.mark.parametrize("model_type", ["LLAMA2", "MISTRAL"])
def test_hf_checkpoint_of_the_family_gives_transformers_logits(model_type, tmp_path):
    hf, ours = _hf(model_type, tmp_path)
    ckpt = FullModelHFCheckpointer(
        tmp_path / "hf", ["model.safetensors"], model_type, tmp_path / "out"
    )
    ours.load_state_dict(ckpt.load_checkpoint()["model"], strict=True)
    with torch.no_grad():
        torch.testing.assert_close(ours(TOKENS), hf(TOKENS).logits, rtol=0, atol=1e-5)


@pytest.mark.parametrize("model_type", ["LLAMA2", "MISTRAL", "LLAMA3", "LLAMA3_2"])
def test_meta_checkpoint_round_trips(model_type, tmp_path):
    torch.manual_seed(1)
    tied = model_type == "LLAMA3_2"
    base = llama2(vocab_size=97, num_layers=1, num_heads=4, num_kv_heads=2, embed_dim=32,
                  max_seq_len=64)  # fmt: skip
    state = base.state_dict()
    if tied:
        state["output.weight"] = state["tok_embeddings.weight"]
    folder = tmp_path / "meta"
    folder.mkdir()
    torch.save(convert_weights.tune_to_meta(state), folder / "consolidated.00.pth")
    (folder / "params.json").write_text(json.dumps({"dim": 32, "n_heads": 4, "n_kv_heads": 2}))
    ckpt = FullModelMetaCheckpointer(folder, ["consolidated.00.pth"], model_type, tmp_path / "o")
    loaded = ckpt.load_checkpoint()["model"]
    assert ("output.weight" in loaded) is not tied
    for key, value in loaded.items():
        torch.testing.assert_close(value, state[key], rtol=0, atol=0)
