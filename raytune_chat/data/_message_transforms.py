"""Row → messages transforms for the ShareGPT and OpenAI conversation styles.

Each transform is a small picklable callable: ``transform(row) -> {"messages": [...]}``,
plus ``"tools"`` (the row's tool schemas) and ``"dropped"`` (what was left out on purpose,
keys of `DROPPED_KINDS`) when there are any. A row that cannot be converted raises
`RowRejected` with a stable reason code instead of being silently repaired (torchtune raises
``KeyError`` on an unknown ShareGPT role and reuses the previous message's text when OpenAI
content is null).

Tool use (spec §5): an OpenAI assistant message with ``tool_calls``, or a ShareGPT
``function_call`` turn, becomes an assistant message whose text is the call in Meta's Llama
3.1 JSON form, ``{"name": ..., "parameters": {...}}``; a ``tool`` message or ShareGPT
``observation`` becomes a ``tool`` message (the Llama3 tokenizer gives it the ``ipython``
header). An assistant's ``reasoning_content`` (or
``reasoning``) is kept, masked or dropped as the ``reasoning`` option says.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Literal

from raytune_chat.data._common import MaskingStrategy, RowRejected
from raytune_chat.data._messages import ROLES, Message

ReasoningMode = Literal["keep", "mask", "drop"]
REASONING_MODES = ("keep", "mask", "drop")

_SHAREGPT_ROLES = {
    "system": "system",
    "human": "user",
    "gpt": "assistant",
    "function_call": "assistant",  # LLaMA-Factory: the value is the call's JSON
    "observation": "tool",  # LLaMA-Factory: the tool's result
}
_REASONING_KEYS = ("reasoning_content", "reasoning")
_TOOL_ROLES = ("tool", "ipython")
_TOOL_SOURCES = frozenset({"function_call", "observation"})

# (role, text, reasoning) of one message, before masking.
_Turn = tuple[str, str, "str | None"]


class _ToMessages:
    """Shared options: column lookup, system prompt override, masking, tools, reasoning."""

    _column_key: str  # the torchtune column_map key, set by subclasses

    def __init__(
        self,
        train_on_input: bool = False,
        column_map: Mapping[str, str] | None = None,
        new_system_prompt: str | None = None,
        masking_strategy: str | MaskingStrategy | None = None,
        tools_column: str = "tools",
        reasoning: ReasoningMode = "keep",
    ) -> None:
        if column_map is not None and self._column_key not in column_map:
            raise ValueError(
                f"Expected a key of {self._column_key!r} in column_map but found "
                f"{sorted(column_map)}"
            )
        if reasoning not in REASONING_MODES:
            raise ValueError(f"reasoning must be one of {REASONING_MODES}, got {reasoning!r}")
        self.train_on_input = train_on_input
        self.new_system_prompt = new_system_prompt
        self.column = column_map[self._column_key] if column_map else self._column_key
        if masking_strategy is None:
            masking_strategy = "train_on_all" if train_on_input else "train_on_assistant"
        self.masking_strategy = MaskingStrategy(masking_strategy)
        self.tools_column = tools_column
        self.reasoning = reasoning

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

    def _finish(
        self, row: Mapping[str, Any], turns: list[_Turn], call_text_dropped: int
    ) -> dict[str, Any]:
        """Turn (role, text, reasoning) turns into masked messages; add tools and counts."""
        if self.new_system_prompt is not None:
            turns = [t for t in turns if t[0] != "system"]
        masks = _masks(self.masking_strategy, [role for role, _, _ in turns])
        keep_reasoning = self.reasoning != "drop"
        messages = [
            Message(role, text, masked)
            if reasoning is None
            else Message(
                role,
                text,
                masked,
                reasoning=reasoning if keep_reasoning else None,
                reasoning_masked=self.reasoning == "mask",
            )
            for (role, text, reasoning), masked in zip(turns, masks, strict=True)
        ]
        if self.new_system_prompt is not None:
            messages.insert(0, Message(role="system", content=self.new_system_prompt, masked=True))
        sample: dict[str, Any] = {"messages": messages}
        tools = _tools(row, self.tools_column) if row.get(self.tools_column) is not None else None
        if tools:
            if not any(m.role == "user" for m in messages):
                raise RowRejected(
                    "tools_without_user_message",
                    f"column {self.tools_column!r} has tool schemas but the conversation has no "
                    "user message to put them in",
                )
            sample["tools"] = tools
        reasoning_dropped = 0 if keep_reasoning else sum(t[2] is not None for t in turns)
        if reasoning_dropped or call_text_dropped:
            sample["dropped"] = {"reasoning": reasoning_dropped, "call_text": call_text_dropped}
        return sample

    def _reasoning(self, raw: Mapping[str, Any], role: str, index: int) -> str | None:
        """An assistant message's reasoning trace; empty or absent is ``None``."""
        if role != "assistant":
            return None
        for key in _REASONING_KEYS:
            value = raw.get(key)
            if value is not None:
                text = _text(value, index, repr(key))
                return text if text.strip() else None
        return None


