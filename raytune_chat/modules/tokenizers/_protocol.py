"""The two small interfaces every tokenizer follows.

A *base* tokenizer turns text into ids and back (tiktoken BPE, SentencePiece). A *model*
tokenizer sits on top and lays out a whole conversation in a model family's chat format.
Chat code depends only on these protocols, never on a backend's name.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, NamedTuple, Protocol, runtime_checkable

if TYPE_CHECKING:
    from raytune_chat.data import Message


class TokenizedMessages(NamedTuple):
    """A tokenized conversation: ids, loss mask (``True`` = masked), and whether it was cut."""

    tokens: list[int]
    mask: list[bool]
    truncated: bool


@runtime_checkable
class BaseTokenizer(Protocol):
    """Text ↔ ids."""

    bos_id: int
    eos_id: int
    vocab_size: int

    def encode(self, text: str, add_bos: bool = True, add_eos: bool = True) -> list[int]: ...

    def decode(self, token_ids: Sequence[int]) -> str: ...


@runtime_checkable
class ModelTokenizer(Protocol):
    """Conversation → (tokens, mask) in one chat format."""

    special_tokens: Mapping[str, int]
    max_seq_len: int | None
    bos_id: int
    eos_id: int
    pad_id: int
    vocab_size: int

    def tokenize_messages(
        self, messages: list[Message], add_end_tokens: bool = True
    ) -> tuple[list[int], list[bool]]: ...
