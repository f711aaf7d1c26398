"""Stream raw records out of one input file, in bounded memory, never losing or repeating one.

Plain Python, no Ray. A record is the raw UTF-8 bytes of one row plus where it came from;
parsing and validation happen later, in the parallel map stage, so a bad row becomes a
quarantined reject instead of a failed read, and rows whose fields change type (OpenAI
``content`` a string here, a list of parts there) never meet a columnar schema.

* JSON Lines: read in chunks, split on newlines (1-based ``line``).
* JSON array (first non-space byte ``[``): parsed item by item with ``ijson`` and each item
  re-serialized (0-based ``row``). A syntax error ends that file with one record whose
  ``error`` is set (reason ``invalid_json_array`` downstream): the content is malformed, and
  a JSON array cannot be resynchronised.
* Parquet: record batches, each row serialized to JSON (0-based ``row``).

Compressed files (``.gz``, ``.zst``, ``.bz2``) are decompressed as a stream. Every record
carries a ``record_id``, ``file_index * 2**40 + line_or_row``: stable for the same file list.

A read failure is never a reject. A transient error (connection reset, timeout, throttling)
is retried with backoff by opening the file again and continuing from the byte reached (a
ranged read for plain files; compressed streams are decompressed again up to that byte;
Parquet continues at the row reached), so no record is lost or read twice. Retrying here,
not by re-running the Ray read task, matters: a re-run task would emit again the blocks it
had already yielded. A file that still fails after the retries, or that is missing, corrupt
or changed while being read, raises :class:`DataFileUnreadable`, which stops the run
naming the file and how far it got.
"""

from __future__ import annotations

import gzip
import io
import json
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, BinaryIO, TypeVar

import fsspec
import ijson
import pyarrow as pa
import pyarrow.parquet as pq
from fsspec.compression import compr

from raytune_chat.datasets._files import DataFile, storage_options_for

__all__ = [
    "RECORD_ID_FILE_SHIFT",
    "RECORD_SCHEMA",
    "RETRY_DELAYS",
    "DataFileUnreadable",
    "FileSample",
    "iter_record_blocks",
    "read_with_retries",
    "sample_file",
]

RECORD_SCHEMA = pa.schema(
    [
        ("source", pa.string()),
        ("line", pa.int64()),
        ("row", pa.int64()),
        ("record_id", pa.int64()),
        ("raw", pa.binary()),
        ("error", pa.string()),
    ]
)
RECORD_ID_FILE_SHIFT = 40
# Seconds to wait before each retry of a failing read; the count resets once bytes flow again.
RETRY_DELAYS = (0.5, 1.0, 2.0, 4.0, 8.0)
_CHUNK = 4 << 20
_RETRY_UNIT = 256 << 10
_T = TypeVar("_T")
_BOM = b"\xef\xbb\xbf"


class DataFileUnreadable(RuntimeError):
    """A data file could not be read to its end; the message names it and how far it got."""


class _FileChanged(OSError):
    """The file is not the one that was listed (another size): reading on would mix two."""


def _optional_errors(module: str, names: tuple[str, ...]) -> tuple[type[BaseException], ...]:
    try:
        mod = __import__(module, fromlist=list(names))
    except ImportError:
        return ()
    return tuple(getattr(mod, n) for n in names if hasattr(mod, n))


# Errors that retrying cannot cure: checked before the transient ones (most are OSErrors).
_PERMANENT: tuple[type[BaseException], ...] = (
    FileNotFoundError,
    PermissionError,
    IsADirectoryError,
    NotADirectoryError,
    gzip.BadGzipFile,
    EOFError,
    _FileChanged,
    *_optional_errors("zstandard", ("ZstdError",)),
)
_TRANSIENT: tuple[type[BaseException], ...] = (
    OSError,
    *_optional_errors("aiohttp", ("ClientError",)),
    *_optional_errors("botocore.exceptions", ("BotoCoreError",)),
)
# Whatever a storage backend raises (a missing path, a refused connection, an unknown bucket):
# the transient errors above, of which FileNotFoundError and PermissionError are OSErrors too.
STORAGE_ERRORS = _TRANSIENT


class _Retries:
    """The retry policy of one file: sleep before each retry, give up after ``delays`` run out."""

    def __init__(self, path: str, delays: tuple[float, ...]) -> None:
        self.path, self.delays = path, delays
        self.failures, self._progress_at_failure = 0, -1

    def failed(self, exc: BaseException, progress: int, where: str) -> None:
        """Sleep before the next attempt, or raise :class:`DataFileUnreadable`."""
        if progress > self._progress_at_failure:
            self.failures = 0  # bytes flowed since the last failure: a new streak
        self._progress_at_failure = progress
        if isinstance(exc, _PERMANENT) or self.failures >= len(self.delays):
            tried = f" after {self.failures} retries" if self.failures else ""
            raise DataFileUnreadable(
                f"cannot read {self.path}{tried}: stopped at {where}: {type(exc).__name__}: {exc}"
            ) from exc
        time.sleep(self.delays[self.failures])
        self.failures += 1


