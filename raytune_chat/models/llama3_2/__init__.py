"""Llama 3.2 text presets (torchtune names); tokenizer and general builders are Llama 3's."""

from raytune_chat._lazy import lazy_exports

# Model builders need torch; imported on first use, so processes that only tokenize
# (Ray Data actors unpickling a tokenizer) start without it.
__getattr__ = lazy_exports(
    __name__,
    {
        **dict.fromkeys(
            [
                "llama3_2_1b",
                "lora_llama3_2_1b",
                "qlora_llama3_2_1b",
                "llama3_2_3b",
                "lora_llama3_2_3b",
                "qlora_llama3_2_3b",
            ],
            "raytune_chat.models.llama3_2._model_builders",
        ),
    },
)

__all__ = [
    "llama3_2_1b",
    "llama3_2_3b",
    "lora_llama3_2_1b",
    "lora_llama3_2_3b",
    "qlora_llama3_2_1b",
    "qlora_llama3_2_3b",
]
