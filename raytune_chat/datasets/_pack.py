"""The packing map stage: a window of tokenized rows -> fixed-length packed rows.

Plain numpy/pyarrow, no Ray import; ``chat_dataset(packed=True)`` runs :class:`PackRows` as a
Ray Data stage after tokenization, with the window being one ``map_batches`` batch.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from raytune_chat.data import pack_window
from raytune_chat.datasets._batches import split_list_column

__all__ = ["PackRows"]


class PackRows:
    """Map-stage callable packing one window of rows with best-fit decreasing.

    Args:
        max_seq_len: length of every packed row.
        pad_id: the tokenizer's padding id.
        ledger: where each window's counts go (``packed(key, rows, conversations, tokens)``,
            keyed by the window's first row id), or None.

    Example:
        >>> from raytune_chat.data import CROSS_ENTROPY_IGNORE_IDX as IGNORE
        >>> window = pa.table({"tokens": [[1, 2, 3], [4, 5]],
        ...                    "labels": [[2, 3, IGNORE], [5, IGNORE]],
        ...                    "truncated": [False, False], "row_id": [0, 1]})
        >>> packed = PackRows(max_seq_len=6, pad_id=0)(window)
        >>> packed["tokens"].tolist(), packed["document_ids"].tolist()
        ([[1, 2, 3, 4, 5, 0]], [[0, 0, 0, 1, 1, 2]])
    """

    def __init__(self, *, max_seq_len: int, pad_id: int, ledger: Any = None) -> None:
        self.max_seq_len, self.pad_id, self.ledger = max_seq_len, pad_id, ledger

    def __call__(self, batch: pa.Table) -> dict[str, np.ndarray]:
        packed = pack_window(
            split_list_column(batch["tokens"]),
            split_list_column(batch["labels"]),
            max_seq_len=self.max_seq_len,
            pad_id=self.pad_id,
            truncated=batch["truncated"].to_numpy(),
        )
        if self.ledger is not None and batch.num_rows:
            self.ledger.packed(
                int(pc.min(batch["row_id"]).as_py()),
                len(packed.num_tokens),
                int(packed.num_conversations.sum()),
                int(packed.num_tokens.sum()),
            )
        return packed.as_dict()