def _masks(strategy: MaskingStrategy, roles: list[str]) -> list[bool]:
    if strategy is MaskingStrategy.TRAIN_ON_ALL:
        return [False] * len(roles)
    if strategy is MaskingStrategy.TRAIN_ON_ASSISTANT:
        return [role != "assistant" for role in roles]
    last = max((i for i, role in enumerate(roles) if role == "assistant"), default=-1)
    return [i != last for i in range(len(roles))]


def _tools(row: Mapping[str, Any], column: str) -> list[dict[str, Any]] | None:
    """The row's tool schemas: a list of objects, or a JSON string of one (Arrow cannot hold
    heterogeneous structs, so files store them either way)."""
    value = row.get(column)
    if hasattr(value, "tolist") and not isinstance(value, (str, bytes)):
        value = value.tolist()
    if isinstance(value, str):
        if not value.strip():
            return None
        try:
            value = json.loads(value)
        except json.JSONDecodeError as exc:
            raise RowRejected("bad_tools", f"column {column!r} is not valid JSON: {exc}") from None
    if value is None:
        return None
    if not isinstance(value, (list, tuple)) or not all(isinstance(t, Mapping) for t in value):
        raise RowRejected(
            "bad_tools", f"column {column!r} must hold a list of tool schemas (JSON objects)"
        )
    return [dict(t) for t in value] or None


def render_tool_call(call: Any, index: int) -> str:
    """One tool call in Meta's Llama 3.1 JSON form: ``{"name": ..., "parameters": {...}}``.

    ``call`` is an OpenAI ``tool_calls`` item (``{"function": {"name", "arguments"}}``) or a
    bare ``{"name", "arguments"}`` (LLaMA-Factory); ``arguments`` is a JSON string or an
    object.

    Raises:
        RowRejected: ``bad_tool_call`` when the name or arguments are missing or malformed.

    Example:
        >>> render_tool_call({"type": "function", "function": {
        ...     "name": "get_weather", "arguments": '{"city": "Zürich"}'}}, 1)
        '{"name": "get_weather", "parameters": {"city": "Zürich"}}'
    """
    function = call.get("function", call) if isinstance(call, Mapping) else None
    name = function.get("name") if isinstance(function, Mapping) else None
    if not isinstance(name, str) or not name:
        raise RowRejected(
            "bad_tool_call", f"message {index}: a tool call needs a function name", index=index
        )
    arguments = function.get("arguments")
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments) if arguments.strip() else {}
        except json.JSONDecodeError as exc:
            raise RowRejected(
                "bad_tool_call",
                f"message {index}: the arguments of tool call {name!r} are not valid JSON: {exc}",
                index=index,
            ) from None
    if arguments is None:
        arguments = {}
    if not isinstance(arguments, Mapping):
        raise RowRejected(
            "bad_tool_call",
            f"message {index}: the arguments of tool call {name!r} must be a JSON object",
            index=index,
        )
    return json.dumps({"name": name, "parameters": dict(arguments)}, ensure_ascii=False)


