"""The tiktoken BPE base tokenizer: plain-text encoding, long-run cutting, pickling."""

from __future__ import annotations

import pickle
import random

import pytest
import tiktoken
from tiktoken.load import load_tiktoken_bpe

from raytune_chat.modules.tokenizers import BaseTokenizer, TikTokenBaseTokenizer
from raytune_chat.modules.tokenizers._tiktoken import split_long_runs

PATTERN = (
    r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}"""
    r"""| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"""
)
SPECIAL = {"<|bos|>": 100300, "<|eos|>": 100301}


@pytest.fixture(scope="module")
def base(bpe_path):
    return TikTokenBaseTokenizer(
        str(bpe_path), name="t", pattern=PATTERN, bos_id=100300, eos_id=100301,
        special_tokens=SPECIAL,
    )  # fmt: skip


@pytest.fixture(scope="module")
def raw(bpe_path):
    enc = tiktoken.Encoding(
        name="raw", pat_str=PATTERN, mergeable_ranks=load_tiktoken_bpe(str(bpe_path)),
        special_tokens={},
    )  # fmt: skip
    return enc.encode_ordinary


def char_loop_cuts(s, max_run):
    """torchtune's character loop, restated: the reference for the cut points."""
    pieces, run_len, in_space, start = [], 0, s[0].isspace() if s else False, 0
    for i, ch in enumerate(s):
        if ch.isspace() != in_space:
            run_len, in_space = 1, ch.isspace()
        else:
            run_len += 1
            if run_len > max_run:
                pieces.append(s[start:i])
                start, run_len = i, 1
    pieces.append(s[start:])
    return pieces


def test_is_a_base_tokenizer(base):
    assert isinstance(base, BaseTokenizer)
    assert (base.base_vocab_size, base.vocab_size) == (100256, 100302)


def test_encode_is_plain_text(base, raw):
    text = "Hi <|bos|> there<|eos|>"
    assert base.encode(text) == [100300, *raw(text), 100301]
    assert 100300 not in base.encode(text, add_bos=False, add_eos=False)
    assert base.decode([100300, *raw("x"), 100301, *raw("y")]) == "<|bos|>x"
    assert base.decode([*raw("x"), 100301, *raw("y")], truncate_at_eos=False) == "x<|eos|>y"


@pytest.mark.parametrize("seed", range(6))
def test_cut_points_match_torchtune(seed):
    rng = random.Random(seed)
    text = "".join(
        rng.choice(["a", "b", " ", "\n", "\u3000", "é"]) * rng.randint(1, 9) for _ in range(300)
    )
    for max_run in (1, 2, 3, 7, 50):
        assert split_long_runs(text, max_run) == char_loop_cuts(text, max_run)
    assert split_long_runs("", 3) == char_loop_cuts("", 3) == [""]


def test_long_runs_change_nothing_below_the_limit(base, raw):
    text = ("word " * 9_000) + ("x" * 24_999) + "\n" * 3
    assert len(text) > 25_000
    assert base.encode(text, add_bos=False, add_eos=False) == raw(text)


def test_pickle_carries_the_file_and_reuses_the_encoding(base):
    blob = pickle.dumps(base)
    assert len(blob) > 1_000_000  # the BPE file travels with it
    clone = pickle.loads(blob)
    assert clone._encoding is base._encoding  # same process: no second parse
    assert clone.encode("hello") == base.encode("hello")
