"""Right (torchtune) and left truncation of (tokens, mask)."""

from __future__ import annotations

import pytest

from raytune_chat.modules.tokenizers import truncate

TOKENS = [1, 10, 11, 12, 13, 2]
MASK = [True, True, False, False, False, True]


def test_right_overwrites_the_last_kept_token():
    assert truncate(TOKENS, MASK, 4, end_token=2, end_masked=True) == (
        [1, 10, 11, 2], [True, True, False, True],
    )  # fmt: skip
    assert truncate(TOKENS, MASK, 4, end_token=None, end_masked=None) == (
        [1, 10, 11, 12], [True, True, False, False],
    )  # fmt: skip


def test_right_forces_the_end_token_even_without_a_cut():
    # torchtune's truncate: the last token becomes eos whenever an end token is given
    assert truncate([1, 10, 11], [True, True, False], 5, end_token=2, end_masked=False) == (
        [1, 10, 2], [True, True, False],
    )  # fmt: skip


def test_left_keeps_the_first_token_and_the_end():
    assert truncate(TOKENS, MASK, 4, end_token=2, end_masked=True, truncation_type="left") == (
        [1, 12, 13, 2], [True, False, False, True],
    )  # fmt: skip
    assert truncate(TOKENS, MASK, 6, end_token=2, end_masked=True, truncation_type="left") == (
        TOKENS, MASK,
    )  # fmt: skip
    assert truncate(TOKENS, MASK, 1, end_token=2, end_masked=True, truncation_type="left") == (
        [1], [True],
    )  # fmt: skip


def test_bad_arguments():
    with pytest.raises(ValueError, match="at least 1"):
        truncate(TOKENS, MASK, 0, end_token=None, end_masked=None)
    with pytest.raises(ValueError, match="'right' or 'left'"):
        truncate(TOKENS, MASK, 3, end_token=None, end_masked=None, truncation_type="middle")