def _one_call(calls: Any, index: int) -> Any:
    if hasattr(calls, "tolist"):
        calls = calls.tolist()
    if not isinstance(calls, (list, tuple)):
        return calls
    if len(calls) != 1:
        raise RowRejected(
            "multiple_tool_calls",
            f"message {index}: {len(calls)} tool calls in one message; Llama 3's JSON tool "
            "format has one call per assistant message",
            index=index,
        )
    return calls[0]


def _tool_result(value: Any, index: int, what: str) -> str:
    """A tool's result: text as is, an object or list as JSON (Meta's template: ``tojson``)."""
    if isinstance(value, (Mapping, list, tuple)):
        return json.dumps(value, ensure_ascii=False)
    return _text(value, index, what)


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

    Roles: ``system`` → system, ``human`` → user, ``gpt`` → assistant, and LLaMA-Factory's
    ``function_call`` → an assistant tool call (the value is the call's JSON,
    ``{"name": ..., "arguments": {...}}``) and ``observation`` → ``tool`` (the tool's
    result); any other is rejected. Tool schemas come from the ``tools_column`` (a JSON string).

    Args:
        train_on_input: train on system and user messages too (torchtune 0.6.1 semantics).
        column_map: ``{"conversations": <column>}``; default column ``"conversations"``.
        new_system_prompt: put this masked system message first and drop the data's own.
        masking_strategy: ``"train_on_assistant"``, ``"train_on_all"`` or
            ``"train_on_last"``; overrides ``train_on_input`` when given.
        tools_column: the column holding the tool schemas (a list or a JSON string of one).
        reasoning: an assistant's ``reasoning_content``/``reasoning``: ``"keep"`` (trained
            with the answer), ``"mask"`` (rendered, not trained) or ``"drop"`` (counted).

    Raises:
        RowRejected: from ``__call__`` when the row cannot be converted.

    Example:
        >>> t = ShareGPTToMessages(column_map={"conversations": "dialogue"})
        >>> row = {"dialogue": [{"from": "human", "value": "Hi"}, {"from": "gpt", "value": "Yo"}]}
        >>> [(m.role, m.masked) for m in t(row)["messages"]]
        [('user', True), ('assistant', False)]
    """

    _column_key = "conversations"

    def __call__(self, row: Mapping[str, Any]) -> dict[str, Any]:
        turns: list[_Turn] = []
        for i, raw in enumerate(self._raw_messages(row)):
            is_mapping = type(raw) is dict or isinstance(raw, Mapping)  # ABC check is slow
            if not is_mapping or "from" not in raw or "value" not in raw:
                raise RowRejected(
                    "bad_message",
                    f"message {i}: a ShareGPT message needs 'from' and 'value' keys",
                    index=i,
                )
            source = raw["from"]
            role = _SHAREGPT_ROLES.get(source) if isinstance(source, str) else None
            if role is None:
                raise RowRejected(
                    "unknown_role",
                    f"message {i}: unknown ShareGPT role {source!r} "
                    "(expected system, human, gpt, function_call or observation)",
                    index=i,
                )
            value = raw["value"]
            # The common case inline: this loop runs for every message of every row.
            if type(value) is str and source not in _TOOL_SOURCES:
                text = value
            elif source == "function_call":
                text = render_tool_call(_one_call(_parse_call(value, i), i), i)
            elif source == "observation":
                text = _tool_result(value, i, "'value'")
            else:
                text = _text(value, i, "'value'")
            has_reasoning = "reasoning_content" in raw or "reasoning" in raw
            turns.append((role, text, self._reasoning(raw, role, i) if has_reasoning else None))
        return self._finish(row, turns, 0)


def _parse_call(value: Any, index: int) -> Any:
    """A ShareGPT ``function_call`` value: the call's JSON (a string) or the call itself."""
    if not isinstance(value, str):
        return value
    try:
        return json.loads(value)
    except json.JSONDecodeError as exc:
        raise RowRejected(
            "bad_tool_call", f"message {index}: function_call is not valid JSON: {exc}", index=index
        ) from None


