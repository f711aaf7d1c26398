"""Generation from a fine-tuned model: sampling, the loop, prompts, and the stop share.

Plain torch (no Ray): the `generate` recipe, each actor of `generate_batch`, and a training
run's end-of-run check (`stop_token_share`) all use the same loop.
"""

from raytune_chat.generation._chat_model import Answer, ChatModel, generation_device
from raytune_chat.generation._generate import Generation, StopReason, generate
from raytune_chat.generation._model import load_generation_model, read_peft_adapter
from raytune_chat.generation._prompts import (
    chat_prompt,
    first_user_turn_prompt,
    messages_from_prompt,
    prompt_before_first_answer,
    validation_prompts,
)
from raytune_chat.generation._sampling import is_greedy, sample_next_token
from raytune_chat.generation._settings import (
    BatchGenerateSettings,
    GenerateSettings,
    PoolSettings,
    PromptSettings,
    parse_generate_settings,
)
from raytune_chat.generation._stop_share import stop_share_record, stop_token_share

__all__ = [
    "Answer",
    "BatchGenerateSettings",
    "ChatModel",
    "GenerateSettings",
    "Generation",
    "PoolSettings",
    "PromptSettings",
    "StopReason",
    "chat_prompt",
    "first_user_turn_prompt",
    "generate",
    "generation_device",
    "is_greedy",
    "load_generation_model",
    "messages_from_prompt",
    "parse_generate_settings",
    "prompt_before_first_answer",
    "read_peft_adapter",
    "sample_next_token",
    "stop_share_record",
    "stop_token_share",
    "validation_prompts",
]
