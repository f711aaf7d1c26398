"""Statistics of one pass over a chat dataset, and the rejected-fraction check.

No Ray import: :func:`dataset_stats` only calls methods of the ``Dataset`` it is given.
Kept rows and token counts come from the per-row count columns; rejected rows come from the
quarantine files (deduplicated, so repeated passes do not double count).
"""

from __future__ import annotations

import weakref
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from raytune_chat.data import DROPPED_KINDS
from raytune_chat.datasets._quarantine import TooManyRejectedRows, read_rejects, summarize_reasons
from raytune_chat.datasets._tokenize import DROPPED_COLUMNS

__all__ = ["ChatDatasetInfo", "ChatDatasetStats", "chat_dataset_info", "dataset_stats"]


@dataclass(frozen=True)
class ChatDatasetInfo:
    """What ``chat_dataset`` decided, for the recipe: the collate class and the stats."""

    packed: bool
    max_seq_len: int | None
    pad_id: int
    rejected_path: str | None
    max_rejected_fraction: float
    storage_options: Mapping[str, Any] = field(default_factory=dict)
    # Ray Train replaces a dataset's execution options with its own defaults; pass these
    # through `DataConfig(execution_options={"train": info.execution_options})` to keep the
    # seeded order and the memory bound.
    execution_options: Any = None

    def collate_fn(self, *, pad_to_multiple_of: int | None = None) -> Any:
        """The collate class instance for ``iter_torch_batches(collate_fn=...)``."""
        from raytune_chat.datasets._collate_fns import PackedCollateFn, PaddedCollateFn

        if self.packed:
            return PackedCollateFn()
        return PaddedCollateFn(pad_id=self.pad_id, pad_to_multiple_of=pad_to_multiple_of)


_INFO: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def register_info(ds: Any, info: ChatDatasetInfo) -> None:
    _INFO[ds] = info


def chat_dataset_info(ds: Any) -> ChatDatasetInfo:
    """The :class:`ChatDatasetInfo` of a dataset returned by ``chat_dataset``.

    Raises:
        KeyError: ``ds`` did not come from ``chat_dataset`` (derived datasets do not carry it).
    """
    try:
        return _INFO[ds]
    except (KeyError, TypeError):
        raise KeyError(
            "this Dataset was not returned by raytune_chat.datasets.chat_dataset"
        ) from None


@dataclass
class ChatDatasetStats:
    """Counts over one full pass.

    ``rows_read = rows_kept + rows_rejected``; ``packing_fill_ratio`` is real tokens over
    ``packed_rows * max_seq_len`` (None when not packed). ``dropped`` counts, by kind, what
    kept rows lost on purpose (`raytune_chat.data.DROPPED_KINDS`: reasoning traces left
    out, text beside tool calls, messages cut by history truncation).
    """

    rows_read: int
    rows_kept: int
    rows_rejected: int
    rejected_by_reason: dict[str, int]
    num_tokens: int
    num_trained_tokens: int
    truncated_rows: int
    packed_rows: int | None = None
    packing_fill_ratio: float | None = None
    dropped: dict[str, int] = field(default_factory=dict)

    @property
    def rejected_fraction(self) -> float:
        return self.rows_rejected / self.rows_read if self.rows_read else 0.0

    def check(self, max_rejected_fraction: float) -> None:
        """Raise :class:`TooManyRejectedRows` with a summary when too many rows were rejected."""
        if self.rejected_fraction > max_rejected_fraction:
            raise TooManyRejectedRows(
                f"{summarize_reasons(self.rejected_by_reason, total=self.rows_read)}, above "
                f"max_rejected_fraction={max_rejected_fraction}"
            )


def _sum_columns(ds: Any, columns: list[str]) -> tuple[dict[str, int], int]:
    totals = dict.fromkeys(columns, 0)
    rows = 0
    for batch in ds.select_columns(columns).iter_batches(batch_size=8192, batch_format="numpy"):
        for name in columns:
            totals[name] += int(np.asarray(batch[name], dtype=np.int64).sum())
        rows += len(batch[columns[0]])
    return totals, rows


def dataset_stats(ds: Any, *, check: bool = True) -> ChatDatasetStats:
    """Run one pass over a ``chat_dataset`` result and count what was read, kept and rejected.

    Args:
        ds: a dataset returned by ``chat_dataset``.
        check: raise when the rejected fraction exceeds the dataset's
            ``max_rejected_fraction``.

    Returns:
        The pass statistics.

    Raises:
        TooManyRejectedRows: ``check`` is true and too many rows were rejected.
    """
    info = chat_dataset_info(ds)
    if info.packed:
        cols = ["num_tokens", "num_trained_tokens", "num_conversations", "num_truncated"]
        totals, packed_rows = _sum_columns(ds, cols + list(DROPPED_COLUMNS))
        kept, truncated = totals["num_conversations"], totals["num_truncated"]
    else:
        cols = ["num_tokens", "num_trained_tokens", "truncated"]
        totals, kept = _sum_columns(ds, cols + list(DROPPED_COLUMNS))
        packed_rows, truncated = None, totals["truncated"]
    rejects = read_rejects(info.rejected_path, info.storage_options) if info.rejected_path else []
    by_reason = dict(Counter(r["reason"] for r in rejects).most_common())
    fill = None
    if info.packed and packed_rows:
        fill = totals["num_tokens"] / (packed_rows * info.max_seq_len)
    stats = ChatDatasetStats(
        rows_read=kept + len(rejects),
        rows_kept=kept,
        rows_rejected=len(rejects),
        rejected_by_reason=by_reason,
        num_tokens=totals["num_tokens"],
        num_trained_tokens=totals["num_trained_tokens"],
        truncated_rows=truncated,
        packed_rows=packed_rows,
        packing_fill_ratio=fill,
        dropped={k: totals[c] for k, c in zip(DROPPED_KINDS, DROPPED_COLUMNS, strict=True)},
    )
    if check:
        stats.check(info.max_rejected_fraction)
    return stats