class OpenAIToMessages(_ToMessages):
    """Convert an OpenAI chat row (``{"role": ..., "content": ...}`` dicts) to messages.

    ``content`` is a string or a list of ``{"type": "text", "text": ...}`` parts, which are
    joined. Null content, non-text parts, and unknown roles are rejected, except that an
    assistant message with one of ``tool_calls`` may have null or no content (text beside a
    call is not rendered, as in Meta's template, and is counted in ``dropped``). An object or
    list as a ``tool`` message's content is written as JSON.

    Args:
        train_on_input: train on system and user messages too (torchtune 0.6.1 semantics).
        column_map: ``{"messages": <column>}``; default column ``"messages"``.
        new_system_prompt: put this masked system message first and drop the data's own.
        masking_strategy: ``"train_on_assistant"``, ``"train_on_all"`` or
            ``"train_on_last"``; overrides ``train_on_input`` when given.
        tools_column: the column holding the tool schemas (a list or a JSON string of one).
        reasoning: an assistant's ``reasoning_content``/``reasoning``: ``"keep"`` (trained
            with the answer), ``"mask"`` (rendered, not trained) or ``"drop"`` (counted).

    Raises:
        RowRejected: from ``__call__`` when the row cannot be converted.

    Example:
        >>> t = OpenAIToMessages()
        >>> row = {"messages": [{"role": "user", "content": [{"type": "text", "text": "Hi"}]},
        ...                     {"role": "assistant", "content": "Hello"}]}
        >>> [m.text_content for m in t(row)["messages"]]
        ['Hi', 'Hello']
        >>> call = {"function": {"name": "add", "arguments": '{"a": 1, "b": 2}'}}
        >>> row = {"messages": [{"role": "user", "content": "1+2?"},
        ...                     {"role": "assistant", "content": None, "tool_calls": [call]},
        ...                     {"role": "tool", "content": {"sum": 3}},
        ...                     {"role": "assistant", "content": "3"}]}
        >>> [(m.role, m.text_content) for m in t(row)["messages"][1:3]]
        [('assistant', '{"name": "add", "parameters": {"a": 1, "b": 2}}'), ('tool', '{"sum": 3}')]
    """

    _column_key = "messages"

    def __call__(self, row: Mapping[str, Any]) -> dict[str, Any]:
        turns: list[_Turn] = []
        call_text_dropped = 0
        for i, raw in enumerate(self._raw_messages(row)):
            is_mapping = type(raw) is dict or isinstance(raw, Mapping)
            calls = raw.get("tool_calls") if is_mapping else None
            if calls is not None and hasattr(calls, "tolist"):
                calls = calls.tolist()
            if not is_mapping or "role" not in raw or ("content" not in raw and not calls):
                raise RowRejected(
                    "bad_message",
                    f"message {i}: an OpenAI message needs 'role' and 'content' keys",
                    index=i,
                )
            role = raw["role"]
            if not isinstance(role, str) or role not in ROLES:
                raise RowRejected("unknown_role", f"message {i}: unknown role {role!r}", index=i)
            content = raw.get("content")
            if type(content) is str and not calls:  # the common case inline
                text = content
            elif calls and role == "assistant":
                text = render_tool_call(_one_call(calls, i), i)
                call_text_dropped += _has_text(content)
            elif role in _TOOL_ROLES and isinstance(content, Mapping):
                text = _tool_result(content, i, "'content'")
            else:
                text = _openai_text(content, i, tool_result=role in _TOOL_ROLES)
            has_reasoning = "reasoning_content" in raw or "reasoning" in raw
            turns.append((role, text, self._reasoning(raw, role, i) if has_reasoning else None))
        return self._finish(row, turns, call_text_dropped)


def _has_text(content: Any) -> bool:
    if isinstance(content, str):
        return bool(content.strip())
    return bool(content)  # a non-empty list of parts


def _openai_text(content: Any, index: int, *, tool_result: bool = False) -> str:
    if hasattr(content, "tolist") and not isinstance(content, (str, bytes)):
        content = content.tolist()
    if not isinstance(content, (list, tuple)):
        return _text(content, index, "'content'")
    is_parts = all(isinstance(p, Mapping) and p.get("type") == "text" for p in content)
    if tool_result and not is_parts:
        return _tool_result(content, index, "'content'")
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
