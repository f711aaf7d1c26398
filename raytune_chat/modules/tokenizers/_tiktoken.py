"""tiktoken BPE base tokenizer: a BPE file (e.g. Llama3's ``tokenizer.model``) + special ids."""

from __future__ import annotations

import base64
import hashlib
import re
import threading
from collections.abc import Mapping, Sequence
from typing import Any

from tiktoken import Encoding

# Runs of more than 25k characters without whitespace (or of only whitespace) are cut every
# 25k characters, where torchtune cuts them, so pathological inputs stay fast
# (openai/tiktoken#195). Deliberate difference: torchtune also cuts every 400k characters,
# which can split a word and change its ids; we do not, so the ids of any text without
# such runs are exactly those of one plain encode call.
MAX_NO_WHITESPACE_CHARS = 25_000

_RUNS = re.compile(r"\s+|\S+")

# One Encoding per (BPE file contents, pattern, special tokens) per process: unpickling a
# tokenizer in a worker that already has one does not parse the file again.
# (digest, pattern, special tokens) -> (encoding, number of mergeable ranks)
_ENCODINGS: dict[tuple[str, str, tuple[tuple[str, int], ...]], tuple[Encoding, int]] = {}
_LOCK = threading.Lock()


def read_bytes(path: str) -> bytes:
    """Read a local file, or a remote one (``s3://...``) through fsspec."""
    if "://" in path:
        import fsspec

        with fsspec.open(path, "rb") as f:
            return f.read()
    with open(path, "rb") as f:
        return f.read()


def _parse_ranks(data: bytes) -> dict[bytes, int]:
    ranks = {}
    for line in data.splitlines():
        if line:
            token, rank = line.split()
            ranks[base64.b64decode(token)] = int(rank)
    return ranks


def split_long_runs(text: str, max_run: int = MAX_NO_WHITESPACE_CHARS) -> list[str]:
    """Cut ``text`` so no piece holds more than ``max_run`` consecutive (non-)whitespace.

    A run starting at ``p`` is cut at ``p + max_run``, ``p + 2 * max_run``, ... exactly where
    torchtune's character loop cuts it.

    Example:
        >>> split_long_runs("aaaaa bb", max_run=2)
        ['aa', 'aa', 'a bb']
    """
    pieces, start = [], 0
    for match in _RUNS.finditer(text):
        run_start, run_end = match.span()
        cut = run_start + max_run
        while cut < run_end:
            pieces.append(text[start:cut])
            start = cut
            cut += max_run
    pieces.append(text[start:])
    return pieces


class PlainTextEncoder:
    """``encode`` on top of a backend's ``encode_text``: bos/eos flags, empty text.

    The BPE backends (tiktoken, ``tokenizer.json``) share it; each has its own
    ``encode_text`` (the hot path) and ``decode``.
    """

    bos_id: int
    eos_id: int

    def encode_text(self, text: str) -> list[int]:
        raise NotImplementedError

    def encode(self, text: str, add_bos: bool = True, add_eos: bool = True) -> list[int]:
        """Encode text as plain text (special-token strings stay text).

        Like torchtune, empty text gives ``[]`` (no bos/eos).
        """
        if not text:
            return []
        tokens = self.encode_text(text)
        if add_bos:
            tokens.insert(0, self.bos_id)
        if add_eos:
            tokens.append(self.eos_id)
        return tokens

    def _ids_before_eos(self, token_ids: Sequence[int], truncate_at_eos: bool) -> list[int]:
        ids = list(token_ids)
        if truncate_at_eos and self.eos_id in ids:
            ids = ids[: ids.index(self.eos_id)]
        return ids


class TikTokenBaseTokenizer(PlainTextEncoder):
    """A tiktoken ``Encoding`` built from a BPE rank file, with chunked encoding.

    Special tokens are registered so they decode, but text is always encoded as plain text:
    ``"<|eot_id|>"`` typed in a message becomes ordinary tokens, never the special id.

    The file is read once; pickling carries its bytes (so a worker needs no access to the
    path) and unpickling reuses the process's cached ``Encoding`` when there is one.

    Args:
        path: BPE file (``tokenizer.model`` of Llama3, or a ``.tiktoken`` file); local or
            an fsspec URL.
        name: name given to the tiktoken ``Encoding``.
        pattern: pre-tokenizer regex.
        bos_id: beginning-of-sequence id.
        eos_id: end-of-sequence id.
        special_tokens: special token string → id.

    Example:
        >>> from raytune_chat.config import asset_path
        >>> from raytune_chat.models.llama3._tokenizer import CL100K_PATTERN
        >>> tt = TikTokenBaseTokenizer(str(asset_path("cl100k_base")), name="cl100k",
        ...     pattern=CL100K_PATTERN, bos_id=128000, eos_id=128001,
        ...     special_tokens={"<|begin_of_text|>": 128000, "<|end_of_text|>": 128001})
        >>> tt.encode("Hello world", add_bos=True, add_eos=True)
        [128000, 9906, 1917, 128001]
    """

    def __init__(
        self,
        path: str,
        name: str,
        pattern: str,
        bos_id: int,
        eos_id: int,
        special_tokens: Mapping[str, int],
        *,
        _bpe_bytes: bytes | None = None,
    ) -> None:
        self.path = str(path)
        self.name = name
        self.pattern = pattern
        self.bos_id = bos_id
        self.eos_id = eos_id
        self.special_tokens = dict(special_tokens)
        self._bpe_bytes = read_bytes(self.path) if _bpe_bytes is None else _bpe_bytes
        self._encoding, self.base_vocab_size = self._get_encoding()
        self.vocab_size = self._encoding.n_vocab

    def _get_encoding(self) -> tuple[Encoding, int]:
        """The (cached) encoding and its number of BPE ranks (tiktoken does not expose it)."""
        digest = hashlib.sha256(self._bpe_bytes).hexdigest()
        key = (digest, self.pattern, tuple(sorted(self.special_tokens.items())))
        with _LOCK:
            cached = _ENCODINGS.get(key)
            if cached is None:
                ranks = _parse_ranks(self._bpe_bytes)
                encoding = Encoding(
                    name=self.name,
                    pat_str=self.pattern,
                    mergeable_ranks=ranks,
                    special_tokens=self.special_tokens,
                )
                cached = _ENCODINGS[key] = (encoding, len(ranks))
        return cached

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        del state["_encoding"]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._encoding, _ = self._get_encoding()

    def encode_text(self, text: str) -> list[int]:
        """``encode(text, add_bos=False, add_eos=False)`` without the flag handling (hot path).

        Example:
            >>> from raytune_chat.config import asset_path
            >>> from raytune_chat.models.llama3 import llama3_tokenizer
            >>> llama3_tokenizer(str(asset_path("cl100k_base"))).tt_model.encode_text("Hello world")
            [9906, 1917]
        """
        if len(text) <= MAX_NO_WHITESPACE_CHARS:
            return self._encoding.encode_ordinary(text)
        tokens: list[int] = []
        for piece in split_long_runs(text):
            tokens.extend(self._encoding.encode_ordinary(piece))
        return tokens

    def decode(self, token_ids: Sequence[int], truncate_at_eos: bool = True) -> str:
        """Decode ids (special ids decode to their strings); optionally stop at the first eos."""
        return self._encoding.decode(self._ids_before_eos(token_ids, truncate_at_eos))
