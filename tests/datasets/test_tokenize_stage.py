"""The tokenization stage as a plain callable (no Ray): rows, rejects, filter, early stop."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pytest

from raytune_chat.data import ShareGPTToMessages, shifted_labels, tokenize_row
from raytune_chat.datasets import TooManyRejectedRows, read_rejects
from raytune_chat.datasets._readers import RECORD_SCHEMA
from raytune_chat.datasets._tokenize import TokenizeRows, tokenized_table
from raytune_chat.models.llama3 import llama3_tokenizer

GOOD = [
    {"dialogue": [{"from": "human", "value": f"q {i}"}, {"from": "gpt", "value": f"a {i}"}]}
    for i in range(6)
]


def _batch(raws: list[bytes]) -> pa.Table:
    n = len(raws)
    return pa.Table.from_pydict(
        {
            "source": ["f.jsonl"] * n,
            "line": list(range(1, n + 1)),
            "row": [-1] * n,
            "raw": raws,
            "error": [None] * (n - 1) + ["cannot read f.jsonl"],
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
    assert [(r["line"], r["reason"]) for r in rejects] == [(7, "invalid_json"), (8, "read_error")]


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
    with pytest.raises(TooManyRejectedRows, match=r"2 of 8 rows rejected .*read_error 1"):
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
