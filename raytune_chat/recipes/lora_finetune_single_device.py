"""`lora_finetune_single_device`: LoRA fine-tuning on one Ray Train worker (one GPU or CPU).

Run it as ``raytune-chat run lora_finetune_single_device --config llama3/8B_lora_single_device``.
"""

from __future__ import annotations

from typing import Any

from raytune_chat.recipes._driver import run_lora_finetune

__all__ = ["recipe_main"]


def recipe_main(cfg: dict[str, Any]) -> dict[str, Any]:
    """Train with `cfg` on a single worker; return the run summary."""
    return run_lora_finetune(cfg, max_workers=1)
