"""NF4 (QLoRA) layers: torchao's format with our block sizes, errors that name the problem."""

from __future__ import annotations

import builtins

import pytest
import torch
from torch import nn

from raytune_chat.modules.low_precision import (
    FrozenNF4Linear,
    dequantize,
    is_nf4,
    to_nf4,
)
from raytune_chat.modules.low_precision import _nf4 as nf4_module
from raytune_chat.modules.peft import DoRALinear, LoRALinear
from raytune_chat.training import load_base_weights

pytest.importorskip("torchao")


def test_nf4_uses_64_blocks_with_double_quantized_scales():
    weight = torch.randn(256, 128)
    q = to_nf4(weight)
    assert (q.block_size, q.scaler_block_size) == (64, 256)
    assert q.quantized_data.numel() == weight.numel() // 2  # two 4-bit codes per byte
    assert q.quantized_scalers.dtype == torch.int8  # the scales themselves are 8-bit
    # Each value lands within half of NF4's widest code gap (0.30 of its block's absmax),
    # plus the rounding of the 8-bit scale.
    blocks = weight.reshape(-1, 64)
    error = (dequantize(q).reshape(-1, 64) - blocks).abs()
    assert bool((error <= 0.3 * blocks.abs().amax(dim=1, keepdim=True)).all())


def test_a_shape_that_is_not_whole_blocks_is_named():
    with pytest.raises(ValueError, match=r"\(32, 64\) weight.*multiple of 16384"):
        to_nf4(torch.randn(32, 64))


def test_missing_torchao_names_the_qlora_extra(monkeypatch):
    real_import = builtins.__import__

    def no_torchao(name, *args, **kwargs):
        if name.startswith("torchao"):
            raise ImportError("No module named 'torchao'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_torchao)
    with pytest.raises(ImportError, match=r"pip install 'raytune_chat\[qlora\]'"):
        nf4_module._torchao_nf4()


@pytest.mark.parametrize("adapter", [LoRALinear, DoRALinear])
def test_quantized_adapter_layer_computes_with_the_dequantized_weight(adapter):
    torch.manual_seed(0)
    layer = adapter(128, 256, rank=4, alpha=8.0, quantize_base=True)
    assert is_nf4(layer.weight) and not layer.weight.requires_grad
    nn.init.normal_(layer.lora_b.weight, std=0.1)
    plain = adapter(128, 256, rank=4, alpha=8.0)
    plain.load_state_dict({**layer.state_dict(), "weight": dequantize(layer.weight)})
    x = torch.randn(3, 128)
    torch.testing.assert_close(layer(x), plain(x), rtol=0, atol=1e-5)


def test_frozen_nf4_linear_built_on_meta_quantizes_its_weight_on_load():
    with torch.device("meta"):
        layer = FrozenNF4Linear(128, 128)
    assert layer.weight.is_meta and layer.quantize_base
    weight = torch.randn(128, 128)
    assert load_base_weights(layer, [("weight", weight)]) == ([], [])
    assert is_nf4(layer.weight)
    x = torch.randn(2, 128)
    torch.testing.assert_close(layer(x), x @ dequantize(layer.weight).T, rtol=0, atol=1e-5)


def test_a_checkpoint_tensor_of_the_wrong_shape_is_named():
    with torch.device("meta"):
        layer = FrozenNF4Linear(128, 128)
    with pytest.raises(ValueError, match=r"weight has shape \(64, 128\).*\(128, 128\)"):
        load_base_weights(layer, [("weight", torch.randn(64, 128))])
