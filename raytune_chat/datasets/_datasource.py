"""Ray Data datasources: raw chat files (one read task per file, many blocks per file) and
token stores (their Parquet parts, in order, with known row counts)."""

from __future__ import annotations

import functools
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import fsspec
import pyarrow as pa
import pyarrow.parquet as pq
from ray.data.block import BlockMetadata
from ray.data.datasource import Datasource, ReadTask

from raytune_chat.datasets._files import DataFile, storage_options_for
from raytune_chat.datasets._readers import RECORD_SCHEMA, iter_record_blocks, read_with_retries
from raytune_chat.datasets._split import SplitPart
from raytune_chat.datasets._token_store import StorePart, TokenStore
from raytune_chat.datasets._tokenize import TOKENIZED_SCHEMA

__all__ = ["ChatFilesDatasource", "TokenStoreDatasource"]


def _read(
    file: DataFile,
    index: int,
    storage_options: Mapping[str, Any] | None,
    block_bytes: int,
    ledger: Any,
    part: SplitPart | None = None,
) -> Iterator[pa.Table]:
    blocks = iter_record_blocks(
        file, storage_options=storage_options, block_bytes=block_bytes, file_index=index
    )
    if part is not None and not part.whole:
        # Empty blocks are not passed on: a tokenize batch keys the ledger by its first record.
        blocks = (kept for block in blocks if (kept := _in_part(block, part)).num_rows)
    # One block of lookahead: the ledger hears that the file is read to its end before the
    # last block goes downstream, so the batch that counts the pass's last record finds the
    # pass complete.
    last, records = None, 0
    for block in blocks:
        if last is not None:
            yield last
        last, records = block, records + block.num_rows
    if ledger is not None:
        ledger.file_read(index, records)
    if last is not None:
        yield last


def _in_part(block: pa.Table, part: SplitPart) -> pa.Table:
    """The block's records in `part` of the split; the others are never read downstream."""
    numbers = block["record_id"].to_numpy() & ((1 << 40) - 1)  # line or row in the file
    return block.filter(pa.array(part.keep(numbers)))


class ChatFilesDatasource(Datasource):
    """Raw records (``RECORD_SCHEMA``) of JSON / JSON Lines / Parquet files.

    Args:
        files: the input files, in read order (the file index of a record id is the index
            in this list).
        storage_options: fsspec options used by the read tasks.
        block_bytes: raw bytes per output block.
        ledger: told when each file has been read to its end (``file_read(index, records)``).
        part: read only this percent part of each file's records (``split: "train[:90%]"``).
    """

    def __init__(
        self,
        files: Sequence[DataFile],
        *,
        storage_options: Mapping[str, Any] | None = None,
        block_bytes: int = 8 << 20,
        ledger: Any = None,
        part: SplitPart | None = None,
    ) -> None:
        super().__init__()
        self.files = list(files)
        self._part = part
        self._options = dict(storage_options or {})
        self._block_bytes = block_bytes
        self._ledger = ledger

    def get_name(self) -> str:
        return "ReadChatFiles"

    def estimate_inmemory_data_size(self) -> int | None:
        sizes = [f.size for f in self.files]
        return None if None in sizes else int(sum(sizes))

    def get_read_tasks(
        self, parallelism: int, per_task_row_limit: int | None = None, data_context: Any = None
    ) -> list[ReadTask]:
        return [
            ReadTask(
                functools.partial(
                    _read, f, i, self._options, self._block_bytes, self._ledger, self._part
                ),
                BlockMetadata(
                    num_rows=None, size_bytes=f.size, input_files=[f.path], exec_stats=None
                ),
                schema=RECORD_SCHEMA,
                per_task_row_limit=per_task_row_limit,
            )
            for i, f in enumerate(self.files)
        ]


def _read_part(part: StorePart, storage_options: Mapping[str, Any]) -> pa.Table:
    def read() -> pa.Table:
        fs, path = fsspec.core.url_to_fs(
            part.path, **storage_options_for(part.path, storage_options)
        )
        with fs.open(path, "rb") as f:
            return pq.read_table(f)

    table = read_with_retries(part.path, read)
    if "row_id" not in table.column_names:  # Parquet written by another tool
        table = table.append_column("row_id", pa.array([-1] * table.num_rows, pa.int64()))
    return table.select(TOKENIZED_SCHEMA.names).cast(TOKENIZED_SCHEMA)


def _read_share(store: TokenStore, index: int, count: int) -> Iterator[pa.Table]:
    """The ``index``-th of ``count`` consecutive shares of the store's parts, in order."""
    parts = store.parts()
    for part in parts[len(parts) * index // count : len(parts) * (index + 1) // count]:
        yield _read_part(part, store.storage_options)


class TokenStoreDatasource(Datasource):
    """The rows of a token store (``TOKENIZED_SCHEMA``), in the order they were written.

    ``num_tasks`` read tasks each read one consecutive share of the parts, so with
    ``preserve_order`` the rows come out in the store's order. The parts are listed when the
    tasks run, not when the dataset is built: a dataset over a store that the run is still
    writing can be handed to Ray Train up front and read once the store is complete.

    Raises:
        FileNotFoundError: (when executed) the store is not complete.
    """

    def __init__(self, store: TokenStore, num_tasks: int) -> None:
        super().__init__()
        self._store, self._num_tasks = store, max(1, num_tasks)

    def get_name(self) -> str:
        return "ReadTokenStore"

    def estimate_inmemory_data_size(self) -> int | None:
        return None

    def get_read_tasks(
        self, parallelism: int, per_task_row_limit: int | None = None, data_context: Any = None
    ) -> list[ReadTask]:
        return [
            ReadTask(
                functools.partial(_read_share, self._store, i, self._num_tasks),
                BlockMetadata(num_rows=None, size_bytes=None, input_files=None, exec_stats=None),
                schema=TOKENIZED_SCHEMA,
                per_task_row_limit=per_task_row_limit,
            )
            for i in range(self._num_tasks)
        ]
