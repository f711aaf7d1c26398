"""Cross-entropy over logits chunks, upcasting one chunk at a time."""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn
from torch.nn import functional as F

from raytune_chat.data import CROSS_ENTROPY_IGNORE_IDX

__all__ = ["CEWithChunkedOutputLoss"]


class CEWithChunkedOutputLoss(nn.Module):
    """Token cross-entropy that never holds full-vocabulary fp32 logits for the whole batch.

    Pair it with ``model.set_num_output_chunks(loss.num_output_chunks)``: the model returns
    its logits as a list of sequence chunks in the model dtype, and each chunk is cast to fp32
    only while its own loss is computed. A plain logits tensor is accepted too and chunked
    here. ``labels`` are already aligned with the logits (shifted per sample upstream).

    Args:
        num_output_chunks: Sequence chunks (must match the model's).
        ignore_index: Label value that takes no loss.
        reduction: ``"mean"`` over trained tokens, or ``"sum"`` (for normalising across
            micro-batches). With no trained tokens, ``"mean"`` returns 0, not NaN.

    Example:
        >>> loss_fn = CEWithChunkedOutputLoss(num_output_chunks=2)
        >>> logits = torch.zeros(1, 4, 10)
        >>> from raytune_chat.data import CROSS_ENTROPY_IGNORE_IDX
        >>> labels = torch.tensor([[1, 2, CROSS_ENTROPY_IGNORE_IDX, 3]])
        >>> round(loss_fn(list(logits.chunk(2, dim=1)), labels).item(), 4)  # log(10)
        2.3026
    """

    def __init__(
        self,
        num_output_chunks: int = 8,
        ignore_index: int = CROSS_ENTROPY_IGNORE_IDX,
        reduction: Literal["mean", "sum"] = "mean",
    ) -> None:
        super().__init__()
        if reduction not in ("mean", "sum"):
            raise ValueError(f"reduction must be 'mean' or 'sum', got {reduction!r}")
        self.num_output_chunks = num_output_chunks
        self.ignore_index = ignore_index
        self.reduction = reduction

    def forward(
        self, logits: list[torch.Tensor] | torch.Tensor, labels: torch.Tensor
    ) -> torch.Tensor:
        """Loss of ``logits`` (chunks (b, s_i, vocab) or one (b, s, vocab)) vs (b, s) labels."""
        chunks = (
            list(logits.chunk(self.num_output_chunks, dim=1))
            if isinstance(logits, torch.Tensor)
            else logits
        )
        label_chunks = labels.split([chunk.shape[1] for chunk in chunks], dim=1)
        total = sum(
            F.cross_entropy(
                chunk.float().flatten(0, 1),
                chunk_labels.flatten(),
                ignore_index=self.ignore_index,
                reduction="sum",
            )
            for chunk, chunk_labels in zip(chunks, label_chunks, strict=True)
        )
        if self.reduction == "sum":
            return total
        num_trained = (labels != self.ignore_index).sum().clamp(min=1)
        return total / num_trained