def _transient_or_permanent(exc: BaseException) -> bool:
    return isinstance(exc, _PERMANENT + _TRANSIENT)


def read_with_retries(
    path: str, read: Callable[[], _T], delays: tuple[float, ...] = RETRY_DELAYS
) -> _T:
    """``read()`` (which reads ``path`` whole) until it succeeds, with the readers' policy.

    Raises:
        DataFileUnreadable: it kept failing, or failed in a way retrying cannot cure.
    """
    retries = _Retries(path, delays)
    while True:
        try:
            return read()
        except Exception as exc:
            if not _transient_or_permanent(exc):
                raise
            retries.failed(exc, 0, "the start")


class _ResumableStream:
    """The (decompressed) bytes of one file, read front to back; see the module docstring."""

    def __init__(
        self,
        file: DataFile,
        options: Mapping[str, Any],
        delays: tuple[float, ...] = RETRY_DELAYS,
    ) -> None:
        self._file, self._options = file, dict(options)
        self._retries = _Retries(file.path, delays)
        self._f: Any = None
        self.offset = 0

    def _where(self) -> str:
        if self._file.compression or not self._file.size:
            return f"byte {self.offset:,} of the decompressed stream"
        share = 100.0 * self.offset / self._file.size
        return f"byte {self.offset:,} of {self._file.size:,} ({share:.0f}%)"

    def _open(self) -> None:
        opened = fsspec.open(
            self._file.path, "rb", compression=self._file.compression, **self._options
        )
        if self.offset and self._file.size is not None:
            size = opened.fs.size(opened.path)
            if size is not None and int(size) != self._file.size:
                raise _FileChanged(f"its size is now {size:,}, was {self._file.size:,}")
        f = opened.open()
        try:
            if self._file.compression is None:
                f.seek(self.offset)
            else:  # a compressed stream has no random access: decompress up to the offset
                left = self.offset
                while left:
                    skipped = len(f.read(min(left, _CHUNK)))
                    if not skipped:
                        raise EOFError("the file is shorter than what was already read")
                    left -= skipped
        except BaseException:
            f.close()
            raise
        self._f = f

    def read(self, n: int = -1) -> bytes:
        while True:
            try:
                if self._f is None:
                    self._open()
                # Bounded reads: what a failure takes back is at most one of them (or one
                # block of the filesystem's buffer), so "how far it got" is close to true.
                unit = min(_RETRY_UNIT, getattr(self._f, "blocksize", None) or _RETRY_UNIT)
                data = self._f.read(unit if n is None or n < 0 or n > unit else n)
            except Exception as exc:
                if not _transient_or_permanent(exc):
                    raise
                self.close()
                self._retries.failed(exc, self.offset, self._where())
                continue
            self.offset += len(data)
            return data

    def close(self) -> None:
        if self._f is not None:
            try:
                self._f.close()
            except Exception:  # noqa: BLE001 - closing a broken connection may fail too
                pass
            self._f = None


