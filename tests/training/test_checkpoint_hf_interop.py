"""Interop with the HF ecosystem on tiny models: transformers Llama parity and PEFT adapters.

transformers' LlamaForCausalLM uses the half-split RoPE layout, so equal logits prove the
q/k permutation (and the key table) of the HF checkpointer in both directions.
"""

from __future__ import annotations

import json

import pytest
import torch

from raytune_chat.models.llama3 import llama3, lora_llama3
from raytune_chat.modules import Llama3ScaledRoPE
from raytune_chat.modules.peft import (
    get_adapter_params,
    get_adapter_state_dict,
    get_lora_module_names,
    get_merged_lora_ckpt,
)
from raytune_chat.training import FullModelHFCheckpointer

transformers = pytest.importorskip("transformers")

SHAPE = dict(
    vocab_size=89,
    num_layers=2,
    num_heads=4,
    num_kv_heads=2,
    embed_dim=64,
    max_seq_len=64,
    intermediate_dim=96,
)
TOKENS = (torch.arange(2 * 40).reshape(2, 40) * 7) % 89


def _hf_model(tmp_path, *, tie: bool = False, rope_parameters: dict | None = None):
    torch.manual_seed(0)
    config = transformers.LlamaConfig(
        vocab_size=89,
        hidden_size=64,
        intermediate_size=96,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=64,
        rms_norm_eps=1e-5,
        tie_word_embeddings=tie,
        rope_parameters=rope_parameters or {"rope_type": "default", "rope_theta": 500_000.0},
        attn_implementation="eager",
    )
    model = transformers.LlamaForCausalLM(config).eval()
    with torch.no_grad():  # random norms, so a norm mix-up would show
        for name, p in model.named_parameters():
            if "norm" in name:
                p.uniform_(0.5, 1.5)
    model.save_pretrained(tmp_path / "hf")
    return model


def _hf_logits(model) -> torch.Tensor:
    with torch.no_grad():
        return model(TOKENS).logits


def _ckpt(tmp_path, model_type: str = "LLAMA3") -> FullModelHFCheckpointer:
    return FullModelHFCheckpointer(
        tmp_path / "hf", ["model.safetensors"], model_type, tmp_path / "out"
    )


@pytest.mark.slow
def test_hf_weights_give_transformers_logits(tmp_path):
    hf = _hf_model(tmp_path)
    ours = llama3(**SHAPE).eval()
    ours.load_state_dict(_ckpt(tmp_path).load_checkpoint()["model"], strict=True)
    with torch.no_grad():
        torch.testing.assert_close(ours(TOKENS), _hf_logits(hf), rtol=0, atol=1e-5)


@pytest.mark.slow
def test_our_saved_weights_load_into_transformers(tmp_path):
    _hf_model(tmp_path)
    ckpt = _ckpt(tmp_path)
    ckpt.load_checkpoint()
    torch.manual_seed(1)
    ours = llama3(**SHAPE).eval()  # fresh weights, different from the HF file
    ckpt.save_checkpoint({"model": ours.state_dict()}, epoch=0)
    reloaded = transformers.LlamaForCausalLM.from_pretrained(tmp_path / "out/epoch_0/model").eval()
    with torch.no_grad():
        torch.testing.assert_close(_hf_logits(reloaded), ours(TOKENS), rtol=0, atol=1e-5)


@pytest.mark.slow
def test_tied_embeddings_llama3_2_style(tmp_path):
    hf = _hf_model(tmp_path, tie=True)
    loaded = _ckpt(tmp_path, "LLAMA3_2").load_checkpoint()["model"]
    assert "output.weight" not in loaded
    ours = llama3(**SHAPE, tie_word_embeddings=True).eval()
    ours.load_state_dict(loaded, strict=True)
    with torch.no_grad():
        torch.testing.assert_close(ours(TOKENS), _hf_logits(hf), rtol=0, atol=1e-5)


@pytest.mark.slow
def test_llama3_1_rope_scaling_matches_transformers(tmp_path):
    # A small original context so that 40 positions see all three frequency regimes.
    rope = {
        "rope_type": "llama3",
        "rope_theta": 500_000.0,
        "factor": 8.0,
        "low_freq_factor": 1.0,
        "high_freq_factor": 4.0,
        "original_max_position_embeddings": 64,
    }
    hf = _hf_model(tmp_path, rope_parameters=rope)
    ours = llama3(**SHAPE, scale_factor=8).eval()
    ours.load_state_dict(_ckpt(tmp_path).load_checkpoint()["model"], strict=True)
    unscaled = _hf_logits(hf)
    scaled_rope = Llama3ScaledRoPE(dim=16, max_seq_len=64, scale_factor=8, old_context_len=64)
    for layer in ours.layers:
        layer.attn.pos_embeddings = scaled_rope
    with torch.no_grad():
        got = ours(TOKENS)
        ours_plain = llama3(**SHAPE).eval()
        ours_plain.load_state_dict(ours.state_dict())
        assert not torch.allclose(ours_plain(TOKENS), got, atol=1e-3)  # the scaling matters
    torch.testing.assert_close(got, unscaled, rtol=0, atol=1e-5)


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:`is_gradient_checkpointing` is deprecated:FutureWarning")
def test_written_adapter_loads_into_peft_with_same_output(tmp_path):
    peft = pytest.importorskip("peft")
    hf = _hf_model(tmp_path)
    ckpt = _ckpt(tmp_path)
    attn_modules = ["q_proj", "k_proj", "v_proj", "output_proj"]
    lora = lora_llama3(
        lora_attn_modules=attn_modules,
        apply_lora_to_mlp=True,
        lora_rank=4,
        lora_alpha=8.0,
        **SHAPE,
    ).eval()
    lora.load_state_dict(ckpt.load_checkpoint()["model"], strict=False)
    torch.manual_seed(2)
    with torch.no_grad():
        for p in get_adapter_params(lora).values():
            p.normal_(std=0.1)
        expected = lora(TOKENS)
    assert not torch.allclose(expected, _hf_logits(hf), atol=1e-3)  # adapters change output
    state = {
        "model": get_merged_lora_ckpt(lora.state_dict(), rank=4, alpha=8.0),
        "adapter": get_adapter_state_dict(lora.state_dict()),
        "adapter_config": {
            "r": 4,
            "lora_alpha": 8.0,
            "target_modules": get_lora_module_names(attn_modules, True, False),
            "peft_type": "LORA",
        },
    }
    ckpt.save_checkpoint(state, epoch=0)
    epoch_dir = tmp_path / "out/epoch_0"
    assert json.loads((epoch_dir / "adapter_config.json").read_text())["task_type"] == "CAUSAL_LM"

    with_adapter = peft.PeftModel.from_pretrained(hf, epoch_dir).eval()
    with torch.no_grad():
        torch.testing.assert_close(with_adapter(TOKENS).logits, expected, rtol=0, atol=1e-5)
    merged = transformers.LlamaForCausalLM.from_pretrained(epoch_dir / "model").eval()
    torch.testing.assert_close(_hf_logits(merged), expected, rtol=0, atol=1e-5)
