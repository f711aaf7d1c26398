"""The validation loss, as plain torch (no Ray): the training loss over held-out rows.

The same loss as `train_step` (`micro_batch_loss`: the configured loss, labels shifted per
sample), without gradients and with the model in eval mode (dropout off), then back in the
mode it was in. The result is the mean over trained tokens of all validation rows on all
data-parallel ranks: each rank sums loss x tokens and tokens over its batches, and the two
sums are all-reduced, so a rank with longer rows weighs more, as a single process would.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from raytune_chat.training._distributed import all_ranks_have
from raytune_chat.training._train_step import _global_sums, micro_batch_loss

__all__ = ["ValStats", "val_record", "validation_due", "validation_loss", "validation_step"]


@dataclass(frozen=True)
class ValStats:
    """One validation pass: the loss per trained token and what it covered, all ranks."""

    loss: float
    num_trained_tokens: int
    num_batches: int  # per rank: every rank runs the same number


def validation_step(
    model: nn.Module, loss_fn: nn.Module, batch: Mapping[str, torch.Tensor], device: torch.device
) -> tuple[float, int]:
    """Forward one validation batch without gradients; (loss summed over its trained tokens,
    their count)."""
    with torch.no_grad():
        loss, n = micro_batch_loss(model, loss_fn, batch, device)
    return float(loss), n


def validation_loss(
    model: nn.Module,
    loss_fn: nn.Module,
    batches: Iterable[Mapping[str, torch.Tensor]],
    *,
    device: torch.device,
    max_steps: int | None = None,
) -> ValStats:
    """The token-weighted mean loss over `batches` (this rank's) and every other rank's.

    Every rank must call it at the same point of training: before each batch the ranks agree
    that all of them have one (a rank whose shard has ended stops them all), so every rank
    runs the same forwards (DDP/FSDP forwards are collectives) and none waits forever.

    Args:
        model: the model (plain, DDP- or FSDP-wrapped); put in eval mode, then back.
        loss_fn: the training loss (mean over non-ignored labels).
        batches: this rank's collated validation batches.
        device: where the model lives.
        max_steps: at most this many batches per rank (None: all).

    Returns:
        `ValStats` with the loss per trained token over all ranks' batches.

    Example:
        >>> from torch import nn
        >>> from raytune_chat.data import CROSS_ENTROPY_IGNORE_IDX as IGNORE
        >>> class Tiny(nn.Module):
        ...     def __init__(self):
        ...         super().__init__(); self.emb = nn.Embedding(8, 8)
        ...     def forward(self, tokens, **_):
        ...         return self.emb(tokens)
        >>> ce = lambda logits, labels: nn.functional.cross_entropy(
        ...     logits.flatten(0, 1), labels.flatten(), ignore_index=IGNORE)
        >>> batches = [{"tokens": torch.tensor([[1, 2]]), "labels": torch.tensor([[2, 3]])},
        ...            {"tokens": torch.tensor([[4, 5]]), "labels": torch.tensor([[5, IGNORE]])}]
        >>> model = Tiny()
        >>> stats = validation_loss(model, ce, batches, device=torch.device("cpu"))
        >>> stats.num_trained_tokens, stats.num_batches, model.training
        (3, 2, True)
    """
    was_training = model.training
    model.eval()
    loss_sum, trained, steps = 0.0, 0, 0
    it = iter(batches)
    try:
        while max_steps is None or steps < max_steps:
            batch = next(it, None)
            if not all_ranks_have(batch is not None, device):
                break
            loss, n = validation_step(model, loss_fn, batch, device)
            loss_sum, trained, steps = loss_sum + loss, trained + n, steps + 1
    finally:
        model.train(was_training)
        close = getattr(it, "close", None)
        if close is not None:
            close()  # a pass cut short by max_steps lets go of its data stream now
    (global_loss, global_trained), _ = _global_sums([loss_sum, trained], device)
    return ValStats(
        loss=global_loss / max(global_trained, 1),
        num_trained_tokens=int(global_trained),
        num_batches=steps,
    )


def validation_due(step: int, every: int | None, *, end: bool = False) -> bool:
    """Whether to validate after optimizer step `step`: every `every` steps, and at the end
    of the run unless that step has just been validated.

    Example:
        >>> [s for s in range(1, 8) if validation_due(s, 3)], validation_due(7, 3, end=True)
        ([3, 6], True)
        >>> validation_due(6, 3, end=True), validation_due(5, None, end=True)
        (False, True)
    """
    periodic = every is not None and step > 0 and step % every == 0
    return not periodic if end else periodic


def val_record(stats: ValStats, data: Any) -> dict[str, Any]:
    """The metrics-log record of a validation pass, with the validation set's row counts
    (`data`, its `ChatDatasetStats`: counted apart from the training set's)."""
    return {
        "val_loss": stats.loss,
        "val_trained_tokens": stats.num_trained_tokens,
        "val_batches": stats.num_batches,
        "val_rows_read": data.rows_read,
        "val_rows_kept": data.rows_kept,
        "val_rows_rejected": data.rows_rejected,
        "val_data_complete": data.complete,
    }
