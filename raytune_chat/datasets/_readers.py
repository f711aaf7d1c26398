"""Stream raw records out of one input file, in bounded memory.

Plain Python, no Ray. A record is the raw UTF-8 bytes of one row plus where it came from;
parsing and validation happen later, in the parallel map stage, so a bad row becomes a
quarantined reject instead of a failed read, and rows whose fields change type (OpenAI
``content`` a string here, a list of parts there) never meet a columnar schema.

* JSON Lines: read in chunks, split on newlines (1-based ``line``).
* JSON array (first non-space byte ``[``): parsed item by item with ``ijson`` and each item
  re-serialized (0-based ``row``). A syntax error ends that file with one ``read_error``
  record, since a JSON array cannot be resynchronised.
* Parquet: record batches, each row serialized to JSON (0-based ``row``).

Compressed files (``.gz``, ``.zst``, ``.bz2``) are decompressed as a stream.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from typing import Any, BinaryIO

import fsspec
import ijson
import pyarrow as pa
import pyarrow.parquet as pq

from raytune_chat.datasets._files import DataFile, storage_options_for

__all__ = ["RECORD_SCHEMA", "iter_record_blocks", "peek_records"]

RECORD_SCHEMA = pa.schema(
    [
        ("source", pa.string()),
        ("line", pa.int64()),
        ("row", pa.int64()),
        ("raw", pa.binary()),
        ("error", pa.string()),
    ]
)
_CHUNK = 4 << 20
_BOM = b"\xef\xbb\xbf"


class _Block:
    """Accumulates records until about ``max_bytes`` of raw text."""

    def __init__(self, source: str, max_bytes: int) -> None:
        self.source, self.max_bytes = source, max_bytes
        self.clear()

    def clear(self) -> None:
        self.line: list[int] = []
        self.row: list[int] = []
        self.raw: list[bytes] = []
        self.error: list[str | None] = []
        self.nbytes = 0

    def add(self, raw: bytes, *, line: int = -1, row: int = -1, error: str | None = None) -> None:
        self.line.append(line)
        self.row.append(row)
        self.raw.append(raw)
        self.error.append(error)
        self.nbytes += len(raw) + 32

    @property
    def full(self) -> bool:
        return self.nbytes >= self.max_bytes

    def take(self) -> pa.Table:
        n = len(self.raw)
        table = pa.Table.from_arrays(
            [
                pa.array([self.source] * n, pa.string()),
                pa.array(self.line, pa.int64()),
                pa.array(self.row, pa.int64()),
                pa.array(self.raw, pa.binary()),
                pa.array(self.error, pa.string()),
            ],
            schema=RECORD_SCHEMA,
        )
        self.clear()
        return table


class _Prepend:
    """A read-only stream that first returns ``head`` and then the rest of ``f``."""

    def __init__(self, head: bytes, f: BinaryIO) -> None:
        self.head, self.f = head, f

    def read(self, n: int = -1) -> bytes:
        if self.head:
            if n is None or n < 0:
                out, self.head = self.head + self.f.read(), b""
                return out
            out, self.head = self.head[:n], self.head[n:]
            return out
        return self.f.read(n)


def _jsonl(f: Any, head: bytes, block: _Block) -> Iterator[pa.Table]:
    pending, line_no = head, 0
    while True:
        chunk = f.read(_CHUNK)
        if chunk:
            pending += chunk
        lines = pending.split(b"\n")
        pending = lines.pop() if chunk else b""
        for raw in lines:
            line_no += 1
            if raw.strip():
                block.add(raw.rstrip(b"\r"), line=line_no)
                if block.full:
                    yield block.take()
        if not chunk:
            break


def _json_array(f: Any, head: bytes, block: _Block) -> Iterator[pa.Table]:
    row = 0
    try:
        for item in ijson.items(_Prepend(head, f), "item", use_float=True):
            block.add(json.dumps(item, ensure_ascii=False).encode(), row=row)
            row += 1
            if block.full:
                yield block.take()
    except (ijson.JSONError, UnicodeDecodeError, ValueError) as exc:
        block.add(b"", row=row, error=f"JSON array unreadable from item {row} on: {exc}")


def _parquet(f: Any, block: _Block) -> Iterator[pa.Table]:
    row = 0
    for batch in pq.ParquetFile(f).iter_batches(batch_size=1024):
        for item in batch.to_pylist():
            block.add(json.dumps(item, ensure_ascii=False, default=str).encode(), row=row)
            row += 1
            if block.full:
                yield block.take()


def _sniff(f: Any) -> bytes:
    """Read until the first non-whitespace byte (at most one chunk) and return what was read."""
    head = f.read(4096)
    while head and not head.removeprefix(_BOM).lstrip():
        more = f.read(4096)
        if not more:
            break
        head += more
    return head


def iter_record_blocks(
    file: DataFile,
    *,
    storage_options: Mapping[str, Any] | None = None,
    block_bytes: int = 8 << 20,
) -> Iterator[pa.Table]:
    """Yield ``RECORD_SCHEMA`` tables of about ``block_bytes`` raw bytes each.

    A file that cannot be opened or read yields one record with ``error`` set (reason
    ``read_error`` downstream) instead of failing the whole read.

    Example:
        >>> import tempfile, os
        >>> path = os.path.join(tempfile.mkdtemp(), "x.jsonl")
        >>> _ = open(path, "wb").write(b'{"a": 1}\\n\\n{"a": [2]}\\n')
        >>> [t.to_pydict()["line"] for t in iter_record_blocks(DataFile(path, "json", None, None))]
        [[1, 3]]
    """
    block = _Block(file.path, block_bytes)
    opts = storage_options_for(file.path, storage_options)
    try:
        with fsspec.open(file.path, "rb", compression=file.compression, **opts) as f:
            if file.format == "parquet":
                yield from _parquet(f, block)
            else:
                head = _sniff(f).removeprefix(_BOM)
                if head.lstrip().startswith(b"["):
                    yield from _json_array(f, head, block)
                else:
                    yield from _jsonl(f, head, block)
    except (OSError, pa.ArrowException, EOFError, ValueError) as exc:
        block.add(b"", error=f"cannot read {file.path}: {type(exc).__name__}: {exc}")
    if block.raw:
        yield block.take()


def peek_records(
    file: DataFile, *, storage_options: Mapping[str, Any] | None = None, limit: int = 20
) -> list[bytes]:
    """The raw bytes of up to ``limit`` first records of ``file`` (read errors skipped)."""
    out: list[bytes] = []
    for table in iter_record_blocks(file, storage_options=storage_options, block_bytes=1 << 16):
        for raw, error in zip(table["raw"].to_pylist(), table["error"].to_pylist(), strict=True):
            if error is None:
                out.append(raw)
            if len(out) >= limit:
                return out
    return out
