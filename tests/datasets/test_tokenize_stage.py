"""The tokenization stage as a plain callable (no Ray): rows, rejects, filter, early stop,
token store parts and ledger counts."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from raytune_chat.data import ShareGPTToMessages, shifted_labels, tokenize_row
from raytune_chat.datasets import TooManyRejectedRows, read_rejects
from raytune_chat.datasets._ledger import PassLedger
from raytune_chat.datasets._readers import RECORD_SCHEMA
from raytune_chat.datasets._token_store import TokenStore
from raytune_chat.datasets._tokenize import TokenizeRows, tokenized_table
from raytune_chat.models.llama3 import llama3_tokenizer

GOOD = [
    {"dialogue": [{"from": "human", "value": f"q {i}"}, {"from": "gpt", "value": f"a {i}"}]}
    for i in range(6)
]


def _batch(raws: list[bytes], first_line: int = 1, broken_last: bool = True) -> pa.Table:
    n = len(raws)
    lines = list(range(first_line, first_line + n))
    return pa.Table.from_pydict(
        {
            "source": ["f.jsonl"] * n,
            "line": lines,
            "row": [-1] * n,
            "record_id": lines,
            "raw": raws,
            "error": [None] * (n - 1)
            + ["JSON array unreadable from item 7 on" if broken_last else None],
        },
        schema=RECORD_SCHEMA,
    )


@pytest.fixture(scope="module")
def tokenizer(bpe_path):
    return llama3_tokenizer(str(bpe_path))


def _stage(tokenizer, tmp_path, **kwargs) -> TokenizeRows:
    return TokenizeRows(
        tokenizer=tokenizer,
        conversation_style="sharegpt",
        conversation_column="dialogue",
        rejected_path=str(tmp_path / "rej"),
        **kwargs,
    )


def test_stage_tokenizes_good_rows_and_quarantines_the_rest(tokenizer, tmp_path):
    raws = [json.dumps(r).encode() for r in GOOD] + [b"{oops", b""]
    out = _stage(tokenizer, tmp_path, max_rejected_fraction=1.0)(_batch(raws))
    transform = ShareGPTToMessages(column_map={"conversations": "dialogue"})
    want = [tokenize_row(r, message_transform=transform, tokenizer=tokenizer) for r in GOOD]
    assert out["tokens"].to_pylist() == [w["tokens"] for w in want]
    assert out["labels"].to_pylist() == [w["labels"] for w in want]
    assert out["num_trained_tokens"].to_pylist() == [w["num_trained_tokens"] for w in want]
    rejects = sorted(read_rejects(str(tmp_path / "rej")), key=lambda r: r["line"])
    assert [(r["line"], r["reason"]) for r in rejects] == [
        (7, "invalid_json"),
        (8, "invalid_json_array"),
    ]
    assert out["row_id"].to_pylist() == [1, 2, 3, 4, 5, 6]  # the records' ids


def test_filter_fn_drops_raw_rows_before_tokenizing(tokenizer, tmp_path):
    raws = [json.dumps(r).encode() for r in GOOD] + [b"{}"]
    stage = _stage(
        tokenizer,
        tmp_path,
        max_rejected_fraction=1.0,
        filter_fn=lambda row: row["dialogue"][0]["value"] != "q 2",
    )
    out = stage(_batch(raws))
    assert out.num_rows == len(GOOD) - 1


def test_stage_stops_when_too_many_rows_are_rejected(tokenizer, tmp_path):
    stage = _stage(tokenizer, tmp_path, max_rejected_fraction=0.1, rejected_check_min_rows=5)
    with pytest.raises(TooManyRejectedRows, match=r"2 of 8 rows rejected .*invalid_json_array 1"):
        stage(_batch([json.dumps(r).encode() for r in GOOD] + [b"[]", b""]))


def test_batched_labels_equal_the_per_row_shift():
    rng = np.random.default_rng(0)
    rows = [list(rng.integers(0, 1000, size=n)) for n in (5, 1, 0, 9, 2, 0, 7)]
    masks = [list(rng.random(len(r)) < 0.4) for r in rows]
    table = tokenized_table([(r, m, False) for r, m in zip(rows, masks, strict=True)])
    want = [shifted_labels(r, m) for r, m in zip(rows, masks, strict=True)]
    assert table["labels"].to_pylist() == want
    assert table["tokens"].to_pylist() == [[int(t) for t in r] for r in rows]
    assert table["num_trained_tokens"].to_pylist() == [sum(x != -100 for x in w) for w in want]
    assert table["num_tokens"].to_pylist() == [len(r) for r in rows]
    assert tokenized_table([]).num_rows == 0


def test_a_batch_writes_its_store_part_and_counts_once_however_often_it_runs(tokenizer, tmp_path):
    """A batch processed twice (a retried task, an epoch read again) overwrites itself."""
    store = TokenStore(str(tmp_path / "store"), key="k")
    ledger = PassLedger(file_sizes=[1], store=store)
    stage = _stage(tokenizer, tmp_path, max_rejected_fraction=1.0, ledger=ledger, store=store)
    first = _batch([json.dumps(r).encode() for r in GOOD[:3]] + [b"{oops", b""])
    second = _batch([json.dumps(r).encode() for r in GOOD[3:]], first_line=6, broken_last=False)
    for batch in (first, second, first):
        stage(batch)
    assert sorted(p.name for p in (tmp_path / "store").iterdir()) == [
        TokenStore.part_name(1),
        TokenStore.part_name(6),
    ]
    ledger.file_read(0, 8)  # the reader's count arrives: the pass is complete
    stats = ledger.snapshot()
    assert (stats.rows_read, stats.rows_kept, stats.rows_rejected) == (8, 6, 2)
    assert stats.complete and stats.rows_tokenized == 13  # the work: 5 + 3 + 5 records
    assert stats.num_tokens == sum(
        len(
            tokenize_row(
                r,
                message_transform=ShareGPTToMessages(column_map={"conversations": "dialogue"}),
                tokenizer=tokenizer,
            )["tokens"]
        )
        for r in GOOD
    )
    assert [p.rows for p in store.parts()] == [3, 3]  # the manifest, written on completion
    read_back = [pq.read_table(p.path)["row_id"].to_pylist() for p in store.parts()]
    assert read_back == [[1, 2, 3], [6, 7, 8]]
