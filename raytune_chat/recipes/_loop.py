"""Helpers of the training loop that need no Ray: step grouping, timing, log records."""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import torch

from raytune_chat.training import StepStats, peak_memory_gib

__all__ = ["MetricWindow", "data_fields", "optimizer_steps"]


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
