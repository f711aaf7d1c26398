"""attend(): causal, bool-mask and GQA paths agree with a hand-written reference."""

from __future__ import annotations

import torch

from raytune_chat.modules.attention_utils import attend, packed_block_causal_mask


def _reference(q, k, v, mask):
    k = k.repeat_interleave(q.shape[1] // k.shape[1], dim=1)
    v = v.repeat_interleave(q.shape[1] // v.shape[1], dim=1)
    scores = q @ k.transpose(-1, -2) / q.shape[-1] ** 0.5
    scores = scores.masked_fill(~mask[:, None], float("-inf"))
    return scores.softmax(-1) @ v


def test_causal_and_masked_attention_match_reference():
    torch.manual_seed(0)
    q, k, v = torch.randn(2, 4, 6, 8), torch.randn(2, 2, 6, 8), torch.randn(2, 2, 6, 8)
    causal = torch.ones(6, 6, dtype=torch.bool).tril().expand(2, 6, 6)
    torch.testing.assert_close(attend(q, k, v, mask=None), _reference(q, k, v, causal))
    docs = torch.tensor([[0, 0, 0, 1, 1, 2], [0, 1, 1, 1, 1, 1]])
    mask = packed_block_causal_mask(docs)
    torch.testing.assert_close(attend(q, k, v, mask=mask), _reference(q, k, v, mask))


def test_cpu_mask_is_a_bool_tensor():
    mask = packed_block_causal_mask(torch.zeros(3, 5, dtype=torch.int32))
    assert mask.dtype == torch.bool and mask.shape == (3, 5, 5)
    assert torch.equal(mask[1], torch.ones(5, 5, dtype=torch.bool).tril())
