"""Llama3 family: tokenizer, model builders and presets (torchtune names)."""

from raytune_chat.models.llama3._component_builders import llama3, lora_llama3
from raytune_chat.models.llama3._model_builders import (
    llama3_8b,
    llama3_70b,
    lora_llama3_8b,
    lora_llama3_70b,
    qlora_llama3_8b,
    qlora_llama3_70b,
)
from raytune_chat.models.llama3._tokenizer import (
    LLAMA3_SPECIAL_TOKENS,
    Llama3Tokenizer,
    llama3_tokenizer,
)

__all__ = [
    "llama3",
    "llama3_70b",
    "llama3_8b",
    "LLAMA3_SPECIAL_TOKENS",
    "llama3_tokenizer",
    "Llama3Tokenizer",
    "lora_llama3",
    "lora_llama3_70b",
    "lora_llama3_8b",
    "qlora_llama3_70b",
    "qlora_llama3_8b",
]
