"""SentencePiece base tokenizer (Llama2 / Mistral ``tokenizer.model``)."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Sequence
from typing import Any

from sentencepiece import SentencePieceProcessor

from raytune_chat.modules.tokenizers._tiktoken import read_bytes

WHITESPACE_CHARS = (" ", "\n", "\t", "\r", "\v")

_PROCESSORS: dict[str, SentencePieceProcessor] = {}
_LOCK = threading.Lock()


class SentencePieceBaseTokenizer:
    """A ``SentencePieceProcessor`` that can encode a piece as a continuation.

    SentencePiece puts its word-start marker ``▁`` at the start of every encoded string, so
    ``encode(a) + encode(b) != encode(a + b)``. With ``trim_leading_whitespace=True`` (and a
    model that encodes whitespace) the text is encoded as ``prefix + text`` and the prefix's
    tokens are dropped, torchtune's trick.

    The model file is read once; pickling carries its bytes and unpickling reuses the
    process's cached processor when there is one.

    Args:
        path: ``tokenizer.model`` path (local or fsspec URL).

    Example:
        >>> import tempfile, sentencepiece as spm
        >>> prefix = tempfile.mkdtemp() + "/tokenizer"  # a tiny model, trained from a line of text
        >>> spm.SentencePieceTrainer.train(sentence_iterator=iter(["Hi there, hello world!"] * 20),
        ...     model_prefix=prefix, vocab_size=300, byte_fallback=True, hard_vocab_limit=False,
        ...     minloglevel=2)
        >>> sp = SentencePieceBaseTokenizer(prefix + ".model")
        >>> ids = sp.encode("hello world")
        >>> ids[0], ids[-1], sp.decode(ids)
        (1, 2, 'hello world')
    """

    def __init__(self, path: str, *, _model_bytes: bytes | None = None) -> None:
        self.path = str(path)
        self._model_bytes = read_bytes(self.path) if _model_bytes is None else _model_bytes
        self._setup()

    def _setup(self) -> None:
        digest = hashlib.sha256(self._model_bytes).hexdigest()
        with _LOCK:
            spm = _PROCESSORS.get(digest)
            if spm is None:
                spm = SentencePieceProcessor(model_proto=self._model_bytes)
                _PROCESSORS[digest] = spm
        self.spm_model = spm
        self.vocab_size = spm.vocab_size()
        self.bos_id = spm.bos_id()
        self.eos_id = spm.eos_id()
        self.pad_id = spm.pad_id()
        self.encodes_whitespace = any(spm.encode(c) for c in WHITESPACE_CHARS)
        self._prefix = "\n"
        self._prefix_len = len(spm.encode(self._prefix))

    def __getstate__(self) -> dict[str, Any]:
        return {"path": self.path, "_model_bytes": self._model_bytes}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._setup()

    def encode(
        self,
        text: str,
        add_bos: bool = True,
        add_eos: bool = True,
        trim_leading_whitespace: bool = False,
    ) -> list[int]:
        """Encode text; ``trim_leading_whitespace`` encodes it as a continuation."""
        if trim_leading_whitespace and self.encodes_whitespace:
            ids = self.spm_model.encode(
                self._prefix + text, add_bos=add_bos, add_eos=add_eos, out_type=int
            )
            return ids[self._prefix_len + int(add_bos) :]
        return self.spm_model.encode(text, add_bos=add_bos, add_eos=add_eos, out_type=int)

    def decode(self, token_ids: Sequence[int]) -> str:
        """Decode ids to text (bos/eos are dropped by SentencePiece)."""
        return self.spm_model.decode(list(token_ids))
