"""Raw row → training sample: the plain function the Ray map stage calls per row."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from types import MappingProxyType
from typing import Any, Literal, NamedTuple

import numpy as np

from raytune_chat.data._common import CROSS_ENTROPY_IGNORE_IDX, RowRejected
from raytune_chat.data._messages import validate_messages


def shifted_labels_flat(tokens: np.ndarray, mask: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Next-token labels of many rows concatenated: ``labels[i] = tokens[i + 1]`` within a row.

    Row ``r`` is ``tokens[offsets[r]:offsets[r + 1]]`` (``mask`` True = not trained). Each
    row is shifted on its own: a masked target and a row's last position get
    ``CROSS_ENTROPY_IGNORE_IDX``, never the next row's first token.

    Example:
        >>> from raytune_chat.data import CROSS_ENTROPY_IGNORE_IDX as IGNORE
        >>> labels = shifted_labels_flat(np.array([1, 5, 6, 7, 8]),
        ...                              np.array([1, 0, 0, 1, 0], bool), np.array([0, 3, 5]))
        >>> [None if label == IGNORE else int(label) for label in labels]
        [5, 6, None, 8, None]
    """
    labels = np.full(len(tokens), CROSS_ENTROPY_IGNORE_IDX, dtype=np.int32)
    if len(tokens) > 1:
        labels[:-1] = np.where(mask[1:], CROSS_ENTROPY_IGNORE_IDX, tokens[1:])
    ends = offsets[1:][offsets[1:] > offsets[:-1]] - 1
    labels[ends] = CROSS_ENTROPY_IGNORE_IDX
    return labels


def shifted_labels(tokens: Sequence[int], mask: Sequence[bool]) -> list[int]:
    """One row's labels (see :func:`shifted_labels_flat`), as a list.

    Example:
        >>> from raytune_chat.data import CROSS_ENTROPY_IGNORE_IDX as IGNORE
        >>> shifted_labels([1, 5, 6, 2], [True, True, False, True]) == [IGNORE, 6, IGNORE, IGNORE]
        True
    """
    if len(tokens) != len(mask):
        raise ValueError(f"{len(tokens)} tokens but {len(mask)} mask entries")
    offsets = np.array([0, len(tokens)])
    return shifted_labels_flat(np.asarray(tokens), np.asarray(mask, dtype=bool), offsets).tolist()


_NOTHING_DROPPED: Mapping[str, int] = MappingProxyType({})

Truncation = Literal["right", "drop", "history"]
TRUNCATIONS = ("right", "drop", "history")


class TokenizedConversation(NamedTuple):
    """A conversation ready for the label shift.

    ``dropped`` counts what the row lost on purpose (keys of `DROPPED_KINDS`; absent = 0).
    """

    tokens: list[int]
    mask: list[bool]
    truncated: bool
    dropped: Mapping[str, int]


