"""Llama2 chat template: ``[INST]`` tags, system prompt inside the first user message."""

from __future__ import annotations

from raytune_chat.data import Message


class Llama2ChatTemplate:
    """``[INST] <<SYS>>\\n{system}\\n<</SYS>>\\n\\n{user} [/INST] {assistant}``.

    The system message is removed and its text is put in the FIRST user message only, after
    ``"[INST] "`` — Meta's reference format. Deliberate difference: torchtune 0.6.1 repeats
    the ``<<SYS>>`` block in every user turn.

    Example:
        >>> msgs = Llama2ChatTemplate()([Message("system", "Be brief."), Message("user", "Hi"),
        ...     Message("assistant", "Hello"), Message("user", "Bye")])
        >>> [m.text_content for m in msgs]
        ['[INST] <<SYS>>\\nBe brief.\\n<</SYS>>\\n\\nHi [/INST] ', 'Hello', '[INST] Bye [/INST] ']
    """

    template = {
        "system": ("<<SYS>>\n", "\n<</SYS>>\n\n"),
        "user": ("[INST] ", " [/INST] "),
        "assistant": ("", ""),
        "ipython": ("", ""),
    }

    def __call__(self, messages: list[Message], inference: bool = False) -> list[Message]:
        system_parts: list[dict[str, str]] = []
        out = []
        for message in messages:
            if message.role == "system":
                before, after = self.template["system"]
                system_parts = [
                    {"type": "text", "content": before},
                    *message.content,
                    {"type": "text", "content": after},
                ]
                continue
            if message.role == "user":
                before, after = self.template["user"]
                content = [
                    {"type": "text", "content": before},
                    *system_parts,
                    *message.content,
                    {"type": "text", "content": after},
                ]
                system_parts = []
                message = message.replace(content=content)
            out.append(message)
        return out

    def __eq__(self, other: object) -> bool:
        return type(self) is type(other)

    def __repr__(self) -> str:
        return "Llama2ChatTemplate()"
