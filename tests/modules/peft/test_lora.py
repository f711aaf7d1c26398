"""LoRA layers and adapter helpers on a tiny Llama3."""

from __future__ import annotations

import pytest
import torch

from raytune_chat.models.llama3 import llama3, lora_llama3
from raytune_chat.modules.peft import (
    LoRALinear,
    get_adapter_params,
    get_adapter_state_dict,
    get_lora_module_names,
    get_merged_lora_ckpt,
    set_trainable_params,
    validate_missing_and_unexpected_for_lora,
)

SHAPE = dict(
    vocab_size=61,
    num_layers=2,
    num_heads=4,
    num_kv_heads=2,
    embed_dim=16,
    max_seq_len=32,
    intermediate_dim=24,
)
LORA = dict(lora_attn_modules=["q_proj", "k_proj", "v_proj", "output_proj"], apply_lora_to_mlp=True)


def _lora_model(seed: int = 0, **kwargs) -> torch.nn.Module:
    torch.manual_seed(seed)
    return lora_llama3(**{**LORA, **kwargs}, lora_rank=4, lora_alpha=8.0, **SHAPE).eval()


def _randomise_adapters(model: torch.nn.Module) -> None:
    with torch.no_grad():
        for p in get_adapter_params(model).values():
            p.normal_(std=0.2)


def test_lora_linear_init_and_names():
    torch.manual_seed(0)
    layer = LoRALinear(32, 8, rank=4, alpha=2.0, dropout=0.1)
    assert sorted(n for n, _ in layer.named_parameters()) == [
        "lora_a.weight",
        "lora_b.weight",
        "weight",
    ]
    assert torch.count_nonzero(layer.lora_b.weight) == 0
    bound = 1 / 32**0.5  # kaiming_uniform(a=sqrt(5)) bound for fan_in 32
    assert layer.lora_a.weight.abs().max() <= bound and layer.lora_a.weight.std() > bound / 4
    assert layer.scaling == 0.5


def test_lora_linear_computes_scaled_low_rank_update():
    torch.manual_seed(0)
    layer = LoRALinear(6, 5, rank=2, alpha=6.0).eval()
    with torch.no_grad():
        layer.lora_b.weight.normal_()
    x = torch.randn(3, 6)
    expected = x @ layer.weight.T + 3.0 * (x @ layer.lora_a.weight.T @ layer.lora_b.weight.T)
    torch.testing.assert_close(layer(x), expected)
    layer.disabled = True
    torch.testing.assert_close(layer(x), x @ layer.weight.T)


def test_fresh_lora_model_equals_base_model():
    lora = _lora_model()
    base = llama3(**SHAPE).eval()
    base.load_state_dict(get_merged_lora_ckpt(lora.state_dict(), rank=4, alpha=8.0), strict=True)
    tokens = torch.randint(0, 61, (2, 9))
    with torch.no_grad():
        torch.testing.assert_close(lora(tokens), base(tokens), rtol=0, atol=0)


def test_merged_weights_equal_unmerged_lora_model():
    lora = _lora_model()
    _randomise_adapters(lora)
    merged_sd = get_merged_lora_ckpt(lora.state_dict(), rank=4, alpha=8.0)
    assert not any("lora" in k for k in merged_sd)
    base = llama3(**SHAPE).eval()
    base.load_state_dict(merged_sd, strict=True)
    tokens = torch.randint(0, 61, (2, 9))
    with torch.no_grad():
        lora_out, base_out = lora(tokens), base(tokens)
        # the adapters matter: switching them off changes the output
        for module in lora.modules():
            if isinstance(module, LoRALinear):
                module.disabled = True
        assert not torch.allclose(lora(tokens), lora_out, atol=1e-3)
    torch.testing.assert_close(base_out, lora_out, rtol=0, atol=1e-5)


def test_merge_does_not_touch_the_live_model():
    lora = _lora_model()
    _randomise_adapters(lora)
    before = lora.layers[0].attn.q_proj.weight.clone()
    get_merged_lora_ckpt(lora.state_dict(), rank=4, alpha=8.0)
    assert torch.equal(lora.layers[0].attn.q_proj.weight, before)


def test_only_adapter_params_require_grad_and_receive_grads():
    model = _lora_model(lora_attn_modules=["q_proj", "v_proj"], apply_lora_to_mlp=False)
    adapter = get_adapter_params(model)
    assert sorted(adapter) == sorted(
        f"layers.{i}.attn.{p}.lora_{ab}.weight"
        for i in range(2)
        for p in ("q_proj", "v_proj")
        for ab in "ab"
    )
    set_trainable_params(model, adapter)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable == set(adapter)
    model.train()
    model(torch.randint(0, 61, (1, 8))).sum().backward()
    assert all(p.grad is None for n, p in model.named_parameters() if n not in adapter)
    assert all(adapter[n].grad is not None for n in adapter)


def test_adapter_state_dict_keeps_only_lora_entries():
    model = _lora_model()
    sd = get_adapter_state_dict(model.state_dict())
    assert set(sd) == set(get_adapter_params(model))
    assert len(sd) == 2 * 7 * 2  # 2 layers * 7 projections * (a, b)


def test_lora_module_names():
    assert get_lora_module_names(["q_proj"], True, True) == ["q_proj", "w1", "w2", "w3", "output"]


def test_validate_missing_and_unexpected():
    model = _lora_model(lora_attn_modules=["q_proj"], apply_lora_to_mlp=False)
    base = llama3(**SHAPE)
    base_result = model.load_state_dict(base.state_dict(), strict=False)
    adapter_result = model.load_state_dict(get_adapter_state_dict(model.state_dict()), strict=False)
    validate_missing_and_unexpected_for_lora(
        ["q_proj"],
        False,
        False,
        base_missing=base_result.missing_keys,
        base_unexpected=base_result.unexpected_keys,
        lora_missing=adapter_result.missing_keys,
        lora_unexpected=adapter_result.unexpected_keys,
    )
    with pytest.raises(AssertionError, match="module without LoRA"):
        validate_missing_and_unexpected_for_lora(
            ["v_proj"], False, False, base_missing=base_result.missing_keys
        )
    with pytest.raises(AssertionError, match="non-LoRA key norm.scale"):
        validate_missing_and_unexpected_for_lora(base_missing=["norm.scale"])
    with pytest.raises(AssertionError, match="Missing LoRA key"):
        validate_missing_and_unexpected_for_lora(
            lora_missing=["layers.0.attn.q_proj.lora_a.weight"]
        )
    with pytest.raises(AssertionError, match="Unexpected key extra"):
        validate_missing_and_unexpected_for_lora(lora_unexpected=["extra"])
