"""Mistral tokenizer: SentencePiece with `MistralChatTemplate` by default."""

from __future__ import annotations

from collections.abc import Mapping

from raytune_chat.data import PromptTemplateInterface
from raytune_chat.models.mistral._prompt_template import MistralChatTemplate
from raytune_chat.modules.tokenizers import SentencePieceChatTokenizer, TruncationType

_DEFAULT_TEMPLATE = MistralChatTemplate()


class MistralTokenizer(SentencePieceChatTokenizer):
    """SentencePiece tokenizer in Mistral's chat format (bos 1, eos 2, pad 0).

    Args:
        path: Mistral's ``tokenizer.model``.
        max_seq_len: cut conversations to this many tokens.
        prompt_template: default `MistralChatTemplate`; ``None`` for none.
        truncation_type: ``"right"`` (torchtune) or ``"left"``.
    """

    def __init__(
        self,
        path: str,
        max_seq_len: int | None = None,
        prompt_template: PromptTemplateInterface | str | Mapping | None = _DEFAULT_TEMPLATE,
        truncation_type: TruncationType = "right",
    ) -> None:
        super().__init__(path, max_seq_len, prompt_template, truncation_type)


def mistral_tokenizer(
    path: str,
    max_seq_len: int | None = None,
    prompt_template: PromptTemplateInterface | str | Mapping | None = _DEFAULT_TEMPLATE,
    truncation_type: TruncationType = "right",
) -> MistralTokenizer:
    """Build the Mistral tokenizer.

    Args:
        path: Mistral's ``tokenizer.model`` (SentencePiece).
        max_seq_len: cut conversations to this many tokens.
        prompt_template: default `MistralChatTemplate` (rejects system messages); a template
            object, dotted path, mapping role → [before, after], or ``None``.
        truncation_type: ``"right"`` (default, torchtune) or ``"left"``.

    Returns:
        `MistralTokenizer`.

    Example:
        >>> import tempfile, sentencepiece as spm
        >>> prefix = tempfile.mkdtemp() + "/tokenizer"  # a tiny model, trained from a line of text
        >>> spm.SentencePieceTrainer.train(sentence_iterator=iter(["Hi there, hello world!"] * 20),
        ...     model_prefix=prefix, vocab_size=300, byte_fallback=True, hard_vocab_limit=False,
        ...     minloglevel=2)
        >>> from raytune_chat.data import Message
        >>> tok = mistral_tokenizer(prefix + ".model")
        >>> tokens, _ = tok.tokenize_messages([Message("user", "Hi"), Message("assistant", "Yo")])
        >>> tok.decode(tokens)
        '[INST] Hi [/INST] Yo'

        In YAML::

            tokenizer:
              _component_: raytune_chat.models.mistral.mistral_tokenizer
              path: /tmp/Mistral-7B-v0.1/tokenizer.model
    """
    return MistralTokenizer(path, max_seq_len, prompt_template, truncation_type)
