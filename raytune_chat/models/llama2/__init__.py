"""Llama2 family: SentencePiece tokenizer and chat template (torchtune names)."""

from raytune_chat.models.llama2._prompt_template import Llama2ChatTemplate
from raytune_chat.models.llama2._tokenizer import Llama2Tokenizer, llama2_tokenizer

__all__ = ["Llama2ChatTemplate", "Llama2Tokenizer", "llama2_tokenizer"]
