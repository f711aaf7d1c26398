"""Hugging Face ``tokenizer.json`` base tokenizer, giving the ids of the tiktoken path.

A BPE ``tokenizer.json`` (e.g. ``meta-llama/Llama-3.1-8B-Instruct``'s) is run by the Rust
``tokenizers`` library, imported only when such a file is used. Three settings of the file
are changed when it is loaded, so that ids equal those of Meta's ``tokenizer.model`` read by
tiktoken (spec §2):

- ``added_tokens`` are removed: the library would otherwise turn ``"<|eot_id|>"`` typed in
  a message into the special id, and data could forge turn boundaries. Special ids come
  only from the chat layout, exactly as with tiktoken.
- ``post_processor`` is removed: bos/eos are added by the chat layout, not per encode.
- the BPE model's ``ignore_merges`` is set: a pre-token that is itself in the vocabulary is
  one id, as tiktoken does, even where applying the merges one by one would split it.

Long texts are cut where the tiktoken path cuts them (`split_long_runs`), so the ids match
there too.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Mapping, Sequence
from typing import Any

from raytune_chat.modules.tokenizers._tiktoken import (
    MAX_NO_WHITESPACE_CHARS,
    PlainTextEncoder,
    TikTokenBaseTokenizer,
    read_bytes,
    split_long_runs,
)

__all__ = ["HuggingFaceBaseTokenizer", "bpe_base_tokenizer", "is_tokenizer_json"]

# One Tokenizer per file contents per process (unpickling in a worker reuses it).
_TOKENIZERS: dict[str, Any] = {}
_LOCK = threading.Lock()


def is_tokenizer_json(path: str, data: bytes) -> bool:
    """Whether a tokenizer file is a Hugging Face ``tokenizer.json``: by name, else by content.

    A tiktoken BPE file is lines of ``base64 rank``; a ``tokenizer.json`` is a JSON object.

    Example:
        >>> is_tokenizer_json("tok/tokenizer.json", b""), is_tokenizer_json("x.model", b' {"a"')
        (True, True)
        >>> is_tokenizer_json("tokenizer.model", b"IQ== 0")
        False
    """
    return str(path).endswith(".json") or data.lstrip()[:1] == b"{"


def _plain_text_tokenizer(data: bytes) -> Any:
    from tokenizers import Tokenizer

    spec = json.loads(data)
    spec["added_tokens"] = []
    spec["post_processor"] = None
    spec["truncation"] = None
    spec["padding"] = None
    if spec.get("model", {}).get("type") == "BPE":
        spec["model"]["ignore_merges"] = True
    return Tokenizer.from_str(json.dumps(spec))


class HuggingFaceBaseTokenizer(PlainTextEncoder):
    """A ``tokenizer.json`` that encodes every text as plain text, with chunked encoding.

    Same interface as `TikTokenBaseTokenizer` (``encode`` from `PlainTextEncoder`,
    ``encode_text``, ``decode``, ``base_vocab_size``, ``vocab_size``). Special ids decode to
    their strings from ``special_tokens``; they are never produced from text.

    The file is read once; pickling carries its bytes, so a Ray worker needs no access to it.

    Args:
        path: the ``tokenizer.json``; local or an fsspec URL.
        bos_id: beginning-of-sequence id.
        eos_id: end-of-sequence id.
        special_tokens: special token string → id.

    Example:
        >>> import os, tempfile
        >>> from tokenizers import Tokenizer, models
        >>> vocab = {"h": 0, "i": 1, "hi": 2, "<": 3, "/": 4, "s": 5, ">": 6}
        >>> t = Tokenizer(models.BPE(vocab, [("h", "i")]))
        >>> t.add_special_tokens(["</s>"])
        1
        >>> path = os.path.join(tempfile.mkdtemp(), "tokenizer.json")
        >>> t.save(path)
        >>> t.encode("hi</s>").ids  # the library's default: typed "</s>" becomes the special id
        [2, 7]
        >>> hf = HuggingFaceBaseTokenizer(path, bos_id=7, eos_id=7, special_tokens={"</s>": 7})
        >>> hf.encode_text("hi</s>")
        [2, 3, 4, 5, 6]
    """

    def __init__(
        self,
        path: str,
        *,
        bos_id: int,
        eos_id: int,
        special_tokens: Mapping[str, int],
        _json_bytes: bytes | None = None,
    ) -> None:
        self.path = str(path)
        self.bos_id = bos_id
        self.eos_id = eos_id
        self.special_tokens = dict(special_tokens)
        self._json_bytes = read_bytes(self.path) if _json_bytes is None else _json_bytes
        self._setup()

    def _setup(self) -> None:
        digest = hashlib.sha256(self._json_bytes).hexdigest()
        with _LOCK:
            tokenizer = _TOKENIZERS.get(digest)
            if tokenizer is None:
                tokenizer = _plain_text_tokenizer(self._json_bytes)
                _TOKENIZERS[digest] = tokenizer
        self._tokenizer = tokenizer
        self._special_by_id = {i: s for s, i in self.special_tokens.items()}
        self.base_vocab_size = tokenizer.get_vocab_size(with_added_tokens=False)
        self.vocab_size = max(self.base_vocab_size, max(self._special_by_id, default=-1) + 1)

    def __getstate__(self) -> dict[str, Any]:
        return {
            name: value
            for name, value in self.__dict__.items()
            if name not in ("_tokenizer", "_special_by_id")
        }

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._setup()

    def encode_text(self, text: str) -> list[int]:
        """``encode(text, add_bos=False, add_eos=False)`` without the flag handling."""
        encode = self._tokenizer.encode
        if len(text) <= MAX_NO_WHITESPACE_CHARS:
            return encode(text, add_special_tokens=False).ids
        tokens: list[int] = []
        for piece in split_long_runs(text):
            tokens.extend(encode(piece, add_special_tokens=False).ids)
        return tokens

    def decode(self, token_ids: Sequence[int], truncate_at_eos: bool = True) -> str:
        """Decode ids (special ids decode to their strings); optionally stop at the first eos."""
        out: list[str] = []
        run: list[int] = []
        for token in self._ids_before_eos(token_ids, truncate_at_eos):
            special = self._special_by_id.get(token)
            if special is None:
                run.append(token)
                continue
            if run:
                out.append(self._tokenizer.decode(run, skip_special_tokens=False))
                run = []
            out.append(special)
        if run:
            out.append(self._tokenizer.decode(run, skip_special_tokens=False))
        return "".join(out)


def bpe_base_tokenizer(
    path: str,
    *,
    name: str,
    pattern: str,
    bos_id: int,
    eos_id: int,
    special_tokens: Mapping[str, int],
) -> TikTokenBaseTokenizer | HuggingFaceBaseTokenizer:
    """The base tokenizer of a BPE file: tiktoken for a rank file, ``tokenizers`` for JSON.

    The file is read once. ``name`` and ``pattern`` (the pre-tokenizer regex) apply to a
    tiktoken file; a ``tokenizer.json`` carries its own pre-tokenizer.
    """
    data = read_bytes(str(path))
    if is_tokenizer_json(str(path), data):
        return HuggingFaceBaseTokenizer(
            path, bos_id=bos_id, eos_id=eos_id, special_tokens=special_tokens, _json_bytes=data
        )
    return TikTokenBaseTokenizer(
        path,
        name=name,
        pattern=pattern,
        bos_id=bos_id,
        eos_id=eos_id,
        special_tokens=special_tokens,
        _bpe_bytes=data,
    )
