"""Raw row → training sample: the plain function the Ray map stage calls per row."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from raytune_chat.data._common import CROSS_ENTROPY_IGNORE_IDX, RowRejected
from raytune_chat.data._messages import validate_messages


def shifted_labels(tokens: list[int], mask: list[bool]) -> list[int]:
    """Per-sample next-token labels: ``labels[i] = tokens[i + 1]``, -100 where masked or last.

    Example:
        >>> shifted_labels([1, 5, 6, 2], [True, True, False, True])
        [-100, 6, -100, -100]
    """
    if not tokens:
        return []
    ignore = CROSS_ENTROPY_IGNORE_IDX
    labels = [ignore if m else t for t, m in zip(tokens[1:], mask[1:], strict=True)]
    labels.append(ignore)
    return labels


def tokenize_conversation(
    row: Mapping[str, Any],
    *,
    message_transform: Callable[[Mapping[str, Any]], Mapping[str, Any]],
    tokenizer: Any,
) -> tuple[list[int], list[bool], bool]:
    """The first half of :func:`tokenize_row`: messages → validate → ``(tokens, mask, truncated)``.

    For callers that shift labels for many rows at once (the Ray map stage does it with numpy).

    Raises:
        RowRejected: the row cannot be used; ``.reason`` says why.

    Example:
        >>> from raytune_chat.data import ShareGPTToMessages
        >>> from raytune_chat.models.llama3 import llama3_tokenizer
        >>> from tests.assets.build_assets import cl100k_bpe_path
        >>> tokens, mask, truncated = tokenize_conversation(
        ...     {"conversations": [{"from": "human", "value": "Hi"},
        ...                        {"from": "gpt", "value": "Hello"}]},
        ...     message_transform=ShareGPTToMessages(),
        ...     tokenizer=llama3_tokenizer(str(cl100k_bpe_path())))
        >>> len(tokens) == len(mask), mask[0], truncated
        (True, True, False)
    """
    messages = message_transform(row)["messages"]
    validate_messages(messages)
    with_info = getattr(tokenizer, "tokenize_messages_with_info", None)
    if with_info is not None:
        tokens, mask, truncated = with_info(messages)
        return tokens, mask, truncated
    tokens, mask = tokenizer.tokenize_messages(messages)
    # A foreign tokenizer does not say whether it cut: a row at the limit counts as cut.
    max_seq_len = getattr(tokenizer, "max_seq_len", None)
    return tokens, mask, bool(max_seq_len) and len(tokens) >= max_seq_len


def tokenize_row(
    row: Mapping[str, Any],
    *,
    message_transform: Callable[[Mapping[str, Any]], Mapping[str, Any]],
    tokenizer: Any,
) -> dict[str, Any]:
    """Turn one raw row into a training sample: messages → validate → tokenize → labels.

    Args:
        row: the raw row, e.g. ``{"dialogue": [{"from": "human", "value": "Hi"}, ...]}``.
        message_transform: e.g. `ShareGPTToMessages`; returns ``{"messages": [...]}``.
        tokenizer: a model tokenizer (``tokenize_messages(messages) -> (tokens, mask)``).

    Returns:
        ``{"tokens", "labels", "num_tokens", "num_trained_tokens", "truncated"}`` where
        ``labels`` are shifted per sample with -100 where masked (spec §4).

    Raises:
        RowRejected: the row cannot be used; ``.reason`` says why.

    Example:
        >>> from raytune_chat.data import ShareGPTToMessages
        >>> from raytune_chat.models.llama3 import llama3_tokenizer
        >>> from tests.assets.build_assets import cl100k_bpe_path
        >>> sample = tokenize_row(
        ...     {"conversations": [{"from": "human", "value": "Hi"},
        ...                        {"from": "gpt", "value": "Hello"}]},
        ...     message_transform=ShareGPTToMessages(),
        ...     tokenizer=llama3_tokenizer(str(cl100k_bpe_path())))
        >>> sample["num_tokens"], sample["num_trained_tokens"], sample["truncated"]
        (14, 6, False)
    """
    tokens, mask, truncated = tokenize_conversation(
        row, message_transform=message_transform, tokenizer=tokenizer
    )
    labels = shifted_labels(tokens, mask)
    ignore = CROSS_ENTROPY_IGNORE_IDX
    return {
        "tokens": tokens,
        "labels": labels,
        "num_tokens": len(tokens),
        "num_trained_tokens": len(labels) - labels.count(ignore),
        "truncated": truncated,
    }


__all__ = ["RowRejected", "shifted_labels", "tokenize_conversation", "tokenize_row"]
