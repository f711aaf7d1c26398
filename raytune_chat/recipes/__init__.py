"""Recipes: `lora_finetune_single_device` and `lora_finetune_distributed` on Ray Train.

Only the driver and worker modules import Ray; building blocks live in `raytune_chat.training`.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from raytune_chat.config import ConfigError
from raytune_chat.recipes._validate import validate_config

__all__ = ["RECIPES", "get_recipe", "validate_config"]

RECIPES: dict[str, str] = {
    "lora_finetune_single_device": "raytune_chat.recipes.lora_finetune_single_device",
    "lora_finetune_distributed": "raytune_chat.recipes.lora_finetune_distributed",
}


def get_recipe(name: str) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """The `recipe_main(cfg)` of a recipe by name.

    Raises:
        ConfigError: for an unknown recipe, listing the known ones.

    Example:
        >>> get_recipe("lora_finetune_single_device").__name__
        'recipe_main'
    """
    if name not in RECIPES:
        raise ConfigError("recipe", f"unknown recipe {name!r}; known: {', '.join(RECIPES)}")
    return importlib.import_module(RECIPES[name]).recipe_main
