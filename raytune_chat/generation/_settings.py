"""How the generation recipes read their config: torchtune's generation keys, checked up front.

Sections `model`, `tokenizer` (required) and `checkpointer` are checked against their
builders' signatures; every top-level key is a field here, anything else is an error naming
the key (as for the training recipes).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Literal

from raytune_chat.config import ConfigError, check_section
from raytune_chat.training.recipe_config import build_settings

__all__ = [
    "BatchGenerateSettings",
    "GenerateSettings",
    "PoolSettings",
    "PromptSettings",
    "parse_generate_settings",
]

SECTIONS = {"model": True, "tokenizer": True, "checkpointer": False}


@dataclass(frozen=True)
class PromptSettings:
    """The `prompt:` section (torchtune's): an optional system message and the user's."""

    system: str | None = None
    user: str = "Tell me a joke."


@dataclass(frozen=True)
class GenerateSettings:
    """Top-level keys of `generate`, with torchtune 0.6.1's names and its config's defaults.

    `adapter` (ours): a PEFT adapter folder (``adapter_model.safetensors`` +
    ``adapter_config.json``, written by our recipes or by `peft`) applied unmerged on the
    checkpointer's base weights; the `model` section must be the matching ``lora_`` builder.
    `chat` (ours, ``--chat`` on the command line): talk in turns instead of one prompt.
    `quantizer` is accepted as null only.
    """

    output_dir: str | None = None
    device: Literal["cuda", "cpu"] = "cuda"
    dtype: Literal["bf16", "fp32", "fp16"] = "bf16"
    seed: int | None = None
    prompt: PromptSettings = field(default_factory=PromptSettings)
    max_new_tokens: int = 300
    temperature: float = 0.6
    top_k: int | None = 300
    enable_kv_cache: bool = True
    quantizer: None = None
    adapter: str | None = None
    chat: bool = False


@dataclass(frozen=True)
class PoolSettings:
    """The `ray:` section of `generate_batch`: the actor pool, one model per actor.

    Attributes:
        num_actors: actors (models); null = as many as the cluster holds, leaving a CPU
            for reading the prompts.
        cpus_per_actor: CPUs each actor holds (fractional on CPU-only clusters).
        gpus_per_actor: GPUs each actor holds (1 to generate on GPUs).
    """

    num_actors: int | None = None
    cpus_per_actor: float = 0.5
    gpus_per_actor: float = 0.0


@dataclass(frozen=True)
class BatchGenerateSettings(GenerateSettings):
    """`generate`'s keys plus the prompts file (JSONL), the output file and the pool.

    Each line of `prompts_file` is ``{"prompt": ..., "system"?: ...}`` or
    ``{"messages": [...]}``; `output_file` gets one JSON line per prompt line, in order.
    """

    prompts_file: str = ""
    output_file: str = ""
    ray: PoolSettings = field(default_factory=PoolSettings)


def parse_generate_settings(cfg: dict[str, Any], cls: type = GenerateSettings) -> Any:
    """Check `cfg`'s sections and keys and return its settings (`cls`).

    Raises:
        ConfigError: naming the first offending key.

    Example:
        >>> llama3 = "raytune_chat.models.llama3"
        >>> s = parse_generate_settings({
        ...     "model": {"_component_": f"{llama3}.llama3_8b"},
        ...     "tokenizer": {"_component_": f"{llama3}.llama3_tokenizer", "path": "t.model"},
        ...     "prompt": {"user": "Hi"}, "top_k": 1})
        >>> s.prompt.user, s.top_k, s.enable_kv_cache
        ('Hi', 1, True)
    """
    for name, required in SECTIONS.items():
        if cfg.get(name) is None:
            if required:
                raise ConfigError(name, "required section is missing")
            continue
        check_section(cfg[name], key=name)
    if cfg.get("quantizer") is not None:
        raise ConfigError("quantizer", "quantized generation is not supported; set it to null")
    values = {k: v for k, v in cfg.items() if k not in SECTIONS}
    nested = {
        "prompt": build_settings(PromptSettings, values.pop("prompt", None) or {}, "prompt."),
    }
    if issubclass(cls, BatchGenerateSettings):
        nested["ray"] = build_settings(PoolSettings, values.pop("ray", None) or {}, "ray.")
    settings = dataclasses.replace(build_settings(cls, values, ""), **nested)
    if settings.max_new_tokens < 1:
        raise ConfigError("max_new_tokens", "must be at least 1")
    if settings.temperature < 0:
        raise ConfigError("temperature", "must be 0 (greedy) or more")
    if settings.top_k is not None and settings.top_k < 1:
        raise ConfigError("top_k", "must be at least 1 (1 = greedy), or null for no cut")
    return settings
