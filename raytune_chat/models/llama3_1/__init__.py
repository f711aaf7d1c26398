"""Llama 3.1 presets (torchtune names); tokenizer and general builders are Llama 3's."""

from typing import TYPE_CHECKING

from raytune_chat._lazy import lazy_exports

# Model builders need torch; imported on first use, so processes that only tokenize
# (Ray Data actors unpickling a tokenizer) start without it.
if TYPE_CHECKING:
    from raytune_chat.models.llama3_1._model_builders import (
        llama3_1_8b,
        llama3_1_70b,
        llama3_1_405b,
        lora_llama3_1_8b,
        lora_llama3_1_70b,
        lora_llama3_1_405b,
        qlora_llama3_1_8b,
        qlora_llama3_1_70b,
        qlora_llama3_1_405b,
    )

__getattr__ = lazy_exports(__name__, __file__)

__all__ = [
    "llama3_1_405b",
    "llama3_1_70b",
    "llama3_1_8b",
    "lora_llama3_1_405b",
    "lora_llama3_1_70b",
    "lora_llama3_1_8b",
    "qlora_llama3_1_405b",
    "qlora_llama3_1_70b",
    "qlora_llama3_1_8b",
]
