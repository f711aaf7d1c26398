"""One optimizer step of LoRA fine-tuning, as plain torch (no Ray).

The loss is normalised by the number of trained tokens (labels not
``CROSS_ENTROPY_IGNORE_IDX``) of the whole step — all micro-batches, all data-parallel ranks —
not averaged per micro-batch: each micro-batch's mean loss is multiplied back by its token
count, summed, and the gradients are divided by the global count before the optimizer step
(torchtune 0.6.1's scheme). Labels arrive already shifted per sample (spec §4), so logits at
position i are compared with labels[i].
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from raytune_chat.data import CROSS_ENTROPY_IGNORE_IDX
from raytune_chat.modules.attention_utils import packed_block_causal_mask

__all__ = ["StepStats", "micro_batch_loss", "scale_grads", "train_step"]


@dataclass(frozen=True)
class StepStats:
    """What one optimizer step did, summed over all data-parallel ranks."""

    loss: float
    num_tokens: int
    num_trained_tokens: int
    grad_norm: float | None


def micro_batch_loss(
    model: nn.Module, loss_fn: nn.Module, batch: Mapping[str, torch.Tensor], device: torch.device
) -> tuple[torch.Tensor, int]:
    """Forward one micro-batch; return (loss summed over trained tokens, their count).

    A packed batch (with `document_ids`) attends block-causally and uses `input_pos`.
    """
    tokens = batch["tokens"].to(device, non_blocking=True)  # (b, s)
    labels = batch["labels"].to(device, non_blocking=True)  # (b, s)
    kwargs = {}
    if "document_ids" in batch:
        kwargs["mask"] = packed_block_causal_mask(batch["document_ids"].to(device))
        kwargs["input_pos"] = batch["input_pos"].to(device)
    num_trained = int((labels != CROSS_ENTROPY_IGNORE_IDX).sum())
    logits = model(tokens, **kwargs)  # (b, s, vocab) or a list of chunks
    if num_trained == 0:
        return logits[0].sum() * 0.0 if isinstance(logits, list) else logits.sum() * 0.0, 0
    return loss_fn(logits, labels) * num_trained, num_trained


def scale_grads(model: nn.Module, factor: float) -> None:
    """Multiply every existing gradient of `model` by `factor` in place."""
    for p in model.parameters():
        if p.grad is not None:
            p.grad.mul_(factor)


def _gradient_sync(model: nn.Module, last: bool) -> contextlib.AbstractContextManager:
    """Sync gradients on the last micro-batch only: DDP's `no_sync`, FSDP2's switch."""
    if hasattr(model, "set_requires_gradient_sync"):  # FSDP2
        model.set_requires_gradient_sync(last)
        return contextlib.nullcontext()
    if last or not hasattr(model, "no_sync"):
        return contextlib.nullcontext()
    return model.no_sync()


def _global_sums(values: list[float], device: torch.device) -> tuple[list[float], int]:
    """Sum `values` over data-parallel ranks; also return the world size."""
    if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
        return values, 1
    summed = torch.tensor(values, dtype=torch.float64, device=device)
    torch.distributed.all_reduce(summed)
    return summed.tolist(), torch.distributed.get_world_size()


def train_step(
    model: nn.Module,
    loss_fn: nn.Module,
    optimizer: torch.optim.Optimizer,
    lr_scheduler: torch.optim.lr_scheduler.LRScheduler | None,
    micro_batches: Sequence[Mapping[str, torch.Tensor]],
    *,
    device: torch.device,
    clip_grad_norm: float | None = None,
) -> StepStats:
    """Run forward/backward over `micro_batches`, then one optimizer (and scheduler) step.

    Works on a plain module, a DDP-wrapped one or one sharded with FSDP2 (gradients synced
    on the last micro-batch only; the clipped norm is over the whole model).

    Args:
        model: the model; only parameters with `requires_grad` are updated.
        loss_fn: mean cross-entropy over non-ignored labels (e.g. `CEWithChunkedOutputLoss`).
        optimizer: the optimizer over the trainable parameters.
        lr_scheduler: stepped once after the optimizer, or None.
        micro_batches: collated batches (`tokens`, `labels`[, `input_pos`, `document_ids`]).
        device: where the model lives.
        clip_grad_norm: max gradient norm, or None for no clipping.

    Returns:
        `StepStats` with the step's loss per trained token across all ranks.

    Example:
        >>> import torch
        >>> from torch import nn
        >>> class Tiny(nn.Module):
        ...     def __init__(self):
        ...         super().__init__(); self.emb = nn.Embedding(8, 8)
        ...     def forward(self, tokens, **_):
        ...         return self.emb(tokens)
        >>> model = Tiny(); opt = torch.optim.SGD(model.parameters(), lr=0.1)
        >>> from raytune_chat.data import CROSS_ENTROPY_IGNORE_IDX as IGNORE
        >>> batch = {"tokens": torch.tensor([[1, 2]]), "labels": torch.tensor([[2, IGNORE]])}
        >>> ce = lambda logits, labels: nn.functional.cross_entropy(
        ...     logits.flatten(0, 1), labels.flatten(), ignore_index=IGNORE)
        >>> stats = train_step(model, ce, opt, None, [batch], device=torch.device("cpu"))
        >>> stats.num_trained_tokens, stats.num_tokens
        (1, 2)
    """
    optimizer.zero_grad(set_to_none=True)
    loss_sum, num_trained, num_tokens = 0.0, 0, 0
    for i, batch in enumerate(micro_batches):
        last = i == len(micro_batches) - 1
        with _gradient_sync(model, last):
            loss, n = micro_batch_loss(model, loss_fn, batch, device)
            loss.backward()
        loss_sum += float(loss.detach())
        num_trained += n
        num_tokens += batch["tokens"].numel()
    (global_loss, global_trained, global_tokens), world = _global_sums(
        [loss_sum, num_trained, num_tokens], device
    )
    # DDP (and FSDP) averaged gradients over ranks; undo that and divide by the global token count.
    scale_grads(model, world / max(global_trained, 1))
    grad_norm = None
    if clip_grad_norm is not None:
        params = [p for p in model.parameters() if p.requires_grad]
        norm = torch.nn.utils.clip_grad_norm_(params, max_norm=float(clip_grad_norm))
        # FSDP's grads are shards (DTensors): the norm is then a DTensor whose full value
        # is the norm over all ranks' shards, the one the gradients were clipped with.
        grad_norm = float(norm.full_tensor() if hasattr(norm, "full_tensor") else norm)
    optimizer.step()
    if lr_scheduler is not None:
        lr_scheduler.step()
    return StepStats(
        loss=global_loss / max(global_trained, 1),
        num_tokens=int(global_tokens),
        num_trained_tokens=int(global_trained),
        grad_norm=grad_norm,
    )
