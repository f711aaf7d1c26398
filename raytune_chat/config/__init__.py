"""YAML configs with `_component_` sections, checked before anything runs.

torchtune's config format and library: loaded, overridden (`key=value`, `~key`) and
interpolated (`${output_dir}`, `${oc.env:HOME}`) with OmegaConf as `tune run` does, then
resolved through an explicit registry of our builders (plus the `torchtune.*` names its
Llama2/Llama3 LoRA configs use).

Example:
    >>> cfg = load_config("tiny/llama3_lora_cpu", ["epochs=2", "output_dir=/tmp/x"])
    >>> cfg["epochs"], cfg["metric_logger"]["log_dir"]
    (2, '/tmp/x/logs')
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from raytune_chat.config._assets import asset_path
from raytune_chat.config._builtin import (
    builtin_config_dir,
    copy_builtin_config,
    find_config,
    list_builtin_configs,
)
from raytune_chat.config._errors import ConfigError
from raytune_chat.config._instantiate import check_section, instantiate
from raytune_chat.config._load import apply_overrides, load_yaml, resolve_interpolations
from raytune_chat.config._registry import (
    component_names,
    register_component,
    resolve_component,
    translate_alias,
)

__all__ = [
    "ConfigError",
    "apply_overrides",
    "asset_path",
    "builtin_config_dir",
    "check_section",
    "copy_builtin_config",
    "component_names",
    "find_config",
    "instantiate",
    "list_builtin_configs",
    "load_config",
    "load_yaml",
    "register_component",
    "resolve_component",
    "resolve_interpolations",
    "translate_alias",
]


def load_config(name: str | Path, overrides: Sequence[str] = ()) -> dict[str, Any]:
    """Load a built-in or file config, apply overrides, then resolve `${...}` (OmegaConf).

    Args:
        name: built-in name (``llama3/8B_lora_single_device``) or a YAML path.
        overrides: torchtune-style items (``epochs=15``, ``~profiler``, ``model=<dotpath>``,
            ``model.lora_attn_modules=[q_proj,v_proj]``).

    Returns:
        The config as plain nested dicts. Checking sections is the recipe's job
        (see `raytune_chat.recipes.validate`), since only it knows what it passes itself.

    Raises:
        ConfigError: naming the file and line of broken YAML, the override or key at fault,
            or the key whose `${...}` cannot be resolved.
    """
    cfg = load_yaml(find_config(str(name)))
    return resolve_interpolations(apply_overrides(cfg, overrides))
