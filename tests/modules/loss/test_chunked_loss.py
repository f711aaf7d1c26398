"""CEWithChunkedOutputLoss equals plain cross-entropy and upcasts chunk by chunk."""

from __future__ import annotations

import pytest
import torch
from torch.nn import functional as F
from torch.utils._python_dispatch import TorchDispatchMode

from raytune_chat.modules.loss import CEWithChunkedOutputLoss


def _batch(seed: int = 0):
    torch.manual_seed(seed)
    logits = torch.randn(3, 13, 50)
    labels = torch.randint(0, 50, (3, 13))
    labels[0, :4] = -100
    labels[2, 9:] = -100
    return logits, labels


def test_mean_equals_full_cross_entropy():
    logits, labels = _batch()
    expected = F.cross_entropy(logits.flatten(0, 1), labels.flatten(), ignore_index=-100)
    loss_fn = CEWithChunkedOutputLoss(num_output_chunks=4)
    torch.testing.assert_close(loss_fn(list(logits.chunk(4, dim=1)), labels), expected)
    torch.testing.assert_close(loss_fn(logits, labels), expected)


def test_sum_reduction_and_trained_token_count():
    logits, labels = _batch()
    expected = F.cross_entropy(
        logits.flatten(0, 1), labels.flatten(), ignore_index=-100, reduction="sum"
    )
    loss_fn = CEWithChunkedOutputLoss(num_output_chunks=3, reduction="sum")
    torch.testing.assert_close(loss_fn(logits, labels), expected)
    mean = CEWithChunkedOutputLoss(num_output_chunks=3)(logits, labels)
    torch.testing.assert_close(mean * (labels != -100).sum(), expected)


def test_bf16_chunks_are_upcast_per_chunk_and_gradients_flow():
    logits, labels = _batch()
    chunks = [c.bfloat16().requires_grad_() for c in logits.chunk(2, dim=1)]
    loss = CEWithChunkedOutputLoss(num_output_chunks=2)(chunks, labels)
    assert loss.dtype == torch.float32
    expected = F.cross_entropy(
        torch.cat(chunks, 1).float().flatten(0, 1), labels.flatten(), ignore_index=-100
    )
    torch.testing.assert_close(loss, expected)
    loss.backward()
    assert all(c.grad is not None and c.grad.dtype == torch.bfloat16 for c in chunks)


def test_no_trained_tokens_gives_zero_not_nan():
    logits = torch.randn(1, 4, 10)
    loss = CEWithChunkedOutputLoss(num_output_chunks=2)(logits, torch.full((1, 4), -100))
    assert loss.item() == 0.0


def test_unknown_reduction_is_rejected():
    with pytest.raises(ValueError, match="reduction"):
        CEWithChunkedOutputLoss(reduction="none")


class _LargestFloat32(TorchDispatchMode):
    """Records the largest fp32 tensor any op produces while active."""

    def __init__(self) -> None:
        super().__init__()
        self.largest = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in out if isinstance(out, (tuple, list)) else (out,):
            if isinstance(t, torch.Tensor) and t.dtype == torch.float32:
                self.largest = max(self.largest, t.numel())
        return out


def test_never_materialises_full_fp32_logits():
    b, s, vocab, chunks = 2, 16, 64, 4
    logits = [c.bfloat16() for c in torch.randn(b, s, vocab).chunk(chunks, dim=1)]
    labels = torch.randint(0, vocab, (b, s))
    with _LargestFloat32() as probe:
        CEWithChunkedOutputLoss(num_output_chunks=chunks)(logits, labels)
    assert probe.largest == b * (s // chunks) * vocab  # one chunk's logits, never all of them
