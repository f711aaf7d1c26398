"""What every chat tokenizer shares: the (tokens, mask) view and torchtune's transform form."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from raytune_chat.modules.tokenizers._protocol import TokenizedMessages

if TYPE_CHECKING:
    from raytune_chat.data import Message


class ChatTokenizer:
    """Base of the model tokenizers; subclasses implement `tokenize_messages_with_info`."""

    # Whether the chat format renders tool schemas / reasoning traces (spec §5); rows that
    # need them are rejected as not_supported_by_tokenizer otherwise.
    supports_tools = False
    supports_reasoning = False

    def tokenize_messages_with_info(
        self, messages: Sequence[Message], add_end_tokens: bool = True, **kwargs: Any
    ) -> TokenizedMessages:
        """Tokenize a conversation; also say whether it was cut to ``max_seq_len``."""
        raise NotImplementedError

    def tokenize_messages(
        self, messages: Sequence[Message], add_end_tokens: bool = True, **kwargs: Any
    ) -> tuple[list[int], list[bool]]:
        """Tokenize a conversation into ``(tokens, mask)``; mask ``True`` = not trained on.

        ``add_end_tokens=False`` gives a generation prompt (no final end tokens).
        """
        tokens, mask, _ = self.tokenize_messages_with_info(messages, add_end_tokens, **kwargs)
        return tokens, mask

    def __call__(self, sample: Mapping[str, Any], inference: bool = False) -> dict[str, Any]:
        """torchtune transform form: ``{"messages": [...]}`` → adds ``tokens`` and ``mask``."""
        sample = dict(sample)
        messages = sample.pop("messages")
        sample["tokens"], sample["mask"] = self.tokenize_messages(
            messages, add_end_tokens=not inference
        )
        return sample
