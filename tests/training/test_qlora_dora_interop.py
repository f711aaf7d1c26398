"""QLoRA and DoRA end to end at tiny shape: streamed NF4 load, merge, and PEFT interop.

A tiny HF Llama checkpoint is loaded by our checkpointer into a model built on the meta
device (NF4 weights quantized as they stream in); the adapters we save load with `peft` onto
transformers' model and give our model's output, and the merged weights give it too.
"""

from __future__ import annotations

import json

import pytest
import torch

from raytune_chat.models import convert_weights
from raytune_chat.models.llama3 import lora_llama3
from raytune_chat.modules.low_precision import dequantize, dequantize_state_dict, is_nf4
from raytune_chat.modules.peft import (
    DoRALinear,
    get_adapter_params,
    get_adapter_state_dict,
    get_lora_module_names,
    get_merged_lora_ckpt,
    validate_missing_and_unexpected_for_lora,
)
from raytune_chat.training import (
    FullModelHFCheckpointer,
    initialize_adapters,
    initialize_dora_magnitudes,
    load_base_weights,
)

transformers = pytest.importorskip("transformers")
peft = pytest.importorskip("peft")
pytest.importorskip("torchao")

pytestmark = [
    pytest.mark.slow,
    pytest.mark.filterwarnings("ignore:`is_gradient_checkpointing` is deprecated:FutureWarning"),
]

# Every projection a multiple of 64 * 256 values, as NF4's double-quantized blocks need.
SHAPE = dict(
    vocab_size=89,
    num_layers=2,
    num_heads=4,
    num_kv_heads=2,
    embed_dim=256,
    max_seq_len=64,
    intermediate_dim=512,
)
ATTN = ["q_proj", "k_proj", "v_proj", "output_proj"]
TOKENS = (torch.arange(2 * 24).reshape(2, 24) * 7) % 89


def _hf_checkpoint(folder):
    torch.manual_seed(0)
    config = transformers.LlamaConfig(
        vocab_size=89,
        hidden_size=256,
        intermediate_size=512,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=64,
        rms_norm_eps=1e-5,
        rope_parameters={"rope_type": "default", "rope_theta": 500_000.0},
        attn_implementation="eager",
    )
    model = transformers.LlamaForCausalLM(config).eval()
    model.save_pretrained(folder)
    return model


def _streamed_model(tmp_path, **lora_args):
    """Our LoRA model built on meta and filled by the checkpointer, as the recipe does."""
    hf = _hf_checkpoint(tmp_path / "hf")
    ckpt = FullModelHFCheckpointer(
        tmp_path / "hf", ["model.safetensors"], "LLAMA3", tmp_path / "out"
    )
    with torch.device("meta"):
        model = lora_llama3(
            lora_attn_modules=ATTN,
            apply_lora_to_mlp=True,
            lora_rank=4,
            lora_alpha=8.0,
            **lora_args,
            **SHAPE,
        )
    missing, unexpected = load_base_weights(model, ckpt.iter_model_weights())
    validate_missing_and_unexpected_for_lora(
        ATTN, True, False, base_missing=missing, base_unexpected=unexpected
    )
    torch.manual_seed(1)
    initialize_adapters(model)
    initialize_dora_magnitudes(model)
    return hf, ckpt, model.eval()


def _train_a_little(model) -> None:
    """Move the adapters off their no-op start, as training would."""
    torch.manual_seed(2)
    with torch.no_grad():
        for name, p in get_adapter_params(model).items():
            if name.endswith("magnitude"):
                p.mul_(1 + 0.1 * torch.randn_like(p))
            else:
                p.normal_(std=0.05)


def _save(ckpt, model, use_dora: bool):
    state = model.state_dict()
    config = {
        "r": 4,
        "lora_alpha": 8.0,
        "target_modules": get_lora_module_names(ATTN, True, False),
        "peft_type": "LORA",
        **({"use_dora": True} if use_dora else {}),
    }
    ckpt.save_checkpoint(
        {
            "model": get_merged_lora_ckpt(state, rank=4, alpha=8.0),
            "adapter": get_adapter_state_dict(state),
            "adapter_config": config,
        },
        epoch=0,
    )
    return ckpt._output_dir / "epoch_0"


def _logits(model) -> torch.Tensor:
    with torch.no_grad():
        out = model(TOKENS)
    return getattr(out, "logits", out)


