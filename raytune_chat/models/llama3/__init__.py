"""Llama3 family: tokenizer, model builders and presets (torchtune names)."""

from typing import TYPE_CHECKING

from raytune_chat._lazy import lazy_exports
from raytune_chat.models.llama3._tokenizer import (
    LLAMA3_SPECIAL_TOKENS,
    Llama3Tokenizer,
    llama3_tokenizer,
)

# Model builders need torch; imported on first use, so processes that only tokenize
# (Ray Data actors unpickling a tokenizer) start without it.
if TYPE_CHECKING:
    from raytune_chat.models.llama3._component_builders import (
        llama3,
        lora_llama3,
    )
    from raytune_chat.models.llama3._model_builders import (
        llama3_8b,
        llama3_70b,
        lora_llama3_8b,
        lora_llama3_70b,
        qlora_llama3_8b,
        qlora_llama3_70b,
    )

__getattr__ = lazy_exports(__name__, __file__)

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
