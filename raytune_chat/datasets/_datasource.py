"""Ray Data datasource over chat files: one read task per file, many blocks per file."""

from __future__ import annotations

import functools
import random
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import pyarrow as pa
from ray.data.block import BlockMetadata
from ray.data.datasource import Datasource, ReadTask

from raytune_chat.datasets._files import DataFile
from raytune_chat.datasets._readers import RECORD_SCHEMA, iter_record_blocks

__all__ = ["ChatFilesDatasource"]


def _read(
    file: DataFile, storage_options: Mapping[str, Any] | None, block_bytes: int
) -> Iterator[pa.Table]:
    yield from iter_record_blocks(file, storage_options=storage_options, block_bytes=block_bytes)


class ChatFilesDatasource(Datasource):
    """Raw records (``RECORD_SCHEMA``) of JSON / JSON Lines / Parquet files.

    Args:
        files: the resolved input files.
        storage_options: fsspec options used by the read tasks.
        shuffle_files: permute the file order with ``seed`` (read tasks run in that order).
        seed: the file-order seed.
        block_bytes: raw bytes per output block.
    """

    def __init__(
        self,
        files: Sequence[DataFile],
        *,
        storage_options: Mapping[str, Any] | None = None,
        shuffle_files: bool = False,
        seed: int = 0,
        block_bytes: int = 8 << 20,
    ) -> None:
        super().__init__()
        self._files = list(files)
        if shuffle_files:
            random.Random(seed).shuffle(self._files)
        self._options = dict(storage_options or {})
        self._block_bytes = block_bytes

    def get_name(self) -> str:
        return "ReadChatFiles"

    def estimate_inmemory_data_size(self) -> int | None:
        sizes = [f.size for f in self._files]
        return None if None in sizes else int(sum(sizes))

    def get_read_tasks(
        self, parallelism: int, per_task_row_limit: int | None = None, data_context: Any = None
    ) -> list[ReadTask]:
        return [
            ReadTask(
                functools.partial(_read, f, self._options, self._block_bytes),
                BlockMetadata(
                    num_rows=None, size_bytes=f.size, input_files=[f.path], exec_stats=None
                ),
                schema=RECORD_SCHEMA,
                per_task_row_limit=per_task_row_limit,
            )
            for f in self._files
        ]
