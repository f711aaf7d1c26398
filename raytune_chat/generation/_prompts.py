"""Generation prompts in the training template: a chat prompt ends with the assistant header."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

from raytune_chat.data import Message

__all__ = [
    "validation_prompts",
    "chat_prompt",
    "first_user_turn_prompt",
    "messages_from_prompt",
    "prompt_before_first_answer",
]


def chat_prompt(tokenizer: Any, messages: Sequence[Message]) -> list[int]:
    """Token ids of `messages` followed by the assistant header, ready to generate from.

    The same layout training uses (torchtune's generate recipe builds it this way too): an
    empty assistant message is appended and tokenized without end tokens.

    Example:
        >>> from raytune_chat.config import asset_path
        >>> from raytune_chat.models.llama3 import llama3_tokenizer
        >>> tok = llama3_tokenizer(str(asset_path("cl100k_base")))
        >>> ids = chat_prompt(tok, [Message("user", "Hi")])
        >>> tok.decode(ids, skip_special_tokens=False)
        '<|begin_of_text|><|start_header_id|>user<|end_header_id|>\\n\\nHi<|eot_id|><|start_header_id|>assistant<|end_header_id|>\\n\\n'
    """
    tokens, _ = tokenizer.tokenize_messages(
        [*messages, Message("assistant", "")], add_end_tokens=False
    )
    return tokens


def first_user_turn_prompt(tokenizer: Any, messages: Sequence[Message]) -> list[int] | None:
    """The prompt of a conversation's first answer: every message up to the first user one.

    Returns None when the conversation has no user message.

    Example:
        >>> from raytune_chat.config import asset_path
        >>> from raytune_chat.models.llama3 import llama3_tokenizer
        >>> tok = llama3_tokenizer(str(asset_path("cl100k_base")))
        >>> talk = [Message("user", "Hi"), Message("assistant", "Hello"), Message("user", "Bye")]
        >>> first_user_turn_prompt(tok, talk) == chat_prompt(tok, talk[:1])
        True
    """
    first = next((i for i, m in enumerate(messages) if m.role == "user"), None)
    return None if first is None else chat_prompt(tokenizer, messages[: first + 1])


def prompt_before_first_answer(tokenizer: Any, tokens: Sequence[int]) -> list[int] | None:
    """Cut a tokenized training row right after its first assistant header.

    Works from the tokens alone, so the loss mask (which `train_on_input` changes) does not
    matter; for an untruncated row it equals :func:`first_user_turn_prompt` of its messages.
    Returns None when the row holds no assistant header (e.g. cut by ``max_seq_len``).

    Example:
        >>> from raytune_chat.config import asset_path
        >>> from raytune_chat.models.llama3 import llama3_tokenizer
        >>> tok = llama3_tokenizer(str(asset_path("cl100k_base")))
        >>> talk = [Message("user", "Hi"), Message("assistant", "Hello")]
        >>> row, _ = tok.tokenize_messages(talk)
        >>> prompt_before_first_answer(tok, row) == first_user_turn_prompt(tok, talk)
        True
    """
    header = tokenizer.tokenize_message(Message("assistant", ""), add_end_tokens=False)
    ids = list(tokens)
    for i in range(len(ids) - len(header) + 1):
        if ids[i : i + len(header)] == header:
            return ids[: i + len(header)]
    return None


def validation_prompts(
    tokenizer: Any, token_rows: Iterable[Sequence[int]], n: int
) -> Iterator[list[int]]:
    """The first-user-turn prompts of the first `n` validation rows that have one.

    `token_rows` are tokenized rows as the validation set streams them (padding after the
    row is harmless: the cut comes before it; a packed row gives its first conversation).
    Rows without an assistant header (cut by ``max_seq_len``) are passed over.

    Example:
        >>> from raytune_chat.config import asset_path
        >>> from raytune_chat.models.llama3 import llama3_tokenizer
        >>> tok = llama3_tokenizer(str(asset_path("cl100k_base")))
        >>> rows = [tok.tokenize_messages([Message("user", q), Message("assistant", "A")])[0]
        ...         for q in ("One?", "Two?", "Three?")]
        >>> [tok.decode(p) for p in validation_prompts(tok, [[1, 2], *rows], 2)]
        ['One?', 'Two?']
    """
    if n <= 0:
        return
    for row in token_rows:
        prompt = prompt_before_first_answer(tokenizer, row)
        if prompt is not None:
            yield prompt
            n -= 1
            if n == 0:
                return


def messages_from_prompt(row: Mapping[str, Any]) -> list[Message]:
    """The messages of one prompts-file row: ``{"prompt": str, "system"?: str}`` or
    ``{"messages": [{"role", "content"}, ...]}`` (OpenAI style).

    Raises:
        ValueError: naming what the row lacks.

    Example:
        >>> [m.role for m in messages_from_prompt({"prompt": "Hi", "system": "Be brief."})]
        ['system', 'user']
    """
    if "messages" in row:
        messages = row["messages"]
        if not isinstance(messages, list) or not all(
            isinstance(m, Mapping) and isinstance(m.get("content"), str) and "role" in m
            for m in messages
        ):
            raise ValueError("'messages' must be a list of {role, content} objects")
        return [Message(m["role"], m["content"]) for m in messages]
    prompt = row.get("prompt")
    if not isinstance(prompt, str):
        raise ValueError("the row has neither a 'prompt' string nor a 'messages' list")
    system = row.get("system")
    if system is not None and not isinstance(system, str):
        raise ValueError("'system' must be a string")
    return [*([Message("system", system)] if system else []), Message("user", prompt)]
