"""File resolution, streaming readers and quarantine files (no Ray, no tokenizer).

Read failures use a local fsspec filesystem (``flaky://``) whose files raise a connection
reset when a read crosses given byte offsets, a set number of times.
"""

from __future__ import annotations

import bz2
import gzip
import json
import random
from pathlib import Path

import fsspec
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import zstandard
from fsspec.implementations.local import LocalFileSystem

from raytune_chat.data import RowRejected
from raytune_chat.datasets._files import DataFile, resolve_data_files
from raytune_chat.datasets._quarantine import (
    MAX_RAW_BYTES,
    QuarantineWriter,
    make_reject,
    read_rejects,
    summarize_reasons,
)
from raytune_chat.datasets._readers import (
    RECORD_ID_FILE_SHIFT,
    DataFileUnreadable,
    iter_record_blocks,
    sample_file,
)
from raytune_chat.datasets._tokenize import parse_row

ROWS = [
    {"dialogue": [{"from": "human", "value": f"q{i}"}, {"from": "gpt", "value": f"a{i}"}]}
    for i in range(50)
]
# Field types that change between rows: a columnar reader would have to pick one schema.
MIXED = [
    {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]},
    {"messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}], "extra": 3},
    {"messages": "not a list", "extra": "three"},
]


def _records(path: Path, **kwargs) -> list[dict]:
    (file,) = resolve_data_files(str(path), None)
    out = []
    for table in iter_record_blocks(file, **kwargs):
        out.extend(table.to_pylist())
    return out


def _jsonl(rows) -> bytes:
    return "".join(json.dumps(r) + "\n" for r in rows).encode()


@pytest.mark.parametrize(
    ("name", "compress"),
    [
        ("x.jsonl", lambda b: b),
        ("x.jsonl.gz", gzip.compress),
        ("x.jsonl.bz2", bz2.compress),
        ("x.jsonl.zst", lambda b: zstandard.ZstdCompressor().compress(b)),
    ],
)
def test_jsonl_plain_and_compressed_give_every_line_once(tmp_path, name, compress):
    (tmp_path / name).write_bytes(compress(_jsonl(ROWS)))
    records = _records(tmp_path / name, block_bytes=512)  # many small blocks
    assert [json.loads(r["raw"]) for r in records] == ROWS
    assert [r["line"] for r in records] == list(range(1, 51))


def test_json_array_is_detected_and_read_item_by_item(tmp_path):
    path = tmp_path / "x.json"
    path.write_text("\ufeff  \n" + json.dumps(MIXED, indent=2), encoding="utf-8")
    records = _records(path)
    assert [json.loads(r["raw"]) for r in records] == MIXED
    assert [r["row"] for r in records] == [0, 1, 2] and {r["line"] for r in records} == {-1}


def test_broken_json_array_keeps_earlier_items_and_reports_a_read_error(tmp_path):
    path = tmp_path / "x.json"
    path.write_text('[{"a": 1}, {"a": 2}, {"a": ]')
    records = _records(path)
    assert [r["raw"] for r in records[:2]] == [b'{"a": 1}', b'{"a": 2}']
    assert records[2]["row"] == 2 and "unreadable from item 2" in records[2]["error"]


def test_missing_file_is_an_error_not_a_glob_match(tmp_path):
    with pytest.raises(FileNotFoundError, match="matches no file"):
        resolve_data_files("json", str(tmp_path / "*.jsonl"))


def test_a_corrupt_file_stops_the_read_naming_it(tmp_path):
    path = tmp_path / "x.jsonl.gz"
    path.write_bytes(b"not gzip at all")
    with pytest.raises(DataFileUnreadable, match=r"cannot read .*x\.jsonl\.gz.*BadGzipFile"):
        _records(path)


def test_record_ids_are_file_index_and_line_or_row(tmp_path):
    (tmp_path / "x.jsonl").write_bytes(_jsonl(ROWS[:3]))
    (file,) = resolve_data_files("json", str(tmp_path / "x.jsonl"))
    records = [r for t in iter_record_blocks(file, file_index=2) for r in t.to_pylist()]
    assert [r["record_id"] for r in records] == [(2 << RECORD_ID_FILE_SHIFT) + n for n in (1, 2, 3)]


