"""Llama 3.3 presets (torchtune names); tokenizer and general builders are Llama 3's."""

from raytune_chat.models.llama3_3._model_builders import (
    llama3_3_70b,
    lora_llama3_3_70b,
    qlora_llama3_3_70b,
)

__all__ = [
    "llama3_3_70b",
    "lora_llama3_3_70b",
    "qlora_llama3_3_70b",
]
