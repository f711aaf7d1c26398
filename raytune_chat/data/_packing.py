"""Best-fit packing of tokenized conversations into fixed-length rows (spec §4).

Plain numpy, no Ray: the dataset pipeline calls :func:`pack_window` once per window of rows.
A conversation is never split across packed rows (one longer than ``max_seq_len`` is
truncated first), labels are already shifted per conversation, positions restart at 0 for
every conversation, and each position carries the index of its conversation in
``document_ids`` so attention can be block-diagonal. Trailing padding is its own document
with labels ``CROSS_ENTROPY_IGNORE_IDX``.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from raytune_chat.data._common import CROSS_ENTROPY_IGNORE_IDX

__all__ = ["PackedRows", "best_fit_bins", "pack_window"]


@dataclass
class PackedRows:
    """A window of packed rows; every array has shape ``(num_rows, max_seq_len)``.

    ``num_tokens``, ``num_trained_tokens``, ``num_conversations`` and ``num_truncated`` are
    per packed row, shape ``(num_rows,)``.
    """

    tokens: np.ndarray
    labels: np.ndarray
    input_pos: np.ndarray
    document_ids: np.ndarray
    num_tokens: np.ndarray
    num_trained_tokens: np.ndarray
    num_conversations: np.ndarray
    num_truncated: np.ndarray

    def as_dict(self) -> dict[str, np.ndarray]:
        """Columns by name, as a Ray Data batch."""
        return dict(self.__dict__)


def best_fit_bins(lengths: Sequence[int], capacity: int) -> list[list[int]]:
    """Assign items to bins of ``capacity`` by best-fit decreasing.

    Items are taken longest first; each goes into the open bin whose free space is the
    smallest that still fits it, or opens a new bin.

    Args:
        lengths: item sizes, each ``<= capacity``.
        capacity: bin size.

    Returns:
        Bins as lists of item indices (in placement order).

    Example:
        >>> sorted(map(sorted, best_fit_bins([5, 3, 2, 4], capacity=7)))
        [[0, 2], [1, 3]]
    """
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    bins: list[list[int]] = []
    # Free space of open bins, kept sorted, with the bin index as tie-breaker.
    free: list[tuple[int, int]] = []
    for i in order:
        size = lengths[i]
        if size > capacity:
            raise ValueError(f"item {i} has length {size} > capacity {capacity}")
        pos = bisect.bisect_left(free, (size, -1))
        if pos == len(free):
            bins.append([i])
            bisect.insort(free, (capacity - size, len(bins) - 1))
            continue
        space, b = free.pop(pos)
        bins[b].append(i)
        if space - size > 0:
            bisect.insort(free, (space - size, b))
    return bins


def _truncate(tokens: np.ndarray, labels: np.ndarray, max_seq_len: int) -> tuple[np.ndarray, ...]:
    # The last kept token has no target inside the kept window.
    tokens, labels = tokens[:max_seq_len], labels[:max_seq_len].copy()
    labels[-1] = CROSS_ENTROPY_IGNORE_IDX
    return tokens, labels


def pack_window(
    tokens: Sequence[np.ndarray],
    labels: Sequence[np.ndarray],
    *,
    max_seq_len: int,
    pad_id: int,
    ignore_idx: int = CROSS_ENTROPY_IGNORE_IDX,
    truncated: Sequence[bool] | None = None,
) -> PackedRows:
    """Pack one window of tokenized conversations with best-fit decreasing.

    Args:
        tokens: per conversation token ids.
        labels: per conversation labels, already shifted (``labels[i]`` is the target of
            position ``i``; ``ignore_idx`` where masked), same lengths as ``tokens``.
        max_seq_len: length of every packed row.
        pad_id: token id used for trailing padding.
        ignore_idx: label of padding positions.
        truncated: per conversation, whether the tokenizer already truncated it (counted in
            ``num_truncated`` together with the truncations done here).

    Returns:
        The packed rows of this window.

    Example:
        >>> import numpy as np
        >>> from raytune_chat.data import CROSS_ENTROPY_IGNORE_IDX as IGNORE
        >>> rows = pack_window([np.array([1, 2, 3]), np.array([4, 5])],
        ...                    [np.array([2, 3, IGNORE]), np.array([5, IGNORE])],
        ...                    max_seq_len=6, pad_id=0)
        >>> rows.tokens.tolist(), rows.input_pos.tolist(), rows.document_ids.tolist()
        ([[1, 2, 3, 4, 5, 0]], [[0, 1, 2, 0, 1, 0]], [[0, 0, 0, 1, 1, 2]])
        >>> (rows.labels == IGNORE).tolist(), rows.num_trained_tokens.tolist()
        ([[False, False, True, False, True, True]], [3])
    """
    seqs: list[tuple[np.ndarray, np.ndarray]] = []
    truncated = (
        np.zeros(len(tokens), dtype=bool)
        if truncated is None
        else np.array(truncated, dtype=bool, copy=True)
    )
    for i, (tok, lab) in enumerate(zip(tokens, labels, strict=True)):
        tok, lab = np.asarray(tok, dtype=np.int32), np.asarray(lab, dtype=np.int32)
        if len(tok) != len(lab):
            raise ValueError(f"conversation {i}: {len(tok)} tokens but {len(lab)} labels")
        if len(tok) > max_seq_len:
            tok, lab = _truncate(tok, lab, max_seq_len)
            truncated[i] = True
        seqs.append((tok, lab))
    bins = best_fit_bins([len(t) for t, _ in seqs], max_seq_len)
    n = len(bins)
    out = PackedRows(
        tokens=np.full((n, max_seq_len), pad_id, dtype=np.int32),
        labels=np.full((n, max_seq_len), ignore_idx, dtype=np.int32),
        input_pos=np.zeros((n, max_seq_len), dtype=np.int32),
        document_ids=np.zeros((n, max_seq_len), dtype=np.int32),
        num_tokens=np.zeros(n, dtype=np.int32),
        num_trained_tokens=np.zeros(n, dtype=np.int32),
        num_conversations=np.zeros(n, dtype=np.int32),
        num_truncated=np.zeros(n, dtype=np.int32),
    )
    for row, members in enumerate(bins):
        start = 0
        for doc, i in enumerate(members):
            tok, lab = seqs[i]
            end = start + len(tok)
            out.tokens[row, start:end] = tok
            out.labels[row, start:end] = lab
            out.input_pos[row, start:end] = np.arange(len(tok), dtype=np.int32)
            out.document_ids[row, start:end] = doc
            out.num_trained_tokens[row] += int(np.count_nonzero(lab != ignore_idx))
            out.num_truncated[row] += int(truncated[i])
            start = end
        out.input_pos[row, start:] = np.arange(max_seq_len - start, dtype=np.int32)
        out.document_ids[row, start:] = len(members)
        out.num_tokens[row] = start
        out.num_conversations[row] = len(members)
    return out
