"""chat_dataset on a real local Ray cluster: formats, S3, quarantine, packing, stats, stores."""

from __future__ import annotations

import gzip
import json
from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from raytune_chat.data import OpenAIToMessages, ShareGPTToMessages, tokenize_row
from raytune_chat.datasets import (
    PackedCollateFn,
    PaddedCollateFn,
    chat_dataset,
    chat_dataset_info,
    read_rejects,
)
from raytune_chat.models.llama3 import llama3_tokenizer
from tests.s3 import moto_s3_server, upload_files

SAMPLE = Path(__file__).resolve().parents[2] / "raytune_chat" / "_sample_data" / "sample_chat.json"
CONVERSATIONS = json.loads(SAMPLE.read_text())[:60]


@pytest.fixture(scope="module")
def tokenizer(bpe_path):
    return llama3_tokenizer(str(bpe_path), max_seq_len=2048)


def _expected(tokenizer, rows, column="dialogue", style="sharegpt"):
    cls, key = (
        (ShareGPTToMessages, "conversations")
        if style == "sharegpt"
        else (OpenAIToMessages, "messages")
    )
    transform = cls(column_map={key: column})
    return [tokenize_row(r, message_transform=transform, tokenizer=tokenizer) for r in rows]


def _multiset(rows) -> Counter:
    return Counter((tuple(map(int, r["tokens"])), tuple(map(int, r["labels"]))) for r in rows)


def _sharegpt(ds_kwargs, tokenizer, **kwargs):
    # One tokenizer actor: the tests are small and the 2 CPUs are shared.
    kwargs.setdefault("num_workers", 1)
    return chat_dataset(
        tokenizer,
        conversation_column="dialogue",
        conversation_style="sharegpt",
        **ds_kwargs,
        **kwargs,
    )


