"""Llama2 tokenizer: SentencePiece with `Llama2ChatTemplate` by default."""

from __future__ import annotations

from collections.abc import Mapping

from raytune_chat.data import PromptTemplateInterface
from raytune_chat.models.llama2._prompt_template import Llama2ChatTemplate
from raytune_chat.modules.tokenizers import SentencePieceChatTokenizer, TruncationType

_DEFAULT_TEMPLATE = Llama2ChatTemplate()


class Llama2Tokenizer(SentencePieceChatTokenizer):
    """SentencePiece tokenizer in Llama2's chat format (bos 1, eos 2, pad 0).

    Args:
        path: Meta's Llama2 ``tokenizer.model``.
        max_seq_len: cut conversations to this many tokens.
        prompt_template: default `Llama2ChatTemplate`; ``None`` for none.
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


def llama2_tokenizer(
    path: str,
    max_seq_len: int | None = None,
    prompt_template: PromptTemplateInterface | str | Mapping | None = _DEFAULT_TEMPLATE,
    truncation_type: TruncationType = "right",
) -> Llama2Tokenizer:
    """Build the Llama2 tokenizer.

    Args:
        path: Meta's Llama2 ``tokenizer.model`` (SentencePiece).
        max_seq_len: cut conversations to this many tokens.
        prompt_template: default `Llama2ChatTemplate`; a template object, dotted path,
            mapping role → [before, after], or ``None``.
        truncation_type: ``"right"`` (default, torchtune) or ``"left"``.

    Returns:
        `Llama2Tokenizer`.

    Example:
        >>> import tempfile, sentencepiece as spm
        >>> prefix = tempfile.mkdtemp() + "/tokenizer"  # a tiny model, trained from a line of text
        >>> spm.SentencePieceTrainer.train(sentence_iterator=iter(["Hi there, hello world!"] * 20),
        ...     model_prefix=prefix, vocab_size=300, byte_fallback=True, hard_vocab_limit=False,
        ...     minloglevel=2)
        >>> from raytune_chat.data import Message
        >>> tok = llama2_tokenizer(prefix + ".model")
        >>> tokens, mask = tok.tokenize_messages(
        ...     [Message("user", "Hi", masked=True), Message("assistant", "Hello")])
        >>> tokens[0], tokens[-1], mask[0], mask[-1], tok.pad_id
        (1, 2, True, False, 0)

        In YAML::

            tokenizer:
              _component_: raytune_chat.models.llama2.llama2_tokenizer
              path: /tmp/Llama-2-7b-hf/tokenizer.model
    """
    return Llama2Tokenizer(path, max_seq_len, prompt_template, truncation_type)
