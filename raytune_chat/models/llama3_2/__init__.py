"""Llama 3.2 text presets (torchtune names); tokenizer and general builders are Llama 3's."""

from typing import TYPE_CHECKING

from raytune_chat._lazy import lazy_exports

# Model builders need torch; imported on first use, so processes that only tokenize
# (Ray Data actors unpickling a tokenizer) start without it.
if TYPE_CHECKING:
    from raytune_chat.models.llama3_2._model_builders import (
        llama3_2_1b,
        llama3_2_3b,
        lora_llama3_2_1b,
        lora_llama3_2_3b,
        qlora_llama3_2_1b,
        qlora_llama3_2_3b,
    )

__getattr__ = lazy_exports(__name__, __file__)

__all__ = [
    "llama3_2_1b",
    "llama3_2_3b",
    "lora_llama3_2_1b",
    "lora_llama3_2_3b",
    "qlora_llama3_2_1b",
    "qlora_llama3_2_3b",
]
