"""Llama3 model: torchtune names, presets, packed rows, chunked output, GQA, precision."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from raytune_chat.models.llama3 import llama3, llama3_8b, llama3_70b, lora_llama3, lora_llama3_8b
from raytune_chat.models.llama3_1 import llama3_1_8b, llama3_1_70b
from raytune_chat.models.llama3_2 import llama3_2_1b, lora_llama3_2_1b
from raytune_chat.modules import Llama3ScaledRoPE
from raytune_chat.modules.attention_utils import packed_block_causal_mask
from raytune_chat.modules.peft import LoRALinear
from raytune_chat.training import set_activation_checkpointing

TINY = dict(vocab_size=97, num_layers=2, num_heads=4, num_kv_heads=2, embed_dim=32, max_seq_len=64)


def _tiny(seed: int = 0, **overrides) -> nn.Module:
    torch.manual_seed(seed)
    model = llama3(**{**TINY, "intermediate_dim": 48, **overrides})
    with torch.no_grad():  # non-trivial norms so a misplaced scale would show
        for name, p in model.named_parameters():
            if name.endswith("scale"):
                p.uniform_(0.5, 1.5)
    return model.eval()


TORCHTUNE_LAYER_KEYS = [
    "attn.q_proj.weight",
    "attn.k_proj.weight",
    "attn.v_proj.weight",
    "attn.output_proj.weight",
    "mlp.w1.weight",
    "mlp.w2.weight",
    "mlp.w3.weight",
    "sa_norm.scale",
    "mlp_norm.scale",
]


def test_parameter_names_are_torchtunes():
    model = _tiny()
    expected = {"tok_embeddings.weight", "norm.scale", "output.weight"} | {
        f"layers.{i}.{k}" for i in range(2) for k in TORCHTUNE_LAYER_KEYS
    }
    assert set(model.state_dict()) == expected
    shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert shapes["layers.0.attn.q_proj.weight"] == (32, 32)
    assert shapes["layers.0.attn.k_proj.weight"] == (16, 32)  # 2 kv heads * head_dim 8
    assert shapes["layers.1.mlp.w2.weight"] == (32, 48)
    assert shapes["output.weight"] == (97, 32)


def test_torchtune_named_state_dict_loads_strict_and_reproduces_logits():
    source = _tiny(seed=1)
    sd = {k: v.clone() for k, v in source.state_dict().items()}
    target = _tiny(seed=2)
    tokens = torch.randint(0, 97, (2, 9))
    assert not torch.allclose(source(tokens), target(tokens))
    result = target.load_state_dict(sd, strict=True)
    assert not result.missing_keys and not result.unexpected_keys
    torch.testing.assert_close(target(tokens), source(tokens), rtol=0, atol=0)


def test_lora_model_loads_base_checkpoint_with_only_adapter_keys_missing():
    base = _tiny(seed=1)
    torch.manual_seed(3)
    lora = lora_llama3(
        lora_attn_modules=["q_proj", "v_proj", "output_proj"],
        apply_lora_to_mlp=True,
        apply_lora_to_output=True,
        intermediate_dim=48,
        lora_rank=4,
        lora_alpha=8,
        **TINY,
    ).eval()
    result = lora.load_state_dict(base.state_dict(), strict=False)
    assert not result.unexpected_keys
    assert all(".lora_a." in k or ".lora_b." in k for k in result.missing_keys)
    # q, v, output_proj, w1, w2, w3 per layer (2 layers) + output, each with a and b
    assert len(result.missing_keys) == (6 * 2 + 1) * 2
    assert isinstance(lora.output, LoRALinear)
    tokens = torch.randint(0, 97, (1, 7))
    torch.testing.assert_close(lora(tokens), base(tokens), rtol=0, atol=1e-6)


@pytest.mark.parametrize(
    "builder, expected",
    [
        # Published parameter counts of the released checkpoints.
        (llama3_8b, 8_030_261_248),
        (llama3_1_8b, 8_030_261_248),
        (llama3_2_1b, 1_235_814_400),
        (llama3_70b, 70_553_706_496),
        (llama3_1_70b, 70_553_706_496),
    ],
)
def test_presets_have_published_parameter_counts(builder, expected):
    with torch.device("meta"):
        model = builder()
    assert sum(p.numel() for p in model.parameters()) == expected


def test_preset_rope_and_tying():
    with torch.device("meta"):
        m31, m32, m3 = llama3_1_8b(), llama3_2_1b(), llama3_8b()
    assert isinstance(m31.layers[0].attn.pos_embeddings, Llama3ScaledRoPE)
    assert m31.layers[0].attn.pos_embeddings.scale_factor == 8
    assert m32.layers[0].attn.pos_embeddings.scale_factor == 32
    assert not isinstance(m3.layers[0].attn.pos_embeddings, Llama3ScaledRoPE)
    assert "output.weight" not in m32.state_dict()
    assert m32.output.tied_module is m32.tok_embeddings


def test_lora_presets_and_validation():
    with torch.device("meta"):
        model = lora_llama3_8b(["q_proj", "v_proj"], lora_rank=16, lora_alpha=32)
    attn = model.layers[31].attn
    assert isinstance(attn.q_proj, LoRALinear) and isinstance(attn.v_proj, LoRALinear)
    assert isinstance(attn.k_proj, nn.Linear) and not isinstance(attn.k_proj, LoRALinear)
    assert attn.q_proj.lora_a.weight.shape == (16, 4096)
    assert attn.q_proj.scaling == 2.0
    with pytest.raises(ValueError, match="tied"), torch.device("meta"):
        lora_llama3_2_1b(["q_proj"], apply_lora_to_output=True)
    with pytest.raises(ValueError, match="wq"):
        lora_llama3(lora_attn_modules=["wq"], lora_rank=2, lora_alpha=4, **TINY)


def test_tied_embeddings_share_one_matrix():
    model = _tiny(tie_word_embeddings=True)
    assert "output.weight" not in model.state_dict()
    tokens = torch.randint(0, 97, (1, 5))
    with torch.no_grad():
        h = model.norm(_hidden(model, tokens))
        torch.testing.assert_close(model(tokens), h @ model.tok_embeddings.weight.T)


def _hidden(model: nn.Module, tokens: torch.Tensor) -> torch.Tensor:
    h = model.tok_embeddings(tokens)
    for layer in model.layers:
        h = layer(h)
    return h


def test_packed_row_matches_each_conversation_alone():
    model = _tiny()
    torch.manual_seed(5)
    lengths = [5, 9, 3, 7]  # last document plays the trailing padding
    docs = [torch.randint(0, 97, (n,)) for n in lengths]
    tokens = torch.cat(docs)[None]
    document_ids = torch.cat([torch.full((n,), i) for i, n in enumerate(lengths)])[None]
    input_pos = torch.cat([torch.arange(n) for n in lengths])[None]
    mask = packed_block_causal_mask(document_ids)
    assert mask.dtype == torch.bool and mask.shape == (1, 24, 24)
    with torch.no_grad():
        packed = model(tokens, mask=mask, input_pos=input_pos)
        start = 0
        for doc in docs:
            alone = model(doc[None])
            torch.testing.assert_close(
                packed[:, start : start + len(doc)], alone, rtol=0, atol=1e-5
            )
            start += len(doc)
        # Without the mask and positions, later documents see earlier ones: logits differ.
        unpacked = model(tokens)
    assert not torch.allclose(unpacked[:, 5:14], packed[:, 5:14], atol=1e-3)


def test_packed_mask_is_block_diagonal_causal():
    mask = packed_block_causal_mask(torch.tensor([[0, 0, 1, 1, 1, 2]]))
    expected = torch.tensor(
        [
            [1, 0, 0, 0, 0, 0],
            [1, 1, 0, 0, 0, 0],
            [0, 0, 1, 0, 0, 0],
            [0, 0, 1, 1, 0, 0],
            [0, 0, 1, 1, 1, 0],
            [0, 0, 0, 0, 0, 1],
        ],
        dtype=torch.bool,
    )
    assert torch.equal(mask[0], expected)


@pytest.mark.filterwarnings("ignore:flex_attention called without torch.compile")
def test_flex_block_mask_path_matches_bool_mask():
    flex = pytest.importorskip("torch.nn.attention.flex_attention")
    from raytune_chat.modules.attention_utils import block_causal_block_mask

    model = _tiny()
    document_ids = torch.tensor([[0] * 5 + [1] * 6 + [2] * 5, [0] * 10 + [1] * 6])
    input_pos = torch.cat(
        [
            torch.cat([torch.arange(5), torch.arange(6), torch.arange(5)])[None],
            torch.cat([torch.arange(10), torch.arange(6)])[None],
        ]
    )
    tokens = torch.randint(0, 97, (2, 16))
    block_mask = block_causal_block_mask(document_ids)
    assert isinstance(block_mask, flex.BlockMask)
    with torch.no_grad():
        expected = model(tokens, mask=packed_block_causal_mask(document_ids), input_pos=input_pos)
        got = model(tokens, mask=block_mask, input_pos=input_pos)
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-5)


def test_output_chunks_concatenate_to_full_logits():
    model = _tiny()
    tokens = torch.randint(0, 97, (2, 11))
    with torch.no_grad():
        full = model(tokens)
        model.set_num_output_chunks(4)
        chunks = model(tokens)
    assert isinstance(chunks, list) and len(chunks) == 4
    assert [c.shape[1] for c in chunks] == [3, 3, 3, 2]
    # Same math on smaller matmuls: equal up to float summation order.
    torch.testing.assert_close(torch.cat(chunks, dim=1), full, rtol=0, atol=1e-6)


def test_gqa_equals_mha_with_repeated_kv_heads():
    gqa = _tiny()
    mha = _tiny(num_kv_heads=4)
    sd = gqa.state_dict()
    for i in range(2):
        for proj in ("k_proj", "v_proj"):
            w = sd[f"layers.{i}.attn.{proj}.weight"].view(2, 8, 32)  # (kv_heads, head_dim, in)
            sd[f"layers.{i}.attn.{proj}.weight"] = w.repeat_interleave(2, dim=0).reshape(32, 32)
    mha.load_state_dict(sd, strict=True)
    tokens = torch.randint(0, 97, (2, 10))
    with torch.no_grad():
        torch.testing.assert_close(mha(tokens), gqa(tokens), rtol=0, atol=1e-5)


def test_activation_checkpointing_gives_identical_gradients():
    tokens = torch.randint(0, 97, (2, 12))
    grads = []
    for enabled in (False, True):
        model = _tiny().train()
        if enabled:
            set_activation_checkpointing(model)
            assert all(type(layer).__name__ == "CheckpointWrapper" for layer in model.layers)
        model(tokens).float().pow(2).mean().backward()
        grads.append(
            {
                n.replace("._checkpoint_wrapped_module", ""): p.grad.clone()
                for n, p in model.named_parameters()
            }
        )
    assert grads[0].keys() == grads[1].keys()
    for name in grads[0]:
        torch.testing.assert_close(grads[1][name], grads[0][name], rtol=0, atol=0)


def test_bf16_model_tracks_fp32_and_keeps_rope_table_fp32():
    model = _tiny()
    tokens = torch.randint(0, 97, (1, 16))
    with torch.no_grad():
        ref = model(tokens)
        model.to(torch.bfloat16)
        got = model(tokens)
    assert got.dtype == torch.bfloat16
    assert model.layers[0].attn.pos_embeddings._table(torch.device("cpu")).dtype == torch.float32
    assert (got.float() - ref).abs().max() < 0.1 * ref.abs().max()
    assert got.float().argmax(-1).eq(ref.argmax(-1)).float().mean() > 0.8


def test_too_long_sequence_is_rejected():
    with pytest.raises(ValueError, match="max_seq_len=64"):
        _tiny()(torch.zeros(1, 65, dtype=torch.long))