class _Block:
    """Accumulates records until about ``max_bytes`` of raw text."""

    def __init__(self, source: str, file_index: int, max_bytes: int) -> None:
        self.source, self.max_bytes = source, max_bytes
        self._id_base = file_index << RECORD_ID_FILE_SHIFT
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
        numbers = [
            line if line >= 0 else row for line, row in zip(self.line, self.row, strict=True)
        ]
        table = pa.Table.from_arrays(
            [
                pa.array([self.source] * n, pa.string()),
                pa.array(self.line, pa.int64()),
                pa.array(self.row, pa.int64()),
                pa.array([self._id_base + k for k in numbers], pa.int64()),
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


def _parquet_rows(f: Any, skip: int) -> Iterator[dict[str, Any]]:
    for batch in pq.ParquetFile(f).iter_batches(batch_size=1024):
        if skip >= batch.num_rows:
            skip -= batch.num_rows
            continue
        yield from batch.slice(skip).to_pylist()
        skip = 0


def _parquet(
    file: DataFile, options: Mapping[str, Any], block: _Block, delays: tuple[float, ...]
) -> Iterator[pa.Table]:
    """Parquet needs random access: on a transient error, open again and skip the rows done."""
    retries, done = _Retries(file.path, delays), 0
    while True:
        try:
            with fsspec.open(file.path, "rb", **options) as f:
                for item in _parquet_rows(f, done):
                    block.add(json.dumps(item, ensure_ascii=False, default=str).encode(), row=done)
                    done += 1
                    if block.full:
                        yield block.take()
            return
        except Exception as exc:
            if not _transient_or_permanent(exc):
                raise
            retries.failed(exc, done, f"row {done:,}")


def _sniff(f: Any) -> bytes:
    """Read until the first non-whitespace byte (at most one chunk) and return what was read."""
    head = f.read(4096)
    while head and not head.removeprefix(_BOM).lstrip():
        more = f.read(4096)
        if not more:
            break
        head += more
    return head


def _text_records(f: Any, block: _Block) -> Iterator[pa.Table]:
    head = _sniff(f).removeprefix(_BOM)
    if head.lstrip().startswith(b"["):
        yield from _json_array(f, head, block)
    else:
        yield from _jsonl(f, head, block)


def iter_record_blocks(
    file: DataFile,
    *,
    storage_options: Mapping[str, Any] | None = None,
    block_bytes: int = 8 << 20,
    file_index: int = 0,
    retry_delays: tuple[float, ...] = RETRY_DELAYS,
) -> Iterator[pa.Table]:
    """Yield ``RECORD_SCHEMA`` tables of about ``block_bytes`` raw bytes each.

    Raises:
        DataFileUnreadable: the file is missing, corrupt, changed while being read, or kept
            failing after the retries (see the module docstring).

    Example:
        >>> import tempfile, os
        >>> path = os.path.join(tempfile.mkdtemp(), "x.jsonl")
        >>> _ = open(path, "wb").write(b'{"a": 1}\\n\\n{"a": [2]}\\n')
        >>> [t.to_pydict()["line"] for t in iter_record_blocks(DataFile(path, "json", None, None))]
        [[1, 3]]
    """
    block = _Block(file.path, file_index, block_bytes)
    opts = storage_options_for(file.path, storage_options)
    if file.format == "parquet":
        yield from _parquet(file, opts, block, retry_delays)
    else:
        stream = _ResumableStream(file, opts, retry_delays)
        try:
            yield from _text_records(stream, block)
        finally:
            stream.close()
    if block.raw:
        yield block.take()


class _Counting:
    """Counts the bytes read through it (the stored, possibly compressed, bytes)."""

    def __init__(self, f: Any) -> None:
        self.f, self.count = f, 0

    def read(self, n: int = -1) -> bytes:
        data = self.f.read(n)
        self.count += len(data)
        return data

    def __getattr__(self, name: str) -> Any:
        return getattr(self.f, name)


@dataclass(frozen=True)
class FileSample:
    """The first records of a file, and what they say about the whole of it.

    Attributes:
        records: raw bytes of up to ``max_records`` first records (read errors left out).
        num_records: how many records the sampled bytes hold.
        stored_bytes: how many bytes of storage they took (compressed, if compressed).
        whole_file: the sample reached the end: ``num_records`` is the file's exact count.
    """

    records: list[bytes]
    num_records: int
    stored_bytes: int
    whole_file: bool

    @property
    def records_per_byte(self) -> float | None:
        return self.num_records / self.stored_bytes if self.stored_bytes else None


def _sample_parquet(file: DataFile, opts: Mapping[str, Any], max_records: int) -> FileSample:
    with fsspec.open(file.path, "rb", **opts) as f:
        total = pq.ParquetFile(f).metadata.num_rows
        f.seek(0)
        records = []
        for item in _parquet_rows(f, 0):
            records.append(json.dumps(item, ensure_ascii=False, default=str).encode())
            if len(records) >= max_records:
                break
    return FileSample(records, total, file.size or 0, whole_file=True)


def _parsed(head: bytes, cut: bool) -> list[pa.Table]:
    block = _Block("sample", 0, 1 << 62)
    tables = list(_text_records(io.BytesIO(head), block))
    if block.raw:
        tables.append(block.take())
    if cut and tables and tables[-1].num_rows:  # the last record may be cut in two
        last = tables[-1]
        tables[-1] = last.slice(0, last.num_rows - 1)
    return tables


def sample_file(
    file: DataFile,
    *,
    storage_options: Mapping[str, Any] | None = None,
    max_bytes: int = 1 << 20,
    max_records: int = 64,
) -> FileSample:
    """Read about ``max_bytes`` (decompressed) from the start of ``file``: one request, cheap.

    The step plan of a run is estimated from it before the data is read; see
    :class:`FileSample`.

    Raises:
        DataFileUnreadable: the file cannot be opened or read.
    """
    opts = storage_options_for(file.path, storage_options)
    if file.format == "parquet":
        return read_with_retries(file.path, lambda: _sample_parquet(file, opts, max_records))

    def read_head() -> tuple[bytes, bool, int]:
        with fsspec.open(file.path, "rb", **opts) as raw:
            counted = _Counting(raw)
            f = compr[file.compression](counted, mode="rb") if file.compression else counted
            head = f.read(max_bytes + 1)
            cut = len(head) > max_bytes
            return head[:max_bytes], cut, counted.count if cut else (file.size or counted.count)

    head, cut, stored = read_with_retries(file.path, read_head)
    records, num = [], 0
    for table in _parsed(head, cut):
        for raw, error in zip(table["raw"].to_pylist(), table["error"].to_pylist(), strict=True):
            if error is None:
                num += 1
                if len(records) < max_records:
                    records.append(raw)
    return FileSample(records, num, stored, whole_file=not cut)
