"""RMSNorm and rotary embeddings against their definitions and transformers' Llama 3.1 RoPE."""

from __future__ import annotations

import math

import pytest
import torch

from raytune_chat.modules import Llama3ScaledRoPE, RMSNorm, RotaryPositionalEmbeddings


def test_rms_norm_matches_definition():
    norm = RMSNorm(4, eps=0.0)
    with torch.no_grad():
        norm.scale.copy_(torch.tensor([1.0, 2.0, 3.0, 4.0]))
    x = torch.tensor([[1.0, -1.0, 1.0, -1.0], [2.0, 2.0, 2.0, 2.0]])
    # rms of both rows is |x|, so the normalised rows are +-1 times the gain
    assert norm(x).tolist() == [[1.0, -2.0, 3.0, -4.0], [1.0, 2.0, 3.0, 4.0]]
    assert list(dict(norm.named_parameters())) == ["scale"]


def test_rope_rotates_adjacent_pairs_by_position_times_frequency():
    rope = RotaryPositionalEmbeddings(dim=4, max_seq_len=8, base=10_000.0)
    x = torch.tensor([1.0, 0.0, 1.0, 0.0]).expand(1, 3, 1, 4)  # (b, s, h, d)
    out = rope(x)
    for pos in range(3):
        angles = [pos * 1.0, pos * 10_000.0 ** (-2 / 4)]
        expected = [
            math.cos(angles[0]),
            math.sin(angles[0]),
            math.cos(angles[1]),
            math.sin(angles[1]),
        ]
        torch.testing.assert_close(out[0, pos, 0], torch.tensor(expected), rtol=0, atol=1e-6)


def test_rope_scores_depend_only_on_relative_position():
    rope = RotaryPositionalEmbeddings(dim=8, max_seq_len=64)
    q, k = torch.randn(1, 1, 1, 8), torch.randn(1, 1, 1, 8)

    def score(pq: int, pk: int) -> float:
        rq = rope(q, input_pos=torch.tensor([[pq]]))
        rk = rope(k, input_pos=torch.tensor([[pk]]))
        return (rq * rk).sum().item()

    assert score(7, 3) == pytest.approx(score(40, 36), abs=1e-5)
    assert score(7, 3) != pytest.approx(score(7, 4), abs=1e-3)


def test_input_pos_selects_rows_of_the_table():
    rope = RotaryPositionalEmbeddings(dim=8, max_seq_len=32)
    x = torch.randn(1, 4, 2, 8)
    restarted = rope(x, input_pos=torch.tensor([[0, 1, 0, 1]]))
    torch.testing.assert_close(restarted[:, 2:], rope(x[:, 2:]), rtol=0, atol=0)


def test_llama3_scaled_frequencies_match_transformers():
    from transformers import LlamaConfig
    from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS

    head_dim, base = 64, 500_000.0
    config = LlamaConfig(
        hidden_size=head_dim * 2,
        num_attention_heads=2,
        max_position_embeddings=131_072,
        rope_parameters={
            "rope_type": "llama3",
            "rope_theta": base,
            "factor": 8.0,
            "low_freq_factor": 1.0,
            "high_freq_factor": 4.0,
            "original_max_position_embeddings": 8192,
        },
    )
    hf_inv_freq, _ = ROPE_INIT_FUNCTIONS["llama3"](config, device=torch.device("cpu"))
    ours = Llama3ScaledRoPE(dim=head_dim, base=base, scale_factor=8).inverse_frequencies()
    plain = RotaryPositionalEmbeddings(dim=head_dim, base=base).inverse_frequencies()
    torch.testing.assert_close(ours, hf_inv_freq.float(), rtol=1e-6, atol=0)
    # all three regimes occur: kept, divided by 8, and interpolated
    ratio = plain / ours
    assert (ratio == 1).any() and torch.isclose(ratio, torch.tensor(8.0)).any()
    assert ((ratio > 1.01) & (ratio < 7.99)).any()