class FlakyFileSystem(LocalFileSystem):
    """Local files whose reads fail (connection reset) at each offset of ``fail_at``,
    ``failures`` times per offset; ``opens`` counts the files opened."""

    protocol = "flaky"
    root_marker = "/"
    fail_at: list[int] = []
    failures = 1
    partial = True  # deliver the bytes before a break (a stream), or fail the whole read
    on_break = staticmethod(lambda: None)
    left: dict[int, int] = {}
    opens = 0

    # The hook fsspec gives implementations for their URLs (s3fs and gcsfs override it too),
    # not a private call. LocalFileSystem strips a subclass's own protocol only since fsspec
    # PR #2014 (2026); the package supports fsspec>=2024.1, whose LocalFileSystem would read
    # "flaky://x" as a relative path. Harmless on newer fsspec (the prefix is already gone).
    @classmethod
    def _strip_protocol(cls, path):
        return super()._strip_protocol(str(path).removeprefix("flaky://"))

    def _open(self, path, mode="rb", **kwargs):
        type(self).opens += 1
        return _FlakyFile(super()._open(path, mode, **kwargs), type(self))


class _FlakyFile:
    def __init__(self, f, policy):
        self.f, self.policy = f, policy

    def read(self, n=-1):
        # Like a network stream: the bytes before a break arrive, the read at it fails.
        pos = self.f.tell()
        end = pos + (n if n is not None and n >= 0 else 1 << 62)
        for offset in self.policy.fail_at:
            if not self.policy.left.setdefault(offset, self.policy.failures):
                continue
            if pos < offset < end and self.policy.partial:
                return self.f.read(offset - pos)
            if pos == offset or pos < offset < end:
                self.policy.left[offset] -= 1
                self.policy.on_break()
                raise ConnectionResetError(f"reset by peer at byte {offset}")
        return self.f.read(n)

    def __getattr__(self, name):
        return getattr(self.f, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.f.close()


fsspec.register_implementation("flaky", FlakyFileSystem, clobber=True)


def _flaky(path: Path, fmt: str, compression=None, *, fail_at, failures) -> list[dict]:
    FlakyFileSystem.fail_at, FlakyFileSystem.failures, FlakyFileSystem.left = fail_at, failures, {}
    FlakyFileSystem.opens, FlakyFileSystem.partial = 0, fmt != "parquet"
    size = None if compression else path.stat().st_size
    file = DataFile(f"flaky://{path}", fmt, compression, size)
    blocks = iter_record_blocks(file, block_bytes=256, retry_delays=(0.0,) * 5)
    return [r for t in blocks for r in t.to_pylist()]


@pytest.mark.parametrize(
    ("name", "write"),
    [
        ("x.jsonl", lambda p: p.write_bytes(_jsonl(ROWS))),
        ("x.json", lambda p: p.write_text(json.dumps(ROWS, indent=1))),
        ("x.jsonl.gz", lambda p: p.write_bytes(gzip.compress(_jsonl(ROWS)))),
        ("x.parquet", lambda p: pq.write_table(pa.Table.from_pylist(ROWS), p)),
    ],
)
def test_transient_breaks_resume_where_they_stopped_every_record_once(tmp_path, name, write):
    path = tmp_path / name
    write(path)
    (file,) = resolve_data_files("json" if "json" in name else "parquet", str(path))
    size = path.stat().st_size
    records = _flaky(
        path, file.format, file.compression, fail_at=[size // 3, size * 2 // 3], failures=2
    )
    assert [json.loads(r["raw"]) for r in records] == ROWS  # each once, in order
    assert FlakyFileSystem.opens >= 3  # it did fail and open the file again


def test_a_break_for_good_fails_naming_the_file_and_how_far(tmp_path):
    path = tmp_path / "x.jsonl"
    path.write_bytes(_jsonl(ROWS))
    size = path.stat().st_size
    cut = size * 55 // 100
    with pytest.raises(DataFileUnreadable) as err:
        _flaky(path, "json", fail_at=[cut], failures=1000)
    message = str(err.value)
    assert f"flaky://{path}" in message and "after 5 retries" in message
    assert f"of {size:,} (" in message and "ConnectionResetError" in message
    reached = int(message.split("stopped at byte ")[1].split(" ")[0].replace(",", ""))
    assert reached <= cut  # how far it got: the last byte before the break it read


def test_a_file_that_changes_while_read_is_not_mixed(tmp_path):
    path = tmp_path / "x.jsonl"
    path.write_bytes(_jsonl(ROWS))
    # The object is replaced by another one while the connection is down.
    FlakyFileSystem.on_break = staticmethod(lambda: path.write_bytes(_jsonl(ROWS[:10])))
    try:
        with pytest.raises(DataFileUnreadable, match="its size is now"):
            _flaky(path, "json", fail_at=[2000], failures=1)
    finally:
        FlakyFileSystem.on_break = staticmethod(lambda: None)


def test_parquet_rows_with_any_column_types(tmp_path):
    path = tmp_path / "x.parquet"
    pq.write_table(pa.Table.from_pylist(ROWS), path)
    records = _records(path)
    assert [json.loads(r["raw"]) for r in records] == ROWS


def test_glob_directory_and_list_resolve_to_sorted_files(tmp_path):
    for name in ["b.jsonl", "a.json", "c.parquet", "_SUCCESS", ".hidden.json", "notes.txt"]:
        (tmp_path / name).write_text("")
    names = lambda files: [Path(f.path).name for f in files]  # noqa: E731
    assert names(resolve_data_files("json", str(tmp_path / "*.json*"))) == ["a.json", "b.jsonl"]
    assert names(resolve_data_files("parquet", str(tmp_path))) == ["a.json", "b.jsonl", "c.parquet"]
    listed = resolve_data_files("json", [str(tmp_path / "b.jsonl"), str(tmp_path / "a.json")])
    assert names(listed) == ["b.jsonl", "a.json"]
    (from_path,) = resolve_data_files(str(tmp_path / "c.parquet"), None)
    assert from_path.format == "parquet"
    with pytest.raises(ValueError, match="split 'test'"):
        resolve_data_files("json", str(tmp_path / "a.json"), split="test")
    by_split = resolve_data_files("json", {"test": str(tmp_path / "a.json")}, split="test")
    assert names(by_split) == ["a.json"]


def test_sample_reads_the_start_and_says_how_many_records_per_byte(tmp_path):
    (tmp_path / "x.jsonl").write_bytes(_jsonl(ROWS))
    rng = random.Random(0)
    varied = [{"text": " ".join(str(rng.random()) for _ in range(20))} for _ in range(4000)]
    (tmp_path / "x.jsonl.gz").write_bytes(gzip.compress(_jsonl(varied)))
    paths = [str(tmp_path / "x.jsonl"), str(tmp_path / "x.jsonl.gz")]
    (file, gz) = resolve_data_files("json", paths)
    whole = sample_file(file, max_records=3)
    assert [json.loads(r) for r in whole.records] == ROWS[:3]
    assert whole.whole_file and whole.num_records == 50 and whole.stored_bytes == file.size
    part = sample_file(gz, max_bytes=64 << 10)
    assert not part.whole_file and 0 < part.num_records < 4000
    # records per stored (compressed) byte, within 50% of the truth for the whole file
    truth = 4000 / (tmp_path / "x.jsonl.gz").stat().st_size
    assert truth / 1.5 < part.records_per_byte < truth * 1.5


@pytest.mark.parametrize(
    ("raw", "reason"),
    [(b"\xff\xfe{}", "invalid_utf8"), (b'{"a": 1', "invalid_json"), (b"[1, 2]", "not_an_object")],
)
def test_parse_row_reasons(raw, reason):
    with pytest.raises(RowRejected) as info:
        parse_row(raw)
    assert info.value.reason == reason


def test_quarantine_files_roundtrip_deduplicated_and_cut(tmp_path):
    big = b"x" * (MAX_RAW_BYTES * 3)
    records = [
        make_reject(source="f", line=1, row=-1, reason="invalid_json", message="m", raw=big),
        make_reject(source="f", line=2, row=-1, reason="unknown_role", message="m", raw=b"{}"),
    ]
    writer = QuarantineWriter(str(tmp_path / "rej"))
    assert writer.write([]) is None
    writer.write(records)
    QuarantineWriter(str(tmp_path / "rej")).write(records[:1])  # a second pass, same row
    got = sorted(read_rejects(str(tmp_path / "rej")), key=lambda r: r["line"])
    assert [(r["line"], r["reason"]) for r in got] == [(1, "invalid_json"), (2, "unknown_role")]
    assert len(got[0]["raw"]) == MAX_RAW_BYTES and got[0]["raw_truncated"]
    assert summarize_reasons([r["reason"] for r in got], total=4).startswith(
        "2 of 4 rows rejected (50.00%)"
    )
