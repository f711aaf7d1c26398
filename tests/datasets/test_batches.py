"""iter_chat_batches: the same batches as iter_torch_batches, cut locally from big fetches."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
import ray
import torch

from raytune_chat.data import PaddedCollate
from raytune_chat.datasets import chat_dataset, chat_dataset_info, iter_chat_batches
from raytune_chat.datasets._batches import _column_rows
from raytune_chat.models.llama3 import llama3_tokenizer

SAMPLE = Path(__file__).resolve().parents[2] / "raytune_chat" / "_sample_data" / "sample_chat.json"


@pytest.fixture(scope="module")
def tokenized(ray_cluster, bpe_path, tmp_path_factory):
    """60 tokenized sample conversations, materialized once."""
    tmp = tmp_path_factory.mktemp("batches")
    src = tmp / "chat.json"
    src.write_text(json.dumps(json.loads(SAMPLE.read_text())[:60]))
    tokenizer = llama3_tokenizer(str(bpe_path), max_seq_len=2048)
    ds = chat_dataset(
        tokenizer,
        source="json",
        data_files=str(src),
        conversation_column="dialogue",
        conversation_style="sharegpt",
        rejected_path=str(tmp / "rejected"),
        num_workers=1,
    )
    return ds.materialize(), chat_dataset_info(ds).collate_fn(pad_to_multiple_of=8)


def _tensors(batches):
    return [(b["tokens"].tolist(), b["labels"].tolist()) for b in batches]


@pytest.mark.parametrize("drop_last", [False, True])
def test_same_batches_as_iter_torch_batches(tokenized, drop_last):
    ds, collate = tokenized
    # 7 rows per batch, 16 per fetch: batches straddle fetches and the last one is short.
    ours = _tensors(
        iter_chat_batches(
            ds, batch_size=7, collate_fn=collate, drop_last=drop_last, rows_per_fetch=16
        )
    )
    ray_batches = _tensors(
        ds.iter_torch_batches(batch_size=7, collate_fn=collate, drop_last=drop_last)
    )
    assert ours == ray_batches
    assert len(ours) == (8 if drop_last else 9)


def test_seeded_local_shuffle_permutes_within_each_fetch(tokenized):
    ds, _ = tokenized

    def order(**kwargs):
        rows = []
        for batch in iter_chat_batches(
            ds, batch_size=4, collate_fn=lambda b: b["num_tokens"], rows_per_fetch=20, **kwargs
        ):
            rows += batch.tolist()
        return rows

    plain = order()
    first, again = order(shuffle=True, seed=5), order(shuffle=True, seed=5)
    other = order(shuffle=True, seed=6)
    assert first == again and first != plain and first != other
    for start in range(0, 60, 20):
        assert sorted(first[start : start + 20]) == sorted(plain[start : start + 20])


def test_scalar_and_list_columns_reach_the_collate_as_ray_would(ray_cluster):
    ds = ray.data.from_items(
        [{"tokens": np.arange(n, dtype=np.int32), "weight": float(n)} for n in range(1, 6)]
    )
    seen = []

    def collate(batch):
        seen.append(batch)
        return PaddedCollate(pad_id=0)({"tokens": batch["tokens"], "labels": batch["tokens"]})

    out = list(iter_chat_batches(ds, batch_size=2, collate_fn=collate, rows_per_fetch=2))
    assert [b["tokens"].shape for b in out] == [(2, 2), (2, 4), (1, 5)]
    assert out[1]["tokens"].dtype == torch.long
    assert isinstance(seen[0]["weight"], np.ndarray) and seen[0]["weight"].tolist() == [1.0, 2.0]
    assert all(isinstance(row, np.ndarray) for row in seen[0]["tokens"])


def test_column_rows_respects_slices_of_list_arrays():
    array = pa.array([[1, 2], [3], [4, 5, 6], [7]], pa.list_(pa.int32()))
    chunked = pa.chunked_array([array.slice(0, 1), array.slice(2, 2)])
    assert [r.tolist() for r in _column_rows(array.slice(1, 2))] == [[3], [4, 5, 6]]
    assert [r.tolist() for r in _column_rows(chunked)] == [[1, 2], [4, 5, 6], [7]]
    with_null = pa.array([[1], None], pa.list_(pa.int32()))
    assert [None if r is None else list(r) for r in _column_rows(with_null)] == [[1], None]


def test_batch_size_must_be_positive(tokenized):
    ds, collate = tokenized
    with pytest.raises(ValueError, match="batch_size"):
        next(iter_chat_batches(ds, batch_size=0, collate_fn=collate))
