"""Llama3 family: model builders and presets (torchtune names)."""

from raytune_chat.models.llama3._component_builders import llama3, lora_llama3
from raytune_chat.models.llama3._model_builders import (
    llama3_1_8b,
    llama3_1_70b,
    llama3_2_1b,
    llama3_8b,
    llama3_70b,
    lora_llama3_1_8b,
    lora_llama3_1_70b,
    lora_llama3_2_1b,
    lora_llama3_8b,
    lora_llama3_70b,
)
from raytune_chat.models.llama3._tokenizer import (
    LLAMA3_SPECIAL_TOKENS,
    Llama3Tokenizer,
    llama3_tokenizer,
)

__all__ = [
    "LLAMA3_SPECIAL_TOKENS",
    "Llama3Tokenizer",
    "llama3",
    "llama3_1_8b",
    "llama3_1_70b",
    "llama3_2_1b",
    "llama3_8b",
    "llama3_tokenizer",
    "llama3_70b",
    "lora_llama3",
    "lora_llama3_1_8b",
    "lora_llama3_1_70b",
    "lora_llama3_2_1b",
    "lora_llama3_8b",
    "lora_llama3_70b",
]
