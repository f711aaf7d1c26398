"""Mistral chat template: ``[INST] … [/INST]``; system messages are an error."""

from __future__ import annotations

from raytune_chat.data import Message, PromptTemplate, RowRejected


class MistralChatTemplate(PromptTemplate):
    """``[INST] {user} [/INST] {assistant}``.

    Raises:
        RowRejected: (a ``ValueError``, reason ``system_not_supported``) on a system message.

    Example:
        >>> [m.text_content for m in MistralChatTemplate()(
        ...     [Message("user", "Hi"), Message("assistant", "Hello")])]
        ['[INST] Hi [/INST] ', 'Hello']
    """

    template = {"user": ("[INST] ", " [/INST] ")}

    def __call__(self, messages: list[Message], inference: bool = False) -> list[Message]:
        for i, message in enumerate(messages):
            if message.role == "system":
                raise RowRejected(
                    "system_not_supported",
                    f"message {i}: MistralChatTemplate does not support system messages",
                    index=i,
                )
        return super().__call__(messages, inference)