def test_tutorial_call_equals_the_foundation_tokenizer(
    ray_cluster, tokenizer, tmp_path, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    Path("data").mkdir()
    Path("data/my_data.json").write_text(json.dumps(CONVERSATIONS, indent=2))
    ds = chat_dataset(
        tokenizer,
        source="json",
        data_files="data/my_data.json",
        split="train",
        conversation_column="dialogue",
        conversation_style="sharegpt",
        rejected_path=str(tmp_path / "rejected"),
    )
    rows = ds.take_all()
    expected = _expected(tokenizer, CONVERSATIONS)
    assert len(rows) == len(expected)
    for got, want in zip(rows, expected, strict=True):  # file order is preserved
        assert list(got["tokens"]) == want["tokens"]
        assert list(got["labels"]) == want["labels"]
        assert got["num_trained_tokens"] == want["num_trained_tokens"]
    assert not (tmp_path / "rejected").exists()  # nothing rejected, nothing written


def _write_formats(tmp_path: Path) -> dict[str, Path]:
    lines = "".join(json.dumps(r) + "\n" for r in CONVERSATIONS)
    out = {"array": tmp_path / "a" / "chat.json", "jsonl": tmp_path / "l" / "chat.jsonl"}
    for p in out.values():
        p.parent.mkdir()
    out["array"].write_text(json.dumps(CONVERSATIONS))
    out["jsonl"].write_text(lines)
    out["gz"] = tmp_path / "l" / "chat.jsonl.gz"
    out["gz"].write_bytes(gzip.compress(lines.encode()))
    out["parquet"] = tmp_path / "p" / "chat.parquet"
    out["parquet"].parent.mkdir()
    pq.write_table(pa.Table.from_pylist(CONVERSATIONS), out["parquet"])
    half = len(CONVERSATIONS) // 2
    for i, part in enumerate([CONVERSATIONS[:half], CONVERSATIONS[half:]]):
        path = tmp_path / "s3" / f"part-{i}.jsonl"
        path.parent.mkdir(exist_ok=True)
        path.write_text("".join(json.dumps(r) + "\n" for r in part) + "{not json\n" * i)
    return out


@pytest.mark.slow
def test_same_rows_from_array_jsonl_gz_parquet_and_s3(
    ray_cluster, tokenizer, tmp_path, monkeypatch
):
    files = _write_formats(tmp_path)
    expected = _multiset(_expected(tokenizer, CONVERSATIONS))
    sources = [
        {"source": "json", "data_files": str(files["array"])},
        {"source": "jsonl", "data_files": str(files["jsonl"])},
        {"source": "json", "data_files": str(files["gz"])},
        {"source": "parquet", "data_files": str(files["parquet"])},
    ]
    for kwargs in sources:
        ds = _sharegpt(kwargs, tokenizer, rejected_path=str(tmp_path / "rej"))
        assert _multiset(ds.take_all()) == expected, kwargs
    with moto_s3_server() as server:
        upload_files(server, "bucket", "prefix", sorted((tmp_path / "s3").glob("*.jsonl")))
        monkeypatch.setenv("AWS_ENDPOINT_URL", server.endpoint_url)
        rejected = "s3://bucket/rejected"
        ds = _sharegpt(
            {"source": "json", "data_files": "s3://bucket/prefix/*.jsonl"},
            tokenizer,
            storage_options=server.storage_options,
            rejected_path=rejected,
            max_rejected_fraction=0.05,  # 1 of 61 rows is bad on purpose
            cache_path="s3://bucket/tokenized",
        )
        assert _multiset(ds.take_all()) == expected  # the pass also fills the token store
        assert chat_dataset_info(ds).store.path.startswith("s3://bucket/tokenized/")
        reused = chat_dataset(
            tokenizer,
            source="tokenized",
            data_files="s3://bucket/tokenized",
            conversation_column="dialogue",
            conversation_style="sharegpt",
            storage_options=server.storage_options,
        )
        assert _multiset(reused.take_all()) == expected
        assert chat_dataset_info(reused).stats().rows_tokenized == 0
        (reject,) = read_rejects(rejected, server.storage_options)
        assert reject["source"] == "s3://bucket/prefix/part-1.jsonl"
        assert (reject["line"], reject["reason"]) == (len(CONVERSATIONS) // 2 + 1, "invalid_json")


def _h(v):
    return {"from": "human", "value": v}


def _g(v):
    return {"from": "gpt", "value": v}


BAD_LINES = {
    b'{"dialogue": [{"from": "human", "value": "a"}': "invalid_json",
    b'{"dialogue": [{"from": "human", "value": "caf\xe9"}, {"from": "gpt", "value": "b"}]}': (
        "invalid_utf8"
    ),
    b"[1, 2, 3]": "not_an_object",
    json.dumps({"conversations": [_h("a"), _g("b")]}).encode(): "missing_column",
    json.dumps({"dialogue": "hello"}).encode(): "not_a_list",
    json.dumps({"dialogue": [_h("a"), {"from": "robot", "value": "b"}]}).encode(): "unknown_role",
    json.dumps({"dialogue": [_h(None), _g("b")]}).encode(): "null_content",
    json.dumps({"dialogue": [_g("a"), _h("b")]}).encode(): "bad_turn_order",
    json.dumps({"dialogue": [_h("a")]}).encode(): "too_few_messages",
}


def _malformed_corpus(path: Path) -> tuple[list[dict], dict[int, str]]:
    """Good rows with every kind of bad line spread through; returns (good rows, line->reason)."""
    good = CONVERSATIONS
    bad = list(BAD_LINES.items())
    lines, bad_at = [], {}
    for i, row in enumerate(good):
        lines.append(json.dumps(row).encode())
        if i % 6 == 3 and len(bad_at) < len(bad):
            raw, reason = bad[len(bad_at)]
            lines.append(raw)
            bad_at[len(lines)] = reason
    path.write_bytes(b"\n".join(lines) + b"\n")
    return good, bad_at


def test_malformed_corpus_every_row_kept_or_quarantined_with_a_reason(
    ray_cluster, tokenizer, tmp_path
):
    good, bad_at = _malformed_corpus(tmp_path / "bad.jsonl")
    assert len(bad_at) == len(BAD_LINES)
    rejected = tmp_path / "rejected"
    ds = _sharegpt(
        {"source": "json", "data_files": str(tmp_path / "bad.jsonl")},
        tokenizer,
        rejected_path=str(rejected),
        max_rejected_fraction=0.5,
    )
    rows = ds.take_all()
    assert _multiset(rows) == _multiset(_expected(tokenizer, good))  # every good row once
    rejects = read_rejects(str(rejected))
    assert {r["line"]: r["reason"] for r in rejects} == bad_at
    for r in rejects:
        assert r["source"].endswith("bad.jsonl") and r["message"] and r["raw"]
    stats = chat_dataset_info(ds).stats()  # counted by the pass itself, no second pass
    assert stats.complete
    assert stats.rows_read == stats.rows_kept + stats.rows_rejected == len(good) + len(bad_at)
    assert stats.rejected_by_reason == dict(Counter(bad_at.values()))
    assert stats.num_tokens == sum(len(r["tokens"]) for r in rows)


def test_too_many_rejects_stop_the_run_with_a_summary(ray_cluster, tokenizer, tmp_path):
    _malformed_corpus(tmp_path / "bad.jsonl")
    ds = _sharegpt(
        {"source": "json", "data_files": str(tmp_path / "bad.jsonl")},
        tokenizer,
        rejected_path=str(tmp_path / "rej"),
        rejected_check_min_rows=20,
        num_workers=1,
    )
    with pytest.raises(Exception, match=r"rows rejected .*above max_rejected_fraction=0.01"):
        ds.take_all()


def test_a_complete_pass_checks_small_datasets_exactly(ray_cluster, tokenizer, tmp_path):
    """Fewer rows than rejected_check_min_rows: the check waits for the pass to end."""
    _malformed_corpus(tmp_path / "bad.jsonl")
    ds = _sharegpt(
        {"source": "json", "data_files": str(tmp_path / "bad.jsonl")},
        tokenizer,
        rejected_path=str(tmp_path / "rej"),
        max_rejected_fraction=0.05,
    )
    total = len(CONVERSATIONS) + len(BAD_LINES)
    share = 100 * len(BAD_LINES) / total
    with pytest.raises(
        Exception, match=rf"{len(BAD_LINES)} of {total} rows rejected \({share:.2f}%\)"
    ):
        ds.take_all()


def test_wrong_conversation_column_fails_fast_naming_the_columns(tokenizer, tmp_path):
    path = tmp_path / "x.json"
    path.write_text(json.dumps(CONVERSATIONS[:3]))
    with pytest.raises(ValueError, match=r"'conversations' is not a column .*\['dialogue'\]"):
        chat_dataset(
            tokenizer,
            source="json",
            data_files=str(path),
            conversation_column="conversations",
            conversation_style="sharegpt",
        )


def _documents(batch) -> list[tuple[tuple[int, ...], tuple[int, ...]]]:
    docs = []
    for tokens, labels, pos, ids in zip(
        batch["tokens"], batch["labels"], batch["input_pos"], batch["document_ids"], strict=True
    ):
        ids = ids.numpy()
        real = int(ids[-1]) if labels[-1] == -100 and tokens[-1] == 128004 else int(ids[-1]) + 1
        for d in range(int(ids.max()) + 1):
            idx = np.flatnonzero(ids == d)
            assert np.all(np.diff(idx) == 1)
            assert pos[idx].tolist() == list(range(len(idx)))
            assert labels[idx[-1]] == -100  # never predicts across a boundary
            if d < real:
                docs.append((tuple(tokens[idx].tolist()), tuple(labels[idx].tolist())))
    return docs


@pytest.mark.slow
def test_packed_sample_data_is_block_diagonal_and_full(ray_cluster, tokenizer, tmp_path):
    ds = chat_dataset(
        tokenizer,
        source="json",
        data_files=str(SAMPLE),
        conversation_column="dialogue",
        conversation_style="sharegpt",
        packed=True,
        rejected_path=str(tmp_path / "rej"),
    )
    collate = chat_dataset_info(ds).collate_fn()
    assert isinstance(collate, PackedCollateFn)
    docs = []
    for batch in ds.iter_torch_batches(batch_size=8, collate_fn=collate):
        assert batch["tokens"].shape[1] == 2048
        # The block-causal mask from document_ids: attention only inside one conversation.
        ids = batch["document_ids"]
        mask = (ids[:, :, None] == ids[:, None, :]) & np.tril(np.ones((2048, 2048), dtype=bool))
        for b in range(ids.shape[0]):
            rows, cols = np.nonzero(mask[b].numpy())
            assert np.all(ids[b].numpy()[rows] == ids[b].numpy()[cols])
        docs += _documents(batch)
    conversations = json.loads(SAMPLE.read_text())
    assert Counter(docs) == _multiset(_expected(tokenizer, conversations))
    stats = chat_dataset_info(ds).stats()
    assert stats.rows_kept == len(conversations) and stats.packing_fill_ratio >= 0.95
    assert stats.output_rows_exact and stats.output_rows == stats.packed_rows


def test_seeded_shuffle_is_reproducible(ray_cluster, tokenizer, tmp_path):
    src = tmp_path / "chat.json"
    src.write_text(json.dumps(CONVERSATIONS))

    def order(**kwargs):
        ds = _sharegpt({"source": "json", "data_files": str(src)}, tokenizer, **kwargs)
        return [tuple(r["tokens"]) for r in ds.take_all()]

    first = order(shuffle=True, seed=3, batch_size=16)
    again = order(shuffle=True, seed=3, batch_size=16)
    plain = [tuple(r["tokens"]) for r in _expected(tokenizer, CONVERSATIONS)]
    assert first == again and first != plain and sorted(first) == sorted(plain)
    # A local shuffle buffer: rows move only within their window (a batch of about 16).
    moved = [abs(i - first.index(row)) for i, row in enumerate(plain)]
    assert max(moved) < 32 and sum(m > 0 for m in moved) > 30


def test_padded_collate_and_pretokenized_reuse(ray_cluster, tokenizer, tmp_path):
    src = tmp_path / "chat.json"
    src.write_text(json.dumps(CONVERSATIONS))
    out = tmp_path / "tokenized"
    ds = _sharegpt({"source": "json", "data_files": str(src)}, tokenizer, cache_path=str(out))
    collate = chat_dataset_info(ds).collate_fn(pad_to_multiple_of=8)
    assert isinstance(collate, PaddedCollateFn)
    done = ds.materialize()  # one tokenization pass for the rest of the test
    expected = _expected(tokenizer, CONVERSATIONS)
    batch = next(iter(done.iter_torch_batches(batch_size=4, collate_fn=collate)))
    lengths = [r["num_tokens"] for r in expected[:4]]
    assert batch["tokens"].shape == (4, -(-max(lengths) // 8) * 8)
    assert batch["tokens"][0, : lengths[0]].tolist() == expected[0]["tokens"]
    assert batch["tokens"][0, lengths[0] :].eq(128004).all()
    assert batch["labels"][0, lengths[0] - 1 :].eq(-100).all()

    reused = chat_dataset(
        tokenizer,
        source="tokenized",
        data_files=str(out),
        conversation_column="dialogue",
        conversation_style="sharegpt",
    )
    assert _multiset(reused.take_all()) == _multiset(expected)


def test_openai_rows_whose_content_type_changes(ray_cluster, tokenizer, tmp_path):
    rows = [
        {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]},
        {
            "messages": [
                {"role": "user", "content": [{"type": "text", "text": "hi"}]},
                {"role": "assistant", "content": [{"type": "text", "text": "yo"}]},
            ]
        },
        {
            "messages": [
                {"role": "system", "content": "be brief"},
                {"role": "user", "content": "q"},
                {"role": "assistant", "content": "a"},
            ],
            "meta": {"n": 1},
        },
    ]
    path = tmp_path / "o.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    ds = chat_dataset(
        tokenizer,
        source="jsonl",
        data_files=str(path),
        conversation_column="messages",
        conversation_style="openai",
        rejected_path=str(tmp_path / "rej"),
        num_workers=1,
    )
    got = ds.take_all()
    assert _multiset(got) == _multiset(_expected(tokenizer, rows, "messages", "openai"))
    assert list(got[0]["tokens"]) == list(got[1]["tokens"])


def _rows(ds) -> list[tuple]:
    return [tuple(tuple(map(int, r[k])) for k in ("tokens", "labels")) for r in ds.take_all()]


@pytest.mark.slow
def test_the_token_store_gives_back_the_same_rows_in_order_without_tokenizing(
    ray_cluster, tokenizer, tmp_path
):
    """Shuffled files, shuffled batches, packed rows: the store's pass equals the raw pass."""
    for i, part in enumerate([CONVERSATIONS[:25], CONVERSATIONS[25:]]):
        (tmp_path / f"part-{i}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in part))
    kwargs = dict(
        shuffle=True,
        seed=5,
        batch_size=8,
        packed=True,
        packing_window=16,
        cache_path=str(tmp_path / "cache"),
        rejected_path=str(tmp_path / "rej"),
    )
    files = {"source": "json", "data_files": str(tmp_path / "*.jsonl")}
    small = llama3_tokenizer(tokenizer.tt_model.path, max_seq_len=256)
    ds = _sharegpt(files, small, **kwargs)
    info = chat_dataset_info(ds)
    assert not info.reads_store and not info.store.complete()
    first = _rows(ds)
    assert info.store.complete()  # written by the pass itself
    tokenized = info.stats().rows_tokenized
    assert tokenized == len(CONVERSATIONS)
    assert _rows(info.store_dataset()) == first  # same packed rows, same order
    assert info.stats().rows_tokenized == tokenized  # nothing tokenized again
    again = _sharegpt(files, small, **kwargs)
    assert chat_dataset_info(again).reads_store and _rows(again) == first
    # Whatever changes the tokens changes the store's key.
    assert not chat_dataset_info(_sharegpt(files, small, **kwargs, train_on_input=True)).reads_store
    longer = llama3_tokenizer(tokenizer.tt_model.path, max_seq_len=512)
    assert not chat_dataset_info(_sharegpt(files, longer, **kwargs)).reads_store
    (tmp_path / "part-1.jsonl").write_text(json.dumps(CONVERSATIONS[0]) + "\n")
    assert not chat_dataset_info(_sharegpt(files, small, **kwargs)).reads_store
