"""Small training batches cut locally from large Ray Data fetches.

``iter_torch_batches(batch_size=8)`` pays Ray Data's per-batch bookkeeping (slicing, format
conversion, a thread hand-off, stats) for every 8 rows: about 0.1 ms per row, a whole core
for 100k conversations. :func:`iter_chat_batches` asks Ray Data for ``rows_per_fetch`` rows
at a time as Arrow, turns each list column into per-row numpy views once, and cuts the
micro-batches here, so that cost is paid once per fetch instead of once per batch.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

import numpy as np
import pyarrow as pa

__all__ = ["iter_chat_batches", "split_list_column"]


def split_list_column(column: pa.ChunkedArray | pa.Array) -> list[np.ndarray]:
    """An Arrow ``list`` column without nulls as one numpy view per row (no copy per row).

    Slices are respected: a sliced array's offsets point into its unsliced values.

    Example:
        >>> [a.tolist() for a in split_list_column(pa.array([[1, 2], [], [3]]))]
        [[1, 2], [], [3]]

    Raises:
        ValueError: If the column holds a null row.
    """
    array = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    if array.null_count:
        raise ValueError(f"a list column with {array.null_count} null rows cannot be split")
    bounds = array.offsets.to_numpy().tolist()
    values = array.values.to_numpy(zero_copy_only=False)
    return [values[start:end] for start, end in zip(bounds[:-1], bounds[1:], strict=True)]


def _column_rows(column: pa.ChunkedArray | pa.Array) -> list[Any]:
    """One entry per row: a numpy view for list columns, a Python scalar otherwise."""
    array = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    if (
        pa.types.is_list(array.type) or pa.types.is_large_list(array.type)
    ) and not array.null_count:
        return split_list_column(array)
    return list(array.to_numpy(zero_copy_only=False))


def _as_batch(rows: Mapping[str, list[Any]]) -> dict[str, Any]:
    """A Ray-style numpy batch: list columns stay lists of arrays, scalars become arrays."""
    return {
        name: values if values and isinstance(values[0], np.ndarray) else np.asarray(values)
        for name, values in rows.items()
    }


def iter_chat_batches(
    data: Any,
    *,
    batch_size: int,
    collate_fn: Callable[[Mapping[str, Any]], Any],
    drop_last: bool = False,
    shuffle: bool = False,
    seed: int | None = None,
    rows_per_fetch: int = 1024,
    prefetch_fetches: int = 2,
) -> Iterator[Any]:
    """Yield ``collate_fn`` batches of ``batch_size`` rows from a dataset or a Train shard.

    The batches are those of ``data.iter_torch_batches(batch_size=..., collate_fn=...)``,
    in the same order, at a fraction of the driver CPU for small batch sizes (benchmarks/
    RESULTS.md, "Data pipeline"). Any collate class of :mod:`raytune_chat.data` works.

    Example:
        >>> import numpy as np, ray
        >>> from raytune_chat.data import PaddedCollate
        >>> ds = ray.data.from_items([{"tokens": np.arange(n), "labels": np.arange(n)}
        ...                           for n in (1, 2, 3)])
        >>> [b["tokens"].shape for b in iter_chat_batches(
        ...     ds, batch_size=2, collate_fn=PaddedCollate(pad_id=0))]
        [torch.Size([2, 2]), torch.Size([1, 3])]

    Args:
        data: a ``ray.data.Dataset`` or ``DataIterator`` (``ray.train.get_dataset_shard``).
        batch_size: rows per yielded batch.
        collate_fn: turns a numpy batch (list columns as lists of arrays) into tensors.
        drop_last: drop a final batch shorter than ``batch_size``.
        shuffle: permute the rows within each fetch of ``rows_per_fetch`` rows (a local
            shuffle; the dataset's own ``shuffle`` covers file order).
        seed: the local-shuffle seed (``None``: different every run).
        rows_per_fetch: rows requested from Ray Data at a time (rounded up to a multiple of
            ``batch_size``).
        prefetch_fetches: fetches Ray Data prepares ahead of the consumer.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    fetch = -(-max(rows_per_fetch, batch_size) // batch_size) * batch_size
    pending: dict[str, list[Any]] = {}
    fetches = data.iter_batches(
        batch_size=fetch, batch_format="pyarrow", prefetch_batches=prefetch_fetches
    )
    for index, table in enumerate(fetches):
        rows = {name: _column_rows(table[name]) for name in table.column_names}
        if shuffle and table.num_rows > 1:
            rng = np.random.default_rng(None if seed is None else [seed, index])
            order = rng.permutation(table.num_rows)
            rows = {name: [values[i] for i in order] for name, values in rows.items()}
        if pending:
            rows = {name: pending[name] + values for name, values in rows.items()}
        count = len(next(iter(rows.values()), []))
        end = count - count % batch_size
        for start in range(0, end, batch_size):
            yield collate_fn(_as_batch({n: v[start : start + batch_size] for n, v in rows.items()}))
        pending = {name: values[end:] for name, values in rows.items()} if end < count else {}
    if pending and not drop_last:
        yield collate_fn(_as_batch(pending))
