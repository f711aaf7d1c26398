"""Llama3 family: model builders and presets (torchtune names)."""

from raytune_chat._lazy import lazy_exports
from raytune_chat.models.llama3._tokenizer import (
    LLAMA3_SPECIAL_TOKENS,
    Llama3Tokenizer,
    llama3_tokenizer,
)

# Model builders need torch; imported on first use, so processes that only tokenize
# (Ray Data actors unpickling a Llama3Tokenizer) start without it.
__getattr__ = lazy_exports(
    __name__,
    {
        **dict.fromkeys(
            ["llama3", "lora_llama3"], "raytune_chat.models.llama3._component_builders"
        ),
        **dict.fromkeys(
            [
                "llama3_1_8b", "llama3_1_70b", "llama3_2_1b", "llama3_8b", "llama3_70b",
                "lora_llama3_1_8b", "lora_llama3_1_70b", "lora_llama3_2_1b", "lora_llama3_8b",
                "lora_llama3_70b",
            ],
            "raytune_chat.models.llama3._model_builders",
        ),
    },
)  # fmt: skip

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
