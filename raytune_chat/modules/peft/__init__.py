"""Parameter-efficient fine-tuning: LoRA layers and adapter state helpers."""

from raytune_chat.modules.peft._adapters import (
    LORA_ATTN_MODULES,
    get_adapter_params,
    get_adapter_state_dict,
    get_lora_module_names,
    get_merged_lora_ckpt,
    set_trainable_params,
    validate_missing_and_unexpected_for_lora,
)
from raytune_chat.modules.peft._dora import DoRALinear
from raytune_chat.modules.peft._lora import LoRALinear

__all__ = [
    "DoRALinear",
    "LORA_ATTN_MODULES",
    "LoRALinear",
    "get_adapter_params",
    "get_adapter_state_dict",
    "get_lora_module_names",
    "get_merged_lora_ckpt",
    "set_trainable_params",
    "validate_missing_and_unexpected_for_lora",
]
