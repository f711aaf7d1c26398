"""Collate classes: numpy Ray batches -> padded or packed torch tensors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from raytune_chat.data._collate import (
    PackedCollate,
    PaddedCollate,
    padded_collate_packed,
    padded_collate_sft,
)
from raytune_chat.data._packing import pack_window


def _ragged(*rows):
    out = np.empty(len(rows), dtype=object)
    out[:] = [np.asarray(r, dtype=np.int32) for r in rows]
    return out


def test_padded_collate_pads_tokens_with_pad_id_and_labels_with_ignore():
    batch = {"tokens": _ragged([1, 2, 3], [4]), "labels": _ragged([2, 3, -100], [-100])}
    out = PaddedCollate(pad_id=128004)(batch)
    assert out["tokens"].dtype == torch.long and out["labels"].dtype == torch.long
    assert out["tokens"].tolist() == [[1, 2, 3], [4, 128004, 128004]]
    assert out["labels"].tolist() == [[2, 3, -100], [-100, -100, -100]]


@pytest.mark.parametrize(
    ("multiple", "length", "width"), [(8, None, 8), (None, 16, 16), (2, None, 4)]
)
def test_padded_collate_rounds_or_fixes_the_length(multiple, length, width):
    batch = {"tokens": _ragged([1, 2, 3], [4]), "labels": _ragged([2, 3, -100], [-100])}
    out = PaddedCollate(pad_id=0, pad_to_multiple_of=multiple, length=length)(batch)
    assert out["tokens"].shape == (2, width)
    assert (out["labels"][:, 3:] == -100).all()


def test_padded_collate_rejects_rows_longer_than_the_fixed_length():
    with pytest.raises(ValueError, match="fixed length 2"):
        PaddedCollate(pad_id=0, length=2)(
            {"tokens": _ragged([1, 2, 3]), "labels": _ragged([1, 2, 3])}
        )


def test_packed_collate_keeps_positions_and_document_ids():
    packed = pack_window(
        [np.array([5, 6, 7]), np.array([8, 9])],
        [np.array([6, 7, -100]), np.array([9, -100])],
        max_seq_len=7,
        pad_id=0,
    )
    out = PackedCollate()(packed.as_dict())
    assert out["tokens"].tolist() == [[5, 6, 7, 8, 9, 0, 0]]
    assert out["input_pos"].tolist() == [[0, 1, 2, 0, 1, 0, 1]]
    assert out["document_ids"].tolist() == [[0, 0, 0, 1, 1, 2, 2]]
    assert out["document_ids"].dtype == torch.int32 and out["input_pos"].dtype == torch.long


def test_torchtune_named_functions_match_the_classes():
    samples = [{"tokens": [1, 2], "labels": [2, -100]}, {"tokens": [3], "labels": [-100]}]
    out = padded_collate_sft(samples, padding_idx=9, pad_to_multiple_of=4)
    assert out["tokens"].tolist() == [[1, 2, 9, 9], [3, 9, 9, 9]]
    packed = {"tokens": [1, 0], "labels": [-100, -100], "input_pos": [0, 0], "document_ids": [0, 1]}
    assert padded_collate_packed([packed])["document_ids"].tolist() == [[0, 1]]
