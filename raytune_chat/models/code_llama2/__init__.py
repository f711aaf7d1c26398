"""Code Llama 2 presets (torchtune names); the tokenizer is Llama 2's."""

from typing import TYPE_CHECKING

from raytune_chat._lazy import lazy_exports

# Model builders need torch; imported on first use, so processes that only tokenize
# (Ray Data actors unpickling a tokenizer) start without it.
if TYPE_CHECKING:
    from raytune_chat.models.code_llama2._model_builders import (
        code_llama2_7b,
        code_llama2_13b,
        code_llama2_70b,
        lora_code_llama2_7b,
        lora_code_llama2_13b,
        lora_code_llama2_70b,
        qlora_code_llama2_7b,
        qlora_code_llama2_13b,
        qlora_code_llama2_70b,
    )

__getattr__ = lazy_exports(__name__, __file__)

__all__ = [
    "code_llama2_13b",
    "code_llama2_70b",
    "code_llama2_7b",
    "lora_code_llama2_13b",
    "lora_code_llama2_70b",
    "lora_code_llama2_7b",
    "qlora_code_llama2_13b",
    "qlora_code_llama2_70b",
    "qlora_code_llama2_7b",
]