def test_qlora_streams_into_nf4_and_starts_as_the_dequantized_base(tmp_path):
    hf, _, model = _streamed_model(tmp_path, quantize_base=True)
    q_proj = model.layers[0].attn.q_proj
    assert is_nf4(q_proj.weight) and is_nf4(model.layers[1].mlp.w2.weight)
    assert not is_nf4(model.tok_embeddings.weight) and not is_nf4(model.output.weight)
    assert not any(p.is_meta for p in model.parameters())
    hf_q = hf.model.layers[0].self_attn.q_proj.weight.detach()
    ours_q = convert_weights.tune_to_hf(
        {"layers.0.attn.q_proj.weight": dequantize(q_proj.weight)},
        num_heads=4,
        num_kv_heads=2,
        dim=256,
    )["model.layers.0.self_attn.q_proj.weight"]
    error = (ours_q - hf_q).abs()
    assert 0 < error.max() < 0.3 * hf_q.abs().max()  # 4-bit: close, not equal
    # A fresh adapter adds nothing, so the output is the dequantized base model's.
    plain = transformers.LlamaForCausalLM(hf.config).eval()
    base_sd = dequantize_state_dict(get_merged_lora_ckpt(model.state_dict(), rank=4, alpha=8))
    plain.load_state_dict(
        convert_weights.tune_to_hf(base_sd, num_heads=4, num_kv_heads=2, dim=256), strict=False
    )
    torch.testing.assert_close(_logits(model), _logits(plain), rtol=0, atol=1e-4)


def test_qlora_adapter_loads_with_peft_and_matches_the_merged_model(tmp_path):
    hf, ckpt, model = _streamed_model(tmp_path, quantize_base=True)
    _train_a_little(model)
    expected = _logits(model)
    # The base peft adapts: the dequantized NF4 weights, saved as an HF checkpoint.
    base_dir = tmp_path / "dequantized_base"
    base_sd = {k: v for k, v in model.state_dict().items() if ".lora_" not in k}
    hf_base = transformers.LlamaForCausalLM(hf.config).eval()
    hf_base.load_state_dict(
        convert_weights.tune_to_hf(
            dequantize_state_dict(base_sd), num_heads=4, num_kv_heads=2, dim=256
        ),
        strict=False,
    )
    hf_base.save_pretrained(base_dir)
    epoch_dir = _save(ckpt, model, use_dora=False)
    with_adapter = peft.PeftModel.from_pretrained(
        transformers.LlamaForCausalLM.from_pretrained(base_dir).eval(), epoch_dir
    ).eval()
    torch.testing.assert_close(_logits(with_adapter), expected, rtol=0, atol=1e-4)
    merged = transformers.LlamaForCausalLM.from_pretrained(epoch_dir / "model").eval()
    torch.testing.assert_close(_logits(merged), expected, rtol=0, atol=1e-4)


def test_dora_magnitude_starts_at_the_loaded_norms_and_peft_loads_it(tmp_path):
    hf, ckpt, model = _streamed_model(tmp_path, use_dora=True)
    layer = model.layers[0].attn.k_proj
    assert isinstance(layer, DoRALinear)
    torch.testing.assert_close(layer.magnitude, torch.linalg.norm(layer.weight, dim=1))
    torch.testing.assert_close(_logits(model), _logits(hf), rtol=0, atol=1e-4)
    _train_a_little(model)
    expected = _logits(model)
    assert not torch.allclose(expected, _logits(hf), atol=1e-3)
    epoch_dir = _save(ckpt, model, use_dora=True)
    config = json.loads((epoch_dir / "adapter_config.json").read_text())
    assert config["use_dora"] is True and config["peft_type"] == "LORA"
    with_adapter = peft.PeftModel.from_pretrained(hf, epoch_dir).eval()
    torch.testing.assert_close(_logits(with_adapter), expected, rtol=0, atol=1e-4)
    merged = transformers.LlamaForCausalLM.from_pretrained(epoch_dir / "model").eval()
    torch.testing.assert_close(_logits(merged), expected, rtol=0, atol=1e-4)


def test_dora_trains_magnitude_and_adapters_only(tmp_path):
    _, _, model = _streamed_model(tmp_path, use_dora=True, quantize_base=True)
    adapters = get_adapter_params(model)
    kinds = {name.removesuffix(".weight").rsplit(".", 1)[-1] for name in adapters}
    assert kinds == {"lora_a", "lora_b", "magnitude"}
    for name, p in model.named_parameters():
        p.requires_grad_(name in adapters)
    model.train()
    logits = model(TOKENS)
    torch.nn.functional.cross_entropy(logits.flatten(0, 1), TOKENS.flatten()).backward()
    layer = model.layers[0].attn.q_proj
    assert layer.magnitude.grad is not None and layer.magnitude.grad.abs().sum() > 0
    assert layer.lora_b.weight.grad.abs().sum() > 0  # B starts at zero but gets a gradient
    assert layer.weight.grad is None
