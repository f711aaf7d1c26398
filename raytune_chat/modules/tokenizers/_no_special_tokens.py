"""Chat layout for tokenizers without chat special tokens (Llama2, Mistral).

A turn ends at each assistant message: each turn starts with bos and each assistant message
is followed by eos. Everything else (``[INST]`` …) is template text, encoded piece by piece
so that ``encode(a) + encode(b) == encode(a + b)`` (torchtune's
``tokenize_messages_no_special_tokens``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol

from raytune_chat.modules.tokenizers._protocol import TokenizedMessages
from raytune_chat.modules.tokenizers._truncation import TruncationType, truncate

if TYPE_CHECKING:
    from raytune_chat.data import Message


class _ContinuationEncoder(Protocol):
    def encode(
        self, text: str, add_bos: bool, add_eos: bool, trim_leading_whitespace: bool
    ) -> list[int]: ...


def tokenize_messages_no_special_tokens(
    encoder: _ContinuationEncoder,
    messages: Sequence[Message],
    *,
    bos_id: int | None,
    eos_id: int | None,
    max_seq_len: int | None = None,
    truncation_type: TruncationType = "right",
) -> TokenizedMessages:
    """Tokenize templated messages one text part at a time and concatenate.

    - bos starts each turn (mask: that turn's first message); eos follows each assistant
      message (mask: the assistant's flag).
    - Every text part has its trailing spaces removed before encoding; a message that
      continues a turn is encoded as a continuation (no new ``▁``) unless the previous
      message ended with a space.
    - ``max_seq_len``: stop once reached; right truncation forces eos last with the last
      tokenized message's mask (torchtune 0.6.1).

    Returns:
        `TokenizedMessages` (tokens, mask, truncated).
    """
    start_of_turn = True
    prev_ends_with_space = False
    tokens: list[int] = []
    mask: list[bool] = []
    stopped_early = False
    message = None
    for i, message in enumerate(messages):
        if start_of_turn and bos_id is not None:
            tokens.append(bos_id)
            mask.append(message.masked)
        trim = (not start_of_turn) and not prev_ends_with_space
        body: list[int] = []
        for part in message.content:
            body += encoder.encode(
                part["content"].rstrip(" "),
                add_bos=False,
                add_eos=False,
                trim_leading_whitespace=trim,
            )
        if message.content:
            prev_ends_with_space = message.content[-1]["content"].endswith(" ")
        tokens += body
        mask += [message.masked] * len(body)
        start_of_turn = message.role == "assistant"
        if start_of_turn and eos_id is not None:
            tokens.append(eos_id)
            mask.append(message.masked)
        if max_seq_len is not None and truncation_type == "right" and len(tokens) >= max_seq_len:
            stopped_early = i < len(messages) - 1
            break
    if max_seq_len is None:
        return TokenizedMessages(tokens, mask, False)
    truncated = stopped_early or len(tokens) > max_seq_len
    end_masked = message.masked if (eos_id is not None and message is not None) else None
    tokens, mask = truncate(
        tokens,
        mask,
        max_seq_len,
        end_token=eos_id,
        end_masked=end_masked,
        truncation_type=truncation_type,
    )
    return TokenizedMessages(tokens, mask, truncated)
