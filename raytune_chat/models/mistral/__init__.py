"""Mistral family: SentencePiece tokenizer, chat template and model builders (torchtune names)."""

from raytune_chat._lazy import lazy_exports
from raytune_chat.models.mistral._prompt_template import MistralChatTemplate
from raytune_chat.models.mistral._tokenizer import MistralTokenizer, mistral_tokenizer

# Model builders need torch; imported on first use, so processes that only tokenize
# (Ray Data actors unpickling a tokenizer) start without it.
__getattr__ = lazy_exports(
    __name__,
    {
        **dict.fromkeys(
            [
                "lora_mistral",
                "mistral",
            ],
            "raytune_chat.models.mistral._component_builders",
        ),
        **dict.fromkeys(
            [
                "mistral_7b",
                "lora_mistral_7b",
                "qlora_mistral_7b",
            ],
            "raytune_chat.models.mistral._model_builders",
        ),
    },
)

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
