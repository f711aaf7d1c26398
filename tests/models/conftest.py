"""Fixtures of the Llama3 tokenizer tests: every test runs on three real tokenizer files.

cl100k (the real-sized stand-in), Meta's Llama 3 `tokenizer.model` (tiktoken backend) and
Meta's `tokenizer.json` (`tokenizers` backend). Expected ids always come from raw tiktoken
calls on the rank file, so the `tokenizer.json` run checks that both backends agree.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import pytest
import tiktoken
from tiktoken.load import load_tiktoken_bpe

from tests.assets.build_assets import cl100k_bpe_path, meta_llama3_tokenizer_path

CL100K = (
    r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}"""
    r"""| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"""
)


class TokenizerFile(NamedTuple):
    name: str
    path: Path  # what the tokenizer under test is built from
    ranks: Path  # the tiktoken BPE file the expected ids come from
    base_vocab_size: int


@pytest.fixture(scope="module", params=["cl100k", "meta_model", "meta_json"])
def tokenizer_file(request) -> TokenizerFile:
    if request.param == "cl100k":
        return TokenizerFile("cl100k", cl100k_bpe_path(), cl100k_bpe_path(), 100256)
    model = meta_llama3_tokenizer_path("tokenizer.model")
    path = meta_llama3_tokenizer_path("tokenizer.json") if request.param == "meta_json" else model
    return TokenizerFile(request.param, path, model, 128000)


@pytest.fixture(scope="module")
def raw(tokenizer_file):
    """The raw tiktoken encoder: plain text only, no special tokens at all."""
    enc = tiktoken.Encoding(
        name="raw", pat_str=CL100K, mergeable_ranks=load_tiktoken_bpe(str(tokenizer_file.ranks)),
        special_tokens={},
    )  # fmt: skip
    return enc.encode_ordinary
