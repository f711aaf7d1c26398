"""Collate classes: Ray Data numpy batches (or lists of samples) -> torch tensors (spec §4).

Plain numpy and torch, no Ray. Use them as ``iter_torch_batches(collate_fn=...)``:

* :class:`PaddedCollate` for unpacked rows: right-pads ``tokens`` with the tokenizer's pad id
  and ``labels`` with ``CROSS_ENTROPY_IGNORE_IDX`` to the longest row (optionally rounded up
  to a multiple, or to a fixed length).
* :class:`PackedCollate` for rows packed by the dataset (``packed=True``): stacks the fixed
  length ``tokens``, ``labels``, ``input_pos`` and ``document_ids`` columns.

:func:`padded_collate_sft` and :func:`padded_collate_packed` keep torchtune's function
names for code that collates lists of samples.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from raytune_chat.data._common import CROSS_ENTROPY_IGNORE_IDX

__all__ = [
    "PackedCollate",
    "PaddedCollate",
    "padded_collate_packed",
    "padded_collate_sft",
]


def _padded_length(longest: int, pad_to_multiple_of: int | None, length: int | None) -> int:
    if length is not None:
        if longest > length:
            raise ValueError(f"a row has {longest} tokens, more than the fixed length {length}")
        return length
    if pad_to_multiple_of:
        return -(-longest // pad_to_multiple_of) * pad_to_multiple_of
    return longest


def _pad(rows: Sequence[Sequence[int]], width: int, value: int) -> torch.Tensor:
    # A Ray list column arrives as a 2-D array or an object array of 1-D arrays; both
    # iterate as rows, as does a list of lists.
    out = np.full((len(rows), width), value, dtype=np.int64)
    for i, row in enumerate(rows):
        out[i, : len(row)] = row
    return torch.from_numpy(out)


class PaddedCollate:
    """Right-pad variable-length rows into ``tokens (b, s)`` and ``labels (b, s)`` (long).

    Args:
        pad_id: token padding id; use the tokenizer's ``pad_id`` (128004 for Llama3, 0 for
            Llama2/Mistral).
        ignore_idx: label padding value.
        pad_to_multiple_of: round the padded length up to a multiple of this (e.g. 8).
        length: pad every batch to exactly this length instead (an error if a row is longer).

    Example:
        >>> import numpy as np
        >>> from raytune_chat.data import CROSS_ENTROPY_IGNORE_IDX as IGNORE
        >>> collate = PaddedCollate(pad_id=0, pad_to_multiple_of=4)
        >>> batch = {"tokens": np.array([np.array([5, 6, 7]), np.array([8])], dtype=object),
        ...          "labels": np.array([np.array([6, 7, IGNORE]), np.array([IGNORE])],
        ...                             dtype=object)}
        >>> out = collate(batch)
        >>> out["tokens"].tolist()
        [[5, 6, 7, 0], [8, 0, 0, 0]]
        >>> out["labels"][0, :2].tolist(), bool((out["labels"][:, 2:] == IGNORE).all())
        ([6, 7], True)
    """

    def __init__(
        self,
        *,
        pad_id: int,
        ignore_idx: int = CROSS_ENTROPY_IGNORE_IDX,
        pad_to_multiple_of: int | None = None,
        length: int | None = None,
    ) -> None:
        self.pad_id = pad_id
        self.ignore_idx = ignore_idx
        self.pad_to_multiple_of = pad_to_multiple_of
        self.length = length

    def __call__(self, batch: Mapping[str, Any]) -> dict[str, torch.Tensor]:
        tokens, labels = batch["tokens"], batch["labels"]
        longest = max((len(t) for t in tokens), default=0)
        width = _padded_length(longest, self.pad_to_multiple_of, self.length)
        return {
            "tokens": _pad(tokens, width, self.pad_id),
            "labels": _pad(labels, width, self.ignore_idx),
        }


class PackedCollate:
    """Stack packed rows into ``tokens``, ``labels``, ``input_pos`` (long) and
    ``document_ids`` (int32), each ``(b, max_seq_len)``.

    ``document_ids`` numbers the conversations within each row (trailing padding is its own
    document), which is what a block-diagonal causal mask needs.

    Example:
        >>> import numpy as np
        >>> from raytune_chat.data import CROSS_ENTROPY_IGNORE_IDX as IGNORE
        >>> row = {"tokens": np.array([[1, 2, 3, 0]]), "labels": np.array([[2] + [IGNORE] * 3]),
        ...        "input_pos": np.array([[0, 1, 0, 0]]), "document_ids": np.array([[0, 0, 1, 2]])}
        >>> out = PackedCollate()(row)
        >>> out["input_pos"].tolist(), out["document_ids"].dtype
        ([[0, 1, 0, 0]], torch.int32)
    """

    def __call__(self, batch: Mapping[str, Any]) -> dict[str, torch.Tensor]:
        def stack(name: str, dtype: torch.dtype) -> torch.Tensor:
            return torch.from_numpy(np.stack(list(batch[name]))).to(dtype)

        return {
            "tokens": stack("tokens", torch.long),
            "labels": stack("labels", torch.long),
            "input_pos": stack("input_pos", torch.long),
            "document_ids": stack("document_ids", torch.int32),
        }


def padded_collate_sft(
    batch: Sequence[Mapping[str, Sequence[int]]],
    padding_idx: int = 0,
    ignore_idx: int = CROSS_ENTROPY_IGNORE_IDX,
    pad_to_multiple_of: int = 1,
) -> dict[str, torch.Tensor]:
    """torchtune's name: pad a list of ``{"tokens", "labels"}`` samples.

    Example:
        >>> from raytune_chat.data import CROSS_ENTROPY_IGNORE_IDX as IGNORE
        >>> out = padded_collate_sft([{"tokens": [1, 2], "labels": [2, IGNORE]},
        ...                           {"tokens": [3], "labels": [IGNORE]}], padding_idx=9)
        >>> out["tokens"].tolist()
        [[1, 2], [3, 9]]
    """
    collate = PaddedCollate(
        pad_id=padding_idx, ignore_idx=ignore_idx, pad_to_multiple_of=pad_to_multiple_of
    )
    return collate(
        {
            "tokens": [np.asarray(s["tokens"]) for s in batch],
            "labels": [np.asarray(s["labels"]) for s in batch],
        }
    )


def padded_collate_packed(batch: Sequence[Mapping[str, Sequence[int]]]) -> dict[str, torch.Tensor]:
    """torchtune's name: stack a list of packed samples (see :class:`PackedCollate`).

    Example:
        >>> from raytune_chat.data import CROSS_ENTROPY_IGNORE_IDX as IGNORE
        >>> s = {"tokens": [1, 0], "labels": [IGNORE, IGNORE], "input_pos": [0, 0],
        ...      "document_ids": [0, 1]}
        >>> padded_collate_packed([s, s])["tokens"].shape
        torch.Size([2, 2])
    """
    names = ("tokens", "labels", "input_pos", "document_ids")
    return PackedCollate()({n: [np.asarray(s[n]) for s in batch] for n in names})
