"""The ledger of a pass over the raw data: rows read, kept, rejected (and why), tokens, packing.

Plain Python, no Ray: ``chat_dataset`` runs one :class:`PassLedger` as a small Ray actor and
the pipeline's stages report to it as they go, so the counts grow while the run trains
instead of needing a pass of their own:

* each read task, when it has read a file to its end (before yielding the file's last
  block), with the number of records in it;
* the tokenize stage once per batch (:class:`BatchCounts`), keyed by the batch's first
  record id;
* the pack stage once per window, keyed by the window's first row id.

Keys make reports idempotent: a batch tokenized twice (an epoch re-read from the raw files,
a retried task) is counted once. The pass is *complete* when every file has been read and
every record read has been counted; the counts are then exact (``rows_read == rows_kept +
rows_rejected + rows_filtered``) and the token store given to the ledger, if any, receives
its manifest. Until then :meth:`PassLedger.snapshot` also estimates how many rows the pass
will yield, from the files read so far (records per stored byte) or, before any, from a
sample of the first file (:class:`Prior`).
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from raytune_chat.datasets._quarantine import summarize_reasons

__all__ = [
    "BatchCounts",
    "ChatDatasetStats",
    "PassLedger",
    "Prior",
    "rejected_verdict",
]


@dataclass(frozen=True)
class BatchCounts:
    """What the tokenize stage did with one batch of records."""

    records: int
    kept: int
    rejected: Mapping[str, int]
    filtered: int
    truncated: int
    tokens: int
    trained_tokens: int
    # What kept rows lost on purpose, by kind (`raytune_chat.data.DROPPED_KINDS`).
    dropped: Mapping[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class Prior:
    """What a sample of the data says before the pass has counted anything.

    Attributes:
        records_per_byte: records per stored byte of the input files (None: unknown).
        kept_fraction: share of records that are kept.
        conversations_per_pack: with packing, conversations per packed row.
    """

    records_per_byte: float | None = None
    kept_fraction: float = 1.0
    conversations_per_pack: float | None = None


@dataclass
class ChatDatasetStats:
    """Counts of one pass over a chat dataset, exact once ``complete``.

    ``rows_read = rows_kept + rows_rejected + rows_filtered``; ``packing_fill_ratio`` is real
    tokens over ``packed_rows * max_seq_len``. ``output_rows`` is how many rows one pass
    yields (packed rows when packed): exact when ``output_rows_exact``, else the ledger's
    estimate. ``rows_tokenized`` counts tokenization work, repeats included: a pass read
    back from a token store adds nothing to it.
    """

    rows_read: int = 0
    rows_kept: int = 0
    rows_rejected: int = 0
    rejected_by_reason: dict[str, int] = field(default_factory=dict)
    rows_filtered: int = 0
    num_tokens: int = 0
    num_trained_tokens: int = 0
    truncated_rows: int = 0
    packed_rows: int | None = None
    packing_fill_ratio: float | None = None
    complete: bool = False
    output_rows: int = 0
    output_rows_exact: bool = False
    rows_tokenized: int = 0
    # What kept rows lost on purpose, by kind: reasoning traces left out (`reasoning: drop`),
    # text beside tool calls, messages cut by `truncation: history`.
    dropped: dict[str, int] = field(default_factory=dict)

    @property
    def rejected_fraction(self) -> float:
        return self.rows_rejected / self.rows_read if self.rows_read else 0.0

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def rejected_verdict(
    stats: ChatDatasetStats,
    max_rejected_fraction: float,
    *,
    min_rows: int = 0,
    rejected_path: str | None = None,
) -> str | None:
    """Why the run must stop for rejected rows, or None.

    Checked once ``min_rows`` rows are in, and always when the pass is complete.

    Example:
        >>> s = ChatDatasetStats(rows_read=10, rows_kept=8, rows_rejected=2,
        ...                      rejected_by_reason={"invalid_json": 2}, complete=True)
        >>> rejected_verdict(s, 0.1)
        '2 of 10 rows rejected (20.00%): invalid_json 2, above max_rejected_fraction=0.1'
        >>> rejected_verdict(s, 0.5) is None
        True
    """
    if not stats.rows_read or (stats.rows_read < min_rows and not stats.complete):
        return None
    if stats.rows_rejected <= max_rejected_fraction * stats.rows_read:
        return None
    where = f"; see the quarantine files in {rejected_path}" if rejected_path else ""
    summary = summarize_reasons(stats.rejected_by_reason, total=stats.rows_read)
    return f"{summary}, above max_rejected_fraction={max_rejected_fraction}{where}"


class PassLedger:
    """Counts of one pass, fed by the pipeline's stages; see the module docstring.

    Args:
        file_sizes: stored size of each input file, in read order (None where unknown).
        prior: what a sample said, for estimates before the files say more.
        pack_capacity: ``max_seq_len`` of packed rows (None: not packed).
        store: a token store (``write_manifest(parts, stats)``) told when the pass is complete.
        finished: counts of a pass done before (a token store read back): already complete.

    Example:
        >>> ledger = PassLedger(file_sizes=[100])
        >>> _ = ledger.tokenized(0, BatchCounts(records=3, kept=2, rejected={"invalid_json": 1},
        ...                                     filtered=0, truncated=0, tokens=9,
        ...                                     trained_tokens=4))
        >>> ledger.file_read(0, 3)
        >>> s = ledger.snapshot()
        >>> s.complete, s.rows_read, s.rows_kept, s.rejected_by_reason, s.output_rows
        (True, 3, 2, {'invalid_json': 1}, 2)
    """

    def __init__(
        self,
        *,
        file_sizes: Sequence[int | None] = (),
        prior: Prior | None = None,
        pack_capacity: int | None = None,
        store: Any = None,
        finished: ChatDatasetStats | None = None,
    ) -> None:
        self._sizes = list(file_sizes)
        self._prior = prior or Prior()
        self._capacity = pack_capacity
        self._store = store
        self._finished = finished
        self._files_done: dict[int, int] = {}
        self._batches: dict[int, BatchCounts] = {}
        self._sums: Counter[str] = Counter()  # running totals over self._batches
        self._reasons: Counter[str] = Counter()
        self._dropped: Counter[str] = Counter()
        self._packs: dict[int, tuple[int, int, int]] = {}
        self._pack_sums = [0, 0, 0]
        self._tokenized = 0
        self._manifest_written = False

    def file_read(self, file_index: int, records: int) -> None:
        """File ``file_index`` has been read to its end: it holds ``records`` records."""
        self._files_done[file_index] = records
        self._complete_store()

    def tokenized(self, key: int, counts: BatchCounts) -> ChatDatasetStats:
        """Count one tokenized batch (keyed by its first record id); return the totals."""
        old = self._batches.get(key)
        if old is not None:
            self._add(old, -1)
        self._batches[key] = counts
        self._add(counts, 1)
        self._tokenized += counts.records
        self._complete_store()
        return self.snapshot()

    def _add(self, counts: BatchCounts, sign: int) -> None:
        for name in ("records", "kept", "filtered", "truncated", "tokens", "trained_tokens"):
            self._sums[name] += sign * getattr(counts, name)
        for reason, n in counts.rejected.items():
            self._reasons[reason] += sign * n
        for kind, n in counts.dropped.items():
            self._dropped[kind] += sign * n
        self._reasons = +self._reasons  # drop reasons that went back to zero
        self._dropped = +self._dropped

    def packed(self, key: int, rows: int, conversations: int, tokens: int) -> None:
        """Count one packing window (keyed by its first row id)."""
        old = self._packs.get(key, (0, 0, 0))
        self._packs[key] = (rows, conversations, tokens)
        self._pack_sums = [
            t - o + n for t, o, n in zip(self._pack_sums, old, self._packs[key], strict=True)
        ]

    def _totals(self) -> ChatDatasetStats:
        if self._finished is not None:
            return dataclasses.replace(
                self._finished,
                rejected_by_reason=dict(self._finished.rejected_by_reason),
                dropped=dict(self._finished.dropped),
            )
        s = self._sums
        complete = len(self._files_done) == len(self._sizes) and s["records"] == sum(
            self._files_done.values()
        )
        return ChatDatasetStats(
            rows_read=s["records"],
            rows_kept=s["kept"],
            rows_rejected=sum(self._reasons.values()),
            rejected_by_reason=dict(self._reasons.most_common()),
            rows_filtered=s["filtered"],
            num_tokens=s["tokens"],
            num_trained_tokens=s["trained_tokens"],
            truncated_rows=s["truncated"],
            complete=complete,
            dropped=dict(self._dropped),
        )

    def _records_estimate(self, read: int) -> float:
        """Records in all files: counted where read to the end, else per stored byte."""
        done = self._files_done
        counted = sum(done.values())
        rate = self._prior.records_per_byte
        sized = [(self._sizes[i], n) for i, n in done.items() if self._sizes[i]]
        if sized:
            rate = sum(n for _, n in sized) / sum(s for s, _ in sized)
        known = [s for s in self._sizes if s]
        mean = sum(known) / len(known) if known else 0
        left = sum(self._sizes[i] or mean for i in range(len(self._sizes)) if i not in done)
        return max(float(read), counted + left * (rate or 0.0))

    def snapshot(self) -> ChatDatasetStats:
        """The counts so far, with the estimated (or exact) rows one pass yields."""
        stats = self._totals()
        tokenized = self._tokenized
        if stats.complete:
            kept, kept_exact = float(stats.rows_kept), True
        else:
            share = stats.rows_kept / stats.rows_read if stats.rows_read else None
            share = self._prior.kept_fraction if share is None else share
            kept, kept_exact = self._records_estimate(stats.rows_read) * share, False
        out, exact = kept, kept_exact
        if self._capacity is not None:
            rows, convs, tokens = self._pack_sums
            stats.packed_rows = rows
            if rows:
                stats.packing_fill_ratio = tokens / (rows * self._capacity)
            per_pack = convs / rows if rows else self._prior.conversations_per_pack
            exact = kept_exact and convs == stats.rows_kept
            out = rows if exact else kept / max(per_pack or 1.0, 1.0)
        stats.output_rows = round(out)
        stats.output_rows_exact = exact
        stats.rows_tokenized = tokenized
        return stats

    def _complete_store(self) -> None:
        if self._store is None or self._manifest_written:
            return
        stats = self.snapshot()
        if not stats.complete:
            return
        parts = [(key, b.kept, b.tokens) for key, b in sorted(self._batches.items()) if b.kept]
        self._store.write_manifest(parts, stats.as_dict())
        self._manifest_written = True
