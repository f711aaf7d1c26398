"""Llama 3.3 presets (torchtune names); tokenizer and general builders are Llama 3's."""

from raytune_chat._lazy import lazy_exports

# Model builders need torch; imported on first use, so processes that only tokenize
# (Ray Data actors unpickling a tokenizer) start without it.
__getattr__ = lazy_exports(
    __name__,
    {
        **dict.fromkeys(
            [
                "llama3_3_70b",
                "lora_llama3_3_70b",
                "qlora_llama3_3_70b",
            ],
            "raytune_chat.models.llama3_3._model_builders",
        ),
    },
)

__all__ = [
    "llama3_3_70b",
    "lora_llama3_3_70b",
    "qlora_llama3_3_70b",
]
