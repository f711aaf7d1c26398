"""Check a whole recipe config before anything runs."""

from __future__ import annotations

import sys
from typing import Any

from raytune_chat.config import ConfigError, check_section
from raytune_chat.recipes._settings import (
    SECTIONS,
    TORCHTUNE_KEYS_WITHOUT_EFFECT,
    RecipeSettings,
    parse_settings,
)

__all__ = ["validate_config"]


def validate_config(cfg: dict[str, Any], *, max_workers: int | None = None) -> RecipeSettings:
    """Bind every `_component_` section to its callable's signature and check the top-level keys.

    Nothing is built or called. Errors name the offending key. Each torchtune key that has
    no effect here (`TORCHTUNE_KEYS_WITHOUT_EFFECT`) gets one warning line on stderr.

    Args:
        cfg: a loaded config (overrides applied, `${...}` resolved).
        max_workers: the most `ray.num_workers` the recipe allows (1 for single device).

    Returns:
        The parsed top-level settings.

    Raises:
        ConfigError: naming the first offending key.

    Example:
        >>> from raytune_chat.config import load_config
        >>> validate_config(load_config("tiny/llama3_lora_cpu")).device
        'cpu'
    """
    settings = parse_settings(cfg)
    for key in cfg:
        if key in TORCHTUNE_KEYS_WITHOUT_EFFECT:
            reason = TORCHTUNE_KEYS_WITHOUT_EFFECT[key]
            print(f"raytune-chat: warning: `{key}` has no effect: {reason}", file=sys.stderr)
    for name, (required, provided) in SECTIONS.items():
        section = cfg.get(name)
        if section is None and not required:
            continue
        check_section(section, key=name, provided=provided)
    if settings.enable_activation_offloading:
        raise ConfigError("enable_activation_offloading", "is not supported yet; set it to False")
    if max_workers is not None and settings.ray.num_workers > max_workers:
        raise ConfigError(
            "ray.num_workers",
            f"this recipe runs at most {max_workers} worker(s); use lora_finetune_distributed",
        )
    return settings
