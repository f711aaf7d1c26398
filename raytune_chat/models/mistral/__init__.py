"""Mistral family: SentencePiece tokenizer, chat template and model builders (torchtune names)."""

from raytune_chat.models.mistral._component_builders import lora_mistral, mistral
from raytune_chat.models.mistral._model_builders import (
    lora_mistral_7b,
    mistral_7b,
    qlora_mistral_7b,
)
from raytune_chat.models.mistral._prompt_template import MistralChatTemplate
from raytune_chat.models.mistral._tokenizer import MistralTokenizer, mistral_tokenizer

__all__ = [
    "lora_mistral",
    "lora_mistral_7b",
    "mistral",
    "mistral_7b",
    "mistral_tokenizer",
    "MistralChatTemplate",
    "MistralTokenizer",
    "qlora_mistral_7b",
]
