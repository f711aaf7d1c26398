"""Mistral family: SentencePiece tokenizer and chat template (torchtune names)."""

from raytune_chat.models.mistral._prompt_template import MistralChatTemplate
from raytune_chat.models.mistral._tokenizer import MistralTokenizer, mistral_tokenizer

__all__ = ["MistralChatTemplate", "MistralTokenizer", "mistral_tokenizer"]
