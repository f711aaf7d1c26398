"""A SentencePiece chat tokenizer: templates for tags, bos/eos per turn (Llama2, Mistral)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from raytune_chat.data import resolve_prompt_template
from raytune_chat.modules.tokenizers._chat_base import ChatTokenizer
from raytune_chat.modules.tokenizers._no_special_tokens import (
    tokenize_messages_no_special_tokens,
)
from raytune_chat.modules.tokenizers._protocol import TokenizedMessages
from raytune_chat.modules.tokenizers._sentencepiece import SentencePieceBaseTokenizer
from raytune_chat.modules.tokenizers._truncation import TruncationType

if TYPE_CHECKING:
    from raytune_chat.data import Message, PromptTemplateInterface


class SentencePieceChatTokenizer(ChatTokenizer):
    """SentencePiece model + prompt template; the family subclasses pick the template.

    Args:
        path: SentencePiece ``tokenizer.model``.
        max_seq_len: cut conversations to this many tokens; ``None`` = no limit.
        prompt_template: template object, dotted path, or mapping role → [before, after];
            ``None`` = no template.
        truncation_type: ``"right"`` (torchtune) or ``"left"``.
    """

    def __init__(
        self,
        path: str,
        max_seq_len: int | None = None,
        prompt_template: PromptTemplateInterface | str | Mapping | None = None,
        truncation_type: TruncationType = "right",
    ) -> None:
        self._spm_model = SentencePieceBaseTokenizer(path)
        self.max_seq_len = max_seq_len
        self.prompt_template = resolve_prompt_template(prompt_template)
        self.truncation_type = truncation_type
        self.pad_id = 0
        self.stop_tokens = [self.eos_id]
        self.special_tokens = {"<s>": self.bos_id, "</s>": self.eos_id}

    @property
    def bos_id(self) -> int:
        return self._spm_model.bos_id

    @property
    def eos_id(self) -> int:
        return self._spm_model.eos_id

    @property
    def vocab_size(self) -> int:
        return self._spm_model.vocab_size

    def encode(
        self,
        text: str,
        add_bos: bool = True,
        add_eos: bool = True,
        trim_leading_whitespace: bool = False,
    ) -> list[int]:
        """Encode text; special-token strings such as ``"</s>"`` stay plain text."""
        return self._spm_model.encode(
            text, add_bos=add_bos, add_eos=add_eos, trim_leading_whitespace=trim_leading_whitespace
        )

    def decode(self, token_ids: Sequence[int], skip_special_tokens: bool = True) -> str:
        """Decode ids to text (SentencePiece always drops bos/eos)."""
        return self._spm_model.decode(token_ids)

    def tokenize_messages_with_info(
        self,
        messages: Sequence[Message],
        add_end_tokens: bool = True,
        *,
        add_start_tokens: bool = True,
    ) -> TokenizedMessages:
        """Tokenize a conversation; also say whether it was cut to ``max_seq_len``.

        Each turn starts with bos and each assistant message is followed by eos (trained on
        with the assistant). ``add_end_tokens=False`` leaves out the eos tokens.
        """
        templated = (
            self.prompt_template(list(messages)) if self.prompt_template is not None else messages
        )
        return tokenize_messages_no_special_tokens(
            self,
            templated,
            bos_id=self.bos_id if add_start_tokens else None,
            eos_id=self.eos_id if add_end_tokens else None,
            max_seq_len=self.max_seq_len,
            truncation_type=self.truncation_type,
        )