def tokenize_conversation(
    row: Mapping[str, Any],
    *,
    message_transform: Callable[[Mapping[str, Any]], Mapping[str, Any]],
    tokenizer: Any,
    truncation: Truncation = "right",
) -> TokenizedConversation:
    """The first half of :func:`tokenize_row`: messages → validate → tokens, mask, truncated.

    For callers that shift labels for many rows at once (the Ray map stage does it with numpy).

    Args:
        row: the raw row.
        message_transform: e.g. `OpenAIToMessages`; returns ``{"messages": [...]}`` and
            optionally ``"tools"`` (schemas) and ``"dropped"`` (counts).
        tokenizer: a model tokenizer; tool schemas and reasoning need one that renders them
            (``supports_tools`` / ``supports_reasoning``, e.g. Llama3's).
        truncation: what to do with a conversation longer than ``tokenizer.max_seq_len``:
            ``"right"`` (the tokenizer cuts it, torchtune's behaviour), ``"drop"`` (reject
            it as ``too_long``), ``"history"`` (drop the oldest exchanges, keeping the system
            message and the tool schemas, until it fits; ``too_long`` if the last exchange
            alone does not fit).

    Returns:
        `TokenizedConversation`.

    Raises:
        RowRejected: the row cannot be used; ``.reason`` says why. Whatever ``truncation``
            says, a row left with no trained token is rejected as ``no_trained_tokens``.

    Example:
        >>> from raytune_chat.data import ShareGPTToMessages
        >>> from raytune_chat.models.llama3 import llama3_tokenizer
        >>> from raytune_chat.config import asset_path
        >>> tokens, mask, truncated, dropped = tokenize_conversation(
        ...     {"conversations": [{"from": "human", "value": "Hi"},
        ...                        {"from": "gpt", "value": "Hello"}]},
        ...     message_transform=ShareGPTToMessages(),
        ...     tokenizer=llama3_tokenizer(str(asset_path("cl100k_base"))))
        >>> len(tokens) == len(mask), mask[0], truncated, dict(dropped)
        (True, True, False, {})
    """
    sample = message_transform(row)
    messages = sample["messages"]
    validate_messages(messages)
    tools = sample.get("tools")
    if tools or not getattr(tokenizer, "supports_reasoning", False):
        _check_supported(tokenizer, messages, tools)
    dropped = sample.get("dropped", _NOTHING_DROPPED)
    tokens, mask, truncated = _tokenize(tokenizer, messages, tools)
    if truncated and truncation != "right":
        if truncation == "drop":
            raise RowRejected(
                "too_long",
                f"the conversation is longer than max_seq_len={tokenizer.max_seq_len} "
                "(truncation='drop')",
            )
        if truncation != "history":
            raise ValueError(f"truncation must be one of {TRUNCATIONS}, got {truncation!r}")
        tokens, mask, cut = _fit_by_dropping_history(tokenizer, messages, tools)
        dropped = {**dropped, "messages": cut}
    # Labels come from positions 1..n-1; bos (position 0) is never a target.
    if mask.count(False) - (not mask[0] if mask else 0) <= 0:
        raise RowRejected(
            "no_trained_tokens",
            "no token of the conversation is trained on"
            + (f" after truncation to max_seq_len={tokenizer.max_seq_len}" if truncated else ""),
        )
    return TokenizedConversation(tokens, mask, truncated, dropped)


def _check_supported(tokenizer: Any, messages: Sequence[Any], tools: Any) -> None:
    name = type(tokenizer).__name__
    if tools and not getattr(tokenizer, "supports_tools", False):
        raise RowRejected(
            "not_supported_by_tokenizer",
            f"the row has tool schemas but {name} has no tool-calling format (Llama3 has)",
        )
    if not getattr(tokenizer, "supports_reasoning", False):
        for i, message in enumerate(messages):
            if message.reasoning is not None:
                raise RowRejected(
                    "not_supported_by_tokenizer",
                    f"message {i} has a reasoning trace but {name} has no format for it "
                    "(Llama3 has; or set reasoning='drop')",
                    index=i,
                )


def _tokenize(tokenizer: Any, messages: Sequence[Any], tools: Any) -> tuple[list, list, bool]:
    with_info = getattr(tokenizer, "tokenize_messages_with_info", None)
    if with_info is not None:
        tokens, mask, truncated = with_info(messages, tools=tools) if tools else with_info(messages)
        return tokens, mask, truncated
    kwargs = {"tools": tools} if tools else {}
    tokens, mask = tokenizer.tokenize_messages(messages, **kwargs)
    # A foreign tokenizer does not say whether it cut: a row at the limit counts as cut.
    max_seq_len = getattr(tokenizer, "max_seq_len", None)
    return tokens, mask, bool(max_seq_len) and len(tokens) >= max_seq_len


