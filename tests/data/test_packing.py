"""Best-fit packing: conversations never split, positions restart, boundaries carried."""

from __future__ import annotations

import numpy as np
import pytest

from raytune_chat.data._packing import best_fit_bins, pack_window


def _conversations(rng: np.random.Generator, n: int, max_len: int):
    tokens, labels = [], []
    for _ in range(n):
        length = int(rng.integers(2, max_len + 1))
        tok = rng.integers(1000, 2000, size=length).astype(np.int32)
        lab = np.append(tok[1:], -100).astype(np.int32)
        lab[: length // 3] = -100  # a masked prompt
        tokens.append(tok)
        labels.append(lab)
    return tokens, labels


def test_best_fit_bins_never_overflow_and_use_every_item_once():
    rng = np.random.default_rng(0)
    lengths = rng.integers(1, 100, size=500).tolist()
    bins = best_fit_bins(lengths, capacity=128)
    assert sorted(i for b in bins for i in b) == list(range(500))
    assert all(sum(lengths[i] for i in b) <= 128 for b in bins)
    # Best-fit decreasing is within 11/9 OPT + 1; the volume bound gives OPT >= total / cap.
    assert len(bins) <= 11 / 9 * (sum(lengths) / 128) + 2


def test_best_fit_picks_the_tightest_bin():
    # 6 opens bin A (free 4), 5 opens bin B (free 5); 4 must go to A (exact fit), 5 then to B.
    assert best_fit_bins([6, 5, 4, 5], capacity=10) == [[0, 2], [1, 3]]


def test_packed_rows_rebuild_each_conversation_exactly():
    rng = np.random.default_rng(1)
    tokens, labels = _conversations(rng, 200, 60)
    out = pack_window(tokens, labels, max_seq_len=128, pad_id=7)
    seen = []
    for r in range(out.tokens.shape[0]):
        docs = out.document_ids[r]
        n_conv = int(out.num_conversations[r])
        for d in range(n_conv):
            idx = np.flatnonzero(docs == d)
            assert np.all(np.diff(idx) == 1), "a conversation must be contiguous"
            assert out.input_pos[r, idx].tolist() == list(range(len(idx)))
            seen.append((tuple(out.tokens[r, idx]), tuple(out.labels[r, idx])))
        pad = np.flatnonzero(docs == n_conv)
        assert np.all(out.tokens[r, pad] == 7) and np.all(out.labels[r, pad] == -100)
        assert out.num_tokens[r] == 128 - len(pad)
        assert docs.tolist() == sorted(docs.tolist())
    expected = sorted((tuple(t), tuple(lab)) for t, lab in zip(tokens, labels, strict=True))
    assert sorted(seen) == expected
    assert out.num_trained_tokens.sum() == sum(int((lab != -100).sum()) for lab in labels)


def test_last_label_of_each_conversation_never_targets_the_next_one():
    tokens = [np.array([1, 2, 3]), np.array([4, 5, 6, 7])]
    labels = [np.array([2, 3, -100]), np.array([5, 6, 7, -100])]
    out = pack_window(tokens, labels, max_seq_len=8, pad_id=0)
    row_labels, docs = out.labels[0], out.document_ids[0]
    boundaries = np.flatnonzero(np.diff(docs))  # last position of each document
    assert np.all(row_labels[boundaries] == -100)


def test_too_long_conversation_is_truncated_not_split():
    tok = np.arange(10, 30, dtype=np.int32)
    lab = np.append(tok[1:], -100)
    out = pack_window([tok], [lab], max_seq_len=8, pad_id=0, truncated=[False])
    assert out.tokens.shape == (1, 8)
    assert out.tokens[0].tolist() == list(range(10, 18))
    assert out.labels[0].tolist() == list(range(11, 18)) + [-100]
    assert out.num_truncated.tolist() == [1]


def test_mismatched_lengths_raise():
    with pytest.raises(ValueError, match="2 tokens but 3 labels"):
        pack_window([np.array([1, 2])], [np.array([1, 2, 3])], max_seq_len=4, pad_id=0)
