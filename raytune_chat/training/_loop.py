"""Helpers of the training loop that need no Ray: step grouping, timing, log records, row ids."""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from raytune_chat.training._activations import peak_memory_gib
from raytune_chat.training._train_state import TrainPosition
from raytune_chat.training._train_step import StepStats
from raytune_chat.training.metric_logging import DiskLogger
from raytune_chat.training.recipe_config import RecipeSettings

__all__ = [
    "MetricWindow",
    "RowIdCollate",
    "RowIdLog",
    "WorkerParts",
    "data_fields",
    "optimizer_steps",
    "step_record",
]


def optimizer_steps(
    batches: Iterable[dict[str, torch.Tensor]], accumulation: int, skip: int = 0
) -> Iterator[tuple[list[dict[str, torch.Tensor]], float]]:
    """Group micro-batches into optimizer steps; yield (micro_batches, seconds waited).

    The first `skip` steps are drawn and dropped (a resumed run skips consumed data). A
    trailing group shorter than `accumulation` is dropped, so every rank takes the same steps.

    Example:
        >>> [len(g) for g, _ in optimizer_steps(iter(range(7)), 3)]
        [3, 3]
        >>> [g for g, _ in optimizer_steps(iter(range(7)), 2, skip=2)]
        [[4, 5]]
    """
    it = iter(batches)
    for _ in range(skip):
        if len(list(itertools.islice(it, accumulation))) < accumulation:
            return
    while True:
        start = time.perf_counter()
        group = list(itertools.islice(it, accumulation))
        waited = time.perf_counter() - start
        if len(group) < accumulation:
            return
        yield group, waited


@dataclass
class MetricWindow:
    """Accumulates steps between two log lines and turns them into one record."""

    device: torch.device
    log_peak_memory: bool = True
    start: float = field(default_factory=time.perf_counter)
    tokens: int = 0
    trained_tokens: int = 0
    data_wait: float = 0.0
    steps: int = 0

    def add(self, stats: StepStats, waited: float) -> None:
        self.tokens += stats.num_tokens
        self.trained_tokens += stats.num_trained_tokens
        self.data_wait += waited
        self.steps += 1

    def record(self, stats: StepStats, lr: float, epoch: int) -> dict[str, Any]:
        """The log record for the window ending with `stats`; resets the window."""
        seconds = max(time.perf_counter() - self.start, 1e-9)
        record: dict[str, Any] = {
            "epoch": epoch,
            "loss": stats.loss,
            "lr": lr,
            "tokens_per_second": self.tokens / seconds,
            "trained_tokens_per_second": self.trained_tokens / seconds,
            "data_wait_seconds": self.data_wait,
            "data_wait_fraction": self.data_wait / seconds,
            "seconds_per_step": seconds / max(self.steps, 1),
        }
        if stats.grad_norm is not None:
            record["grad_norm"] = stats.grad_norm
        if self.log_peak_memory:
            record["peak_memory_gib"] = peak_memory_gib(self.device)
        self.start, self.tokens, self.trained_tokens = time.perf_counter(), 0, 0
        self.data_wait, self.steps = 0.0, 0
        return record


def data_fields(stats: Any) -> dict[str, Any]:
    """The pass ledger's counts (a `ChatDatasetStats`) as fields of a log record.

    They grow while the first pass streams; ``rows_read = rows_kept + rows_rejected +
    rows_filtered`` holds in every record, and the counts are final once ``data_complete``.
    """
    fields: dict[str, Any] = {
        "rows_read": stats.rows_read,
        "rows_kept": stats.rows_kept,
        "rows_rejected": stats.rows_rejected,
        "rows_rejected_by_reason": dict(stats.rejected_by_reason),
        "rows_truncated": stats.truncated_rows,
        "data_tokens": stats.num_tokens,
        "rows_tokenized": stats.rows_tokenized,
        "data_complete": stats.complete,
    }
    if stats.rows_filtered:
        fields["rows_filtered"] = stats.rows_filtered
    if stats.dropped:
        fields["dropped"] = dict(stats.dropped)
    if stats.packing_fill_ratio is not None:
        fields["packing_fill_ratio"] = stats.packing_fill_ratio
    return fields


def step_record(
    window: MetricWindow,
    stats: StepStats,
    lr: float,
    position: TrainPosition,
    *,
    resumed_from_step: int,
    data: Any,
) -> dict[str, Any]:
    """The metrics-log record of the step at `position`: the window's rates, the run's
    totals and plan, and the pass ledger's counts (`data`, a `ChatDatasetStats`)."""
    record = window.record(stats, lr, position.epoch)
    record["tokens_seen"] = position.num_tokens
    record["trained_tokens_seen"] = position.num_trained_tokens
    record["resumed_from_step"] = resumed_from_step
    record["planned_steps"] = position.planned_steps
    record["plan"] = f"{'exact' if position.plan_exact else 'estimate'} ({position.plan_basis})"
    record.update(data_fields(data))
    return record


class RowIdCollate:
    """A collate that also passes on the rows' ids (for `RowIdLog`)."""

    def __init__(self, collate: Callable[[Mapping[str, Any]], Any]) -> None:
        self.collate = collate

    def __call__(self, batch: Mapping[str, Any]) -> Any:
        out = self.collate(batch)
        if "row_id" in batch:
            out["row_id"] = torch.from_numpy(np.asarray(batch["row_id"], dtype=np.int64))
        return out


class RowIdLog:
    """`<output_dir>/row_ids/rank_<r>.jsonl`: the row ids each step of this rank trained on."""

    def __init__(self, output_dir: str, rank: int) -> None:
        folder = str(Path(output_dir) / "row_ids")
        self.log = DiskLogger(log_dir=folder, filename=f"rank_{rank}.jsonl")

    def log_step(self, position: TrainPosition, micro_batches: list[dict[str, Any]]) -> None:
        ids = [int(i) for b in micro_batches if "row_id" in b for i in b["row_id"].tolist()]
        self.log.log_dict({"epoch": position.epoch, "row_ids": ids}, step=position.global_step)

    def truncate_after(self, step: int) -> None:
        self.log.truncate_after(step)

    def close(self) -> None:
        self.log.close()


@dataclass
class WorkerParts:
    """What a recipe's epoch loop works with, built once per worker by its train loop."""

    settings: RecipeSettings
    model: nn.Module  # DDP/FSDP-wrapped on several ranks
    loss_fn: nn.Module
    optimizer: torch.optim.Optimizer
    lr_scheduler: torch.optim.lr_scheduler.LRScheduler
    device: torch.device
    collate: Callable[[Mapping[str, Any]], dict[str, torch.Tensor]]
    data: Any  # the dataset's ChatDatasetInfo: pass ledger, token store, collate
    datasets: list[str]  # the names the trainer was given: "train", maybe "cached"
    loggers: list[Any]  # rank 0's metric loggers (none on other ranks)
    row_log: RowIdLog | None
    rank: int = 0
    resumed_from_step: int = 0
    val_data: Any = None  # the `dataset_val` dataset's ChatDatasetInfo, or None
