"""Prompt templates: text put before and after each message, by role.

A template is a callable ``template(messages) -> messages`` that returns new messages whose
content is ``[before] + content + [after]`` as text parts; each tag carries its message's
mask. Tags are plain text, never special ids.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

from raytune_chat.data._messages import Message

TemplateDict = Mapping[str, Sequence[str]]


@runtime_checkable
class PromptTemplateInterface(Protocol):
    """Anything that maps a conversation to a templated conversation."""

    def __call__(self, messages: list[Message], inference: bool = False) -> list[Message]: ...


def _wrap(message: Message, before: str, after: str) -> Message:
    content = list(message.content)
    if before:
        content.insert(0, {"type": "text", "content": before})
    if after:
        content.append({"type": "text", "content": after})
    return message.replace(content=content)


class PromptTemplate:
    """A custom template: role → ``(before, after)`` tags.

    Roles not in the mapping are left unchanged.

    Args:
        template: mapping role → ``(before, after)``; lists (from YAML) are accepted.

    Example:
        >>> t = PromptTemplate({"user": ("Q: ", "\\nA: ")})
        >>> [p["content"] for p in t([Message("user", "2+2?")])[0].content]
        ['Q: ', '2+2?', '\\nA: ']
    """

    template: dict[str, tuple[str, str]] = {}

    def __init__(self, template: TemplateDict | None = None) -> None:
        source = self.template if template is None else template
        self.template = {role: _tags(role, tags) for role, tags in source.items()}

    def __call__(self, messages: list[Message], inference: bool = False) -> list[Message]:
        out = []
        for message in messages:
            tags = self.template.get(message.role)
            out.append(message if tags is None else _wrap(message, *tags))
        return out

    def __eq__(self, other: object) -> bool:
        return type(self) is type(other) and self.template == other.template

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.template!r})"


def _tags(role: str, tags: Sequence[str]) -> tuple[str, str]:
    if isinstance(tags, str) or len(tags) != 2 or not all(isinstance(t, str) for t in tags):
        raise ValueError(
            f"template for role {role!r} must be [before, after] strings, got {tags!r}"
        )
    return (tags[0], tags[1])


class ChatMLTemplate(PromptTemplate):
    """OpenAI's ChatML: ``<|im_start|>{role}\\n`` … ``<|im_end|>\\n`` (plain text tags).

    A final empty assistant message (a generation prompt) gets only the opening tag.

    Example:
        >>> msgs = ChatMLTemplate()([Message("user", "Hi"), Message("assistant", "")])
        >>> [m.text_content for m in msgs]
        ['<|im_start|>user\\nHi<|im_end|>\\n', '<|im_start|>assistant\\n']
    """

    template = {
        "system": ("<|im_start|>system\n", "<|im_end|>\n"),
        "user": ("<|im_start|>user\n", "<|im_end|>\n"),
        "assistant": ("<|im_start|>assistant\n", "<|im_end|>\n"),
        "ipython": ("", ""),
    }

    def __call__(self, messages: list[Message], inference: bool = False) -> list[Message]:
        out = super().__call__(messages, inference)
        last = messages[-1] if messages else None
        if last is not None and last.role == "assistant" and not last.text_content:
            out[-1] = _wrap(last, self.template["assistant"][0], "")
        return out


class SummarizeTemplate(PromptTemplate):
    """``Summarize this dialogue:\\n{user}\\n---\\nSummary:\\n{assistant}``.

    Example:
        >>> SummarizeTemplate()([Message("user", "A: hi")])[0].text_content
        'Summarize this dialogue:\\nA: hi\\n---\\nSummary:\\n'
    """

    template = {"user": ("Summarize this dialogue:\n", "\n---\nSummary:\n")}


class GrammarErrorCorrectionTemplate(PromptTemplate):
    """``Correct this to standard English: {user}\\n---\\nCorrected: {assistant}``.

    Example:
        >>> GrammarErrorCorrectionTemplate()([Message("user", "me go")])[0].text_content
        'Correct this to standard English: me go\\n---\\nCorrected: '
    """

    template = {"user": ("Correct this to standard English: ", "\n---\nCorrected: ")}


class QuestionAnswerTemplate(PromptTemplate):
    """``Question: {user}\\n\\nAnswer: {assistant}``.

    Example:
        >>> QuestionAnswerTemplate()([Message("user", "Why?")])[0].text_content
        'Question: Why?\\n\\nAnswer: '
    """

    template = {"user": ("Question: ", "\n\nAnswer: ")}


def resolve_prompt_template(
    prompt_template: PromptTemplateInterface | str | TemplateDict | type | None,
) -> PromptTemplateInterface | None:
    """Turn a template given as object, class, dotted path, or role mapping into an object.

    Dotted paths starting with ``torchtune.`` are read as ``raytune_chat.`` so torchtune
    configs keep working.

    Args:
        prompt_template: a template object; a template class; a dotted path such as
            ``"raytune_chat.data.SummarizeTemplate"``; a mapping role → ``[before, after]``
            (as it comes from YAML); or ``None``.

    Returns:
        The template object, or ``None``.

    Raises:
        ValueError: if the value cannot be resolved.

    Example:
        >>> resolve_prompt_template("torchtune.data.QuestionAnswerTemplate")
        QuestionAnswerTemplate({'user': ('Question: ', '\\n\\nAnswer: ')})

        In YAML: ``prompt_template: {user: ["Q: ", "\\nA: "]}``.
    """
    if prompt_template is None:
        return None
    if isinstance(prompt_template, str):
        return _from_dotted_path(prompt_template)
    if isinstance(prompt_template, Mapping):
        return PromptTemplate(prompt_template)
    if isinstance(prompt_template, type):
        return prompt_template()
    if callable(prompt_template):
        return prompt_template
    raise ValueError(
        "prompt_template must be a template, a dotted path string or a mapping role -> "
        f"[before, after], got {type(prompt_template).__name__}"
    )


def _from_dotted_path(path: str) -> Any:
    if path.startswith("torchtune."):
        path = "raytune_chat." + path[len("torchtune.") :]
    module_name, _, attr = path.rpartition(".")
    try:
        target = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError, ValueError) as exc:
        raise ValueError(f"cannot import prompt template {path!r}: {exc}") from exc
    return target() if isinstance(target, type) else target
