"""Llama3 family: tokenizer, model builders and presets (torchtune names)."""

from raytune_chat._lazy import lazy_exports
from raytune_chat.models.llama3._tokenizer import (
    LLAMA3_SPECIAL_TOKENS,
    Llama3Tokenizer,
    llama3_tokenizer,
)

# Model builders need torch; imported on first use, so processes that only tokenize
# (Ray Data actors unpickling a tokenizer) start without it.
__getattr__ = lazy_exports(
    __name__,
    {
        **dict.fromkeys(
            [
                "llama3",
                "lora_llama3",
            ],
            "raytune_chat.models.llama3._component_builders",
        ),
        **dict.fromkeys(
            [
                "llama3_8b",
                "lora_llama3_8b",
                "qlora_llama3_8b",
                "llama3_70b",
                "lora_llama3_70b",
                "qlora_llama3_70b",
            ],
            "raytune_chat.models.llama3._model_builders",
        ),
    },
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
