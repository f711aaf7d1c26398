"""Llama 2 family: SentencePiece tokenizer, chat template and model builders (torchtune names)."""

from typing import TYPE_CHECKING

from raytune_chat._lazy import lazy_exports
from raytune_chat.models.llama2._prompt_template import Llama2ChatTemplate
from raytune_chat.models.llama2._tokenizer import Llama2Tokenizer, llama2_tokenizer

# Model builders need torch; imported on first use, so processes that only tokenize
# (Ray Data actors unpickling a tokenizer) start without it.
if TYPE_CHECKING:
    from raytune_chat.models.llama2._component_builders import (
        llama2,
        lora_llama2,
    )
    from raytune_chat.models.llama2._model_builders import (
        llama2_7b,
        llama2_13b,
        llama2_70b,
        lora_llama2_7b,
        lora_llama2_13b,
        lora_llama2_70b,
        qlora_llama2_7b,
        qlora_llama2_13b,
        qlora_llama2_70b,
    )

__getattr__ = lazy_exports(__name__, __file__)

__all__ = [
    "llama2",
    "llama2_13b",
    "llama2_70b",
    "llama2_7b",
    "llama2_tokenizer",
    "Llama2ChatTemplate",
    "Llama2Tokenizer",
    "lora_llama2",
    "lora_llama2_13b",
    "lora_llama2_70b",
    "lora_llama2_7b",
    "qlora_llama2_13b",
    "qlora_llama2_70b",
    "qlora_llama2_7b",
]