def _fit_by_dropping_history(
    tokenizer: Any, messages: Sequence[Any], tools: Any
) -> tuple[list[int], list[bool], int]:
    """Keep the system message and the fewest oldest exchanges dropped so the rest fits.

    An exchange starts at a user message. Fewer messages never give more tokens, so the
    number to drop is found by bisection: a few tokenizer calls, not one per exchange.

    Returns:
        ``(tokens, mask, number of messages dropped)``.
    """
    head = 1 if messages[0].role == "system" else 0
    starts = sorted({head, *(i for i in range(head, len(messages)) if messages[i].role == "user")})

    def attempt(k: int) -> tuple[list[int], list[bool], bool]:
        return _tokenize(tokenizer, [*messages[:head], *messages[starts[k] :]], tools)

    last = len(starts) - 1
    fitted = attempt(last) if last > 0 else None
    if fitted is None or fitted[2]:
        raise RowRejected(
            "too_long",
            f"the last exchange (messages {starts[last]}..{len(messages) - 1}) alone is longer "
            f"than max_seq_len={tokenizer.max_seq_len} (truncation='history')",
        )
    fits_from, too_long_from = last, 0  # keeping messages from starts[k] on
    while fits_from - too_long_from > 1:
        mid = (fits_from + too_long_from) // 2
        result = attempt(mid)
        if result[2]:
            too_long_from = mid
        else:
            fits_from, fitted = mid, result
    return fitted[0], fitted[1], starts[fits_from] - head


def tokenize_row(
    row: Mapping[str, Any],
    *,
    message_transform: Callable[[Mapping[str, Any]], Mapping[str, Any]],
    tokenizer: Any,
    truncation: Truncation = "right",
) -> dict[str, Any]:
    """Turn one raw row into a training sample: messages → validate → tokenize → labels.

    Args:
        row: the raw row, e.g. ``{"dialogue": [{"from": "human", "value": "Hi"}, ...]}``.
        message_transform: e.g. `ShareGPTToMessages`; returns ``{"messages": [...]}``.
        tokenizer: a model tokenizer (``tokenize_messages(messages) -> (tokens, mask)``).
        truncation: ``"right"``, ``"drop"`` or ``"history"`` (see `tokenize_conversation`).

    Returns:
        ``{"tokens", "labels", "num_tokens", "num_trained_tokens", "truncated", "dropped"}``
        where ``labels`` are shifted per sample (`shifted_labels`, spec §4) and
        ``dropped`` counts what the row lost on purpose (`DROPPED_KINDS`).

    Raises:
        RowRejected: the row cannot be used; ``.reason`` says why.

    Example:
        >>> from raytune_chat.data import ShareGPTToMessages
        >>> from raytune_chat.models.llama3 import llama3_tokenizer
        >>> from raytune_chat.config import asset_path
        >>> sample = tokenize_row(
        ...     {"conversations": [{"from": "human", "value": "Hi"},
        ...                        {"from": "gpt", "value": "Hello"}]},
        ...     message_transform=ShareGPTToMessages(),
        ...     tokenizer=llama3_tokenizer(str(asset_path("cl100k_base"))))
        >>> sample["num_tokens"], sample["num_trained_tokens"], sample["truncated"]
        (14, 6, False)
    """
    tokens, mask, truncated, dropped = tokenize_conversation(
        row, message_transform=message_transform, tokenizer=tokenizer, truncation=truncation
    )
    labels = shifted_labels(tokens, mask)
    ignore = CROSS_ENTROPY_IGNORE_IDX
    return {
        "tokens": tokens,
        "labels": labels,
        "num_tokens": len(tokens),
        "num_trained_tokens": len(labels) - labels.count(ignore),
        "truncated": truncated,
        "dropped": dict(dropped),
    }


__all__ = [
    "TRUNCATIONS",
    "RowRejected",
    "TokenizedConversation",
    "Truncation",
    "shifted_labels",
    "shifted_labels_flat",
    "tokenize_conversation",
    "tokenize_row",
]
