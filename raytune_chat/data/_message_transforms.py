"""Row → messages transforms for the ShareGPT and OpenAI conversation styles.

Each transform is a small picklable callable: ``transform(row) -> {"messages": [...]}``.
A row that cannot be converted raises `RowRejected` with a stable reason code instead of
being silently repaired (torchtune raises ``KeyError`` on an unknown ShareGPT role and reuses
the previous message's text when OpenAI content is null).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from raytune_chat.data._common import MaskingStrategy, RowRejected
from raytune_chat.data._messages import ROLES, Message

_SHAREGPT_ROLES = {"system": "system", "human": "user", "gpt": "assistant"}


class _ToMessages:
    """Shared options: column lookup, system prompt override, masking."""

    _column_key: str  # the torchtune column_map key, set by subclasses

    def __init__(
        self,
        train_on_input: bool = False,
        column_map: Mapping[str, str] | None = None,
        new_system_prompt: str | None = None,
        masking_strategy: str | MaskingStrategy | None = None,
    ) -> None:
        if column_map is not None and self._column_key not in column_map:
            raise ValueError(
                f"Expected a key of {self._column_key!r} in column_map but found "
                f"{sorted(column_map)}"
            )
        self.train_on_input = train_on_input
        self.new_system_prompt = new_system_prompt
        self.column = column_map[self._column_key] if column_map else self._column_key
        if masking_strategy is None:
            masking_strategy = "train_on_all" if train_on_input else "train_on_assistant"
        self.masking_strategy = MaskingStrategy(masking_strategy)

    def _raw_messages(self, row: Mapping[str, Any]) -> list[Any]:
        if self.column not in row:
            raise RowRejected("missing_column", f"row has no column {self.column!r}")
        raw = row[self.column]
        if hasattr(raw, "tolist") and not isinstance(raw, (str, bytes)):
            raw = raw.tolist()  # numpy object array from an Arrow batch
        if not isinstance(raw, (list, tuple)):
            raise RowRejected(
                "not_a_list",
                f"column {self.column!r} must hold a list of messages, got {type(raw).__name__}",
            )
        return raw

    def _finish(self, pairs: list[tuple[str, str]]) -> dict[str, list[Message]]:
        """Turn (role, text) pairs into masked messages, applying the system prompt rules."""
        if self.new_system_prompt is not None:
            pairs = [p for p in pairs if p[0] != "system"]
        masks = _masks(self.masking_strategy, [role for role, _ in pairs])
        messages = [
            Message(role=role, content=text, masked=masked)
            for (role, text), masked in zip(pairs, masks, strict=True)
        ]
        if self.new_system_prompt is not None:
            messages.insert(0, Message(role="system", content=self.new_system_prompt, masked=True))
        return {"messages": messages}


def _masks(strategy: MaskingStrategy, roles: list[str]) -> list[bool]:
    if strategy is MaskingStrategy.TRAIN_ON_ALL:
        return [False] * len(roles)
    if strategy is MaskingStrategy.TRAIN_ON_ASSISTANT:
        return [role != "assistant" for role in roles]
    last = max((i for i, role in enumerate(roles) if role == "assistant"), default=-1)
    return [i != last for i in range(len(roles))]


def _text(value: Any, index: int, what: str) -> str:
    if isinstance(value, str):
        return value
    if value is None:
        raise RowRejected("null_content", f"message {index}: {what} is null", index=index)
    raise RowRejected(
        "non_string_content",
        f"message {index}: {what} must be text, got {type(value).__name__}",
        index=index,
    )


class ShareGPTToMessages(_ToMessages):
    """Convert a ShareGPT row (``{"from": ..., "value": ...}`` dicts) to messages.

    Roles: ``system`` → system, ``human`` → user, ``gpt`` → assistant; any other is rejected.

    Args:
        train_on_input: train on system and user messages too (torchtune 0.6.1 semantics).
        column_map: ``{"conversations": <column>}``; default column ``"conversations"``.
        new_system_prompt: put this masked system message first and drop the data's own.
        masking_strategy: ``"train_on_assistant"``, ``"train_on_all"`` or
            ``"train_on_last"``; overrides ``train_on_input`` when given.

    Raises:
        RowRejected: from ``__call__`` when the row cannot be converted.

    Example:
        >>> t = ShareGPTToMessages(column_map={"conversations": "dialogue"})
        >>> row = {"dialogue": [{"from": "human", "value": "Hi"}, {"from": "gpt", "value": "Yo"}]}
        >>> [(m.role, m.masked) for m in t(row)["messages"]]
        [('user', True), ('assistant', False)]
    """

    _column_key = "conversations"

    def __call__(self, row: Mapping[str, Any]) -> dict[str, list[Message]]:
        pairs = []
        for i, raw in enumerate(self._raw_messages(row)):
            is_mapping = type(raw) is dict or isinstance(raw, Mapping)  # ABC check is slow
            if not is_mapping or "from" not in raw or "value" not in raw:
                raise RowRejected(
                    "bad_message",
                    f"message {i}: a ShareGPT message needs 'from' and 'value' keys",
                    index=i,
                )
            role = _SHAREGPT_ROLES.get(raw["from"]) if isinstance(raw["from"], str) else None
            if role is None:
                raise RowRejected(
                    "unknown_role",
                    f"message {i}: unknown ShareGPT role {raw['from']!r} "
                    "(expected system, human or gpt)",
                    index=i,
                )
            pairs.append((role, _text(raw["value"], i, "'value'")))
        return self._finish(pairs)


class OpenAIToMessages(_ToMessages):
    """Convert an OpenAI chat row (``{"role": ..., "content": ...}`` dicts) to messages.

    ``content`` is a string or a list of ``{"type": "text", "text": ...}`` parts, which are
    joined. Null content, non-text parts, and unknown roles are rejected.

    Args:
        train_on_input: train on system and user messages too (torchtune 0.6.1 semantics).
        column_map: ``{"messages": <column>}``; default column ``"messages"``.
        new_system_prompt: put this masked system message first and drop the data's own.
        masking_strategy: ``"train_on_assistant"``, ``"train_on_all"`` or
            ``"train_on_last"``; overrides ``train_on_input`` when given.

    Raises:
        RowRejected: from ``__call__`` when the row cannot be converted.

    Example:
        >>> t = OpenAIToMessages()
        >>> row = {"messages": [{"role": "user", "content": [{"type": "text", "text": "Hi"}]},
        ...                     {"role": "assistant", "content": "Hello"}]}
        >>> [m.text_content for m in t(row)["messages"]]
        ['Hi', 'Hello']
    """

    _column_key = "messages"

    def __call__(self, row: Mapping[str, Any]) -> dict[str, list[Message]]:
        pairs = []
        for i, raw in enumerate(self._raw_messages(row)):
            is_mapping = type(raw) is dict or isinstance(raw, Mapping)
            if not is_mapping or "role" not in raw or "content" not in raw:
                raise RowRejected(
                    "bad_message",
                    f"message {i}: an OpenAI message needs 'role' and 'content' keys",
                    index=i,
                )
            role = raw["role"]
            if not isinstance(role, str) or role not in ROLES:
                raise RowRejected("unknown_role", f"message {i}: unknown role {role!r}", index=i)
            pairs.append((role, _openai_text(raw["content"], i)))
        return self._finish(pairs)


def _openai_text(content: Any, index: int) -> str:
    if hasattr(content, "tolist") and not isinstance(content, (str, bytes)):
        content = content.tolist()
    if not isinstance(content, (list, tuple)):
        return _text(content, index, "'content'")
    texts = []
    for j, part in enumerate(content):
        if not isinstance(part, Mapping) or part.get("type") != "text":
            raise RowRejected(
                "non_string_content",
                f"message {index}: content part {j} is not a text part",
                index=index,
            )
        texts.append(_text(part.get("text"), index, f"the text of content part {j}"))
    return "".join(texts)
