"""File resolution, streaming readers and quarantine files (no Ray, no tokenizer)."""

from __future__ import annotations

import bz2
import gzip
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import zstandard

from raytune_chat.datasets._files import resolve_data_files
from raytune_chat.datasets._quarantine import (
    MAX_RAW_BYTES,
    QuarantineWriter,
    make_reject,
    read_rejects,
    summarize_reasons,
)
from raytune_chat.datasets._readers import iter_record_blocks, peek_records
from raytune_chat.datasets._tokenize import _Rejected, parse_row

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


def test_unreadable_file_becomes_one_error_record(tmp_path):
    path = tmp_path / "x.jsonl.gz"
    path.write_bytes(b"not gzip at all")
    (record,) = _records(path)
    assert record["raw"] == b"" and "cannot read" in record["error"]


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


def test_peek_reads_only_the_first_records(tmp_path):
    (tmp_path / "x.jsonl").write_bytes(_jsonl(ROWS))
    (file,) = resolve_data_files("json", str(tmp_path / "x.jsonl"))
    assert [json.loads(r) for r in peek_records(file, limit=3)] == ROWS[:3]


@pytest.mark.parametrize(
    ("raw", "reason"),
    [(b"\xff\xfe{}", "invalid_utf8"), (b'{"a": 1', "invalid_json"), (b"[1, 2]", "not_an_object")],
)
def test_parse_row_reasons(raw, reason):
    with pytest.raises(_Rejected) as info:
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
