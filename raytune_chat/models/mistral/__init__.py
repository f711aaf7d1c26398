"""Mistral family: SentencePiece tokenizer, chat template and model builders (torchtune names)."""

from typing import TYPE_CHECKING

from raytune_chat._lazy import lazy_exports
from raytune_chat.models.mistral._prompt_template import MistralChatTemplate
from raytune_chat.models.mistral._tokenizer import MistralTokenizer, mistral_tokenizer

# Model builders need torch; imported on first use, so processes that only tokenize
# (Ray Data actors unpickling a tokenizer) start without it.
if TYPE_CHECKING:
    from raytune_chat.models.mistral._component_builders import (
        lora_mistral,
        mistral,
    )
    from raytune_chat.models.mistral._model_builders import (
        lora_mistral_7b,
        mistral_7b,
        qlora_mistral_7b,
    )

__getattr__ = lazy_exports(__name__, __file__)

__all__ = [
    "lora_mistral",
    "lora_mistral_7b",
    "mistral",
    "mistral_7b",
    "mistral_tokenizer",
    "MistralChatTemplate",
    "MistralTokenizer",
    "qlora_mistral_7b",
]
