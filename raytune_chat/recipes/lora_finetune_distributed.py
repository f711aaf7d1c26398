"""`lora_finetune_distributed`: the same LoRA loop on `ray.num_workers` data-parallel workers.

DDP by default (gloo on CPU, nccl on GPU); `ray.strategy: fsdp` shards the model instead.
Run it as ``raytune-chat run lora_finetune_distributed --config llama3/8B_lora``.
"""

from __future__ import annotations

from typing import Any

from raytune_chat.recipes._driver import run_lora_finetune

__all__ = ["recipe_main"]


def recipe_main(cfg: dict[str, Any]) -> dict[str, Any]:
    """Train with `cfg` on `ray.num_workers` workers; return the run summary."""
    return run_lora_finetune(cfg)
