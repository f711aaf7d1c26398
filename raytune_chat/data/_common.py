"""Constants and the row-rejection error shared by the data stages."""

from __future__ import annotations

from enum import Enum

CROSS_ENTROPY_IGNORE_IDX = -100
"""Label value that the loss ignores (masked positions and padding)."""

REJECT_REASONS = (
    "missing_column",
    "not_a_list",
    "bad_message",
    "unknown_role",
    "null_content",
    "non_string_content",
    "too_few_messages",
    "bad_turn_order",
    "system_not_first",
    "system_not_supported",
    "multiple_tool_calls",
    "bad_tool_call",
    "bad_tools",
    "tools_without_user_message",
    "not_supported_by_tokenizer",
    "too_long",
    "no_trained_tokens",
)
"""Stable reason codes raised by the message layer (the pipeline adds its own)."""

DROPPED_KINDS = ("reasoning", "call_text", "messages")
"""What a kept row may lose on purpose, counted per row and in the stats:

- ``reasoning``: assistant messages whose reasoning trace was left out (``reasoning="drop"``);
- ``call_text``: tool-call messages whose text beside the call was not rendered (as in
  Meta's Llama 3.1 template);
- ``messages``: messages cut by ``truncation="history"``.
"""


class MaskingStrategy(str, Enum):
    """Which messages are trained on (not masked).

    - ``train_on_assistant``: only assistant messages (the default, ``train_on_input=False``).
    - ``train_on_all``: every message (``train_on_input=True``).
    - ``train_on_last``: only the last assistant message of the conversation.
    """

    TRAIN_ON_ASSISTANT = "train_on_assistant"
    TRAIN_ON_ALL = "train_on_all"
    TRAIN_ON_LAST = "train_on_last"


class RowRejected(ValueError):
    """A raw row that cannot become a training sample.

    Attributes:
        reason: short stable code for statistics and quarantine, e.g. ``"null_content"``.
        index: index of the offending message in the conversation, or ``None``.

    ``str(exc)`` is a human sentence naming the message index and the rule broken.

    Example:
        >>> err = RowRejected("null_content", "message 1 has null content", index=1)
        >>> (err.reason, err.index, str(err))
        ('null_content', 1, 'message 1 has null content')
    """

    def __init__(self, reason: str, message: str, *, index: int | None = None) -> None:
        super().__init__(message)
        self.reason = reason
        self.index = index

    def __reduce__(self):  # keep reason/index through pickling (Ray ships exceptions)
        return (_rebuild_row_rejected, (self.reason, str(self), self.index))


def _rebuild_row_rejected(reason: str, message: str, index: int | None) -> RowRejected:
    return RowRejected(reason, message, index=index)
