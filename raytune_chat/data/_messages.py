"""The `Message` of a conversation and the check that a conversation is well formed."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

from raytune_chat.data._common import RowRejected

Role = Literal["system", "user", "assistant", "ipython", "tool"]
ROLES: frozenset[str] = frozenset({"system", "user", "assistant", "ipython", "tool"})

# Roles after which an assistant message may follow.
_ASSISTANT_MAY_FOLLOW = frozenset({"user", "ipython", "tool"})


class Message:
    """One message of a conversation.

    Args:
        role: ``"system"``, ``"user"``, ``"assistant"``, ``"ipython"`` or ``"tool"``.
        content: the text, or a list of text parts ``{"type": "text", "content": str}``
            (torchtune's layout; prompt templates add their tags as extra parts).
        masked: ``True`` = not in the loss.
        ipython: the message is an assistant tool call.
        eot: ``True`` = end of turn; ``False`` = end of message, more follows.
        reasoning: an assistant's reasoning trace, rendered before the content by tokenizers
            that have a format for it (Llama3: ``<think>`` … ``</think>``); ``None`` = none.
        reasoning_masked: keep the reasoning out of the loss even when the message is trained.

    Raises:
        ValueError: if ``ipython`` is set on a non-assistant message or content is not text.

    Example:
        >>> m = Message(role="user", content="Hi!", masked=True)
        >>> m.text_content, m.masked
        ('Hi!', True)
    """

    __slots__ = ("role", "content", "masked", "ipython", "eot", "reasoning", "reasoning_masked")

    def __init__(
        self,
        role: Role,
        content: str | Sequence[Mapping[str, Any]],
        masked: bool = False,
        ipython: bool = False,
        eot: bool = True,
        reasoning: str | None = None,
        reasoning_masked: bool = False,
    ) -> None:
        self.role = role
        self.content = _content_parts(content)
        self.masked = masked
        self.ipython = ipython
        self.eot = eot
        self.reasoning = reasoning
        self.reasoning_masked = reasoning_masked
        if ipython and role != "assistant":
            raise ValueError(f"only assistant messages can be tool calls, got role {role!r}")
        if reasoning is not None and not isinstance(reasoning, str):
            raise ValueError(f"reasoning must be text, got {type(reasoning).__name__}")

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Message:
        """Build a message from a dict with ``role``, ``content`` and optional flags.

        Example:
            >>> Message.from_dict({"role": "assistant", "content": "Hello"}).masked
            False
        """
        return cls(
            role=d["role"],
            content=d["content"],
            masked=d.get("masked", False),
            ipython=d.get("ipython", False),
            eot=d.get("eot", True),
            reasoning=d.get("reasoning"),
            reasoning_masked=d.get("reasoning_masked", False),
        )

    @property
    def text_content(self) -> str:
        """All text parts joined."""
        if len(self.content) == 1:
            return self.content[0]["content"]
        return "".join(part["content"] for part in self.content)

    def replace(self, **changes: Any) -> Message:
        """Return a copy with some fields changed (content may be text or parts)."""
        fields = {name: getattr(self, name) for name in self.__slots__}
        fields.update(changes)
        return Message(**fields)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Message):
            return NotImplemented
        return all(getattr(self, n) == getattr(other, n) for n in self.__slots__)

    def __getstate__(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.__slots__}

    def __setstate__(self, state: dict[str, Any]) -> None:
        for name, value in state.items():
            object.__setattr__(self, name, value)

    def __repr__(self) -> str:
        flags = f"masked={self.masked}" + (", ipython=True" if self.ipython else "")
        flags += "" if self.eot else ", eot=False"
        if self.reasoning is not None:
            flags += f", reasoning={self.reasoning!r}"
            flags += ", reasoning_masked=True" if self.reasoning_masked else ""
        return f"Message(role={self.role!r}, content={self.text_content!r}, {flags})"


def _content_parts(content: Any) -> list[dict[str, str]]:
    if isinstance(content, str):
        return [{"type": "text", "content": content}]
    if isinstance(content, Sequence):
        parts = []
        for part in content:
            if not (
                isinstance(part, Mapping)
                and part.get("type") == "text"
                and isinstance(part.get("content"), str)
            ):
                raise ValueError(f"content parts must be text parts, got {part!r}")
            parts.append({"type": "text", "content": part["content"]})
        return parts
    raise ValueError(f"content must be a string or a list of text parts, got {type(content)}")


def validate_messages(messages: Sequence[Message]) -> None:
    """Check that messages form a back-and-forth conversation.

    Rules: at least 2 messages; known roles; a system message only first; an assistant
    message only after a user (or tool/ipython) message; no two user messages in a row.

    Raises:
        RowRejected: a ``ValueError`` whose text names the message index and the rule, with
            ``reason`` one of ``too_few_messages``, ``unknown_role``, ``system_not_first``,
            ``bad_turn_order``.

    Example:
        >>> validate_messages([Message("user", "Hi"), Message("user", "Hello?")])
        Traceback (most recent call last):
        ...
        raytune_chat.data._common.RowRejected: message 1: two user messages in a row (1 follows 0)
    """
    if len(messages) < 2:
        raise RowRejected(
            "too_few_messages",
            f"a conversation needs at least 2 messages, got {len(messages)}",
        )
    last_role = None
    for i, message in enumerate(messages):
        role = message.role
        if role not in ROLES:
            raise RowRejected("unknown_role", f"message {i}: unknown role {role!r}", index=i)
        if role == "system" and i > 0:
            raise RowRejected(
                "system_not_first",
                f"message {i}: a system message must be the first message",
                index=i,
            )
        if role == "assistant" and last_role not in _ASSISTANT_MAY_FOLLOW:
            after = "at the start" if last_role in (None, "system") else f"after {last_role!r}"
            raise RowRejected(
                "bad_turn_order",
                f"message {i}: an assistant message must follow a user message, found it {after}",
                index=i,
            )
        if role == "user" and last_role == "user":
            raise RowRejected(
                "bad_turn_order",
                f"message {i}: two user messages in a row ({i} follows {i - 1})",
                index=i,
            )
        last_role = role
