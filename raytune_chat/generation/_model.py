"""The model a generation config describes: base weights, and a PEFT adapter kept unmerged."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file
from torch import nn

from raytune_chat.config import ConfigError, instantiate
from raytune_chat.models.convert_weights import hf_to_tune, peft_to_tune_adapter_weights
from raytune_chat.modules.peft import LoRALinear, get_adapter_params
from raytune_chat.training import (
    get_dtype,
    initialize_adapters,
    initialize_dora_magnitudes,
    load_base_weights,
)
from raytune_chat.training.checkpointing import ADAPTER_CONFIG_FNAME, ADAPTER_MODEL_FNAME

__all__ = ["load_generation_model", "read_peft_adapter"]


def read_peft_adapter(path: str | Path, model: nn.Module) -> dict[str, torch.Tensor]:
    """The adapter in PEFT folder `path` (ours, or one `peft` saved) in `model`'s names,
    with any base weight `peft` saved beside it (a targeted ``lm_head``).

    Raises:
        ConfigError: on ``adapter`` when the folder lacks the PEFT files, or its rank or
            alpha differ from the model section's LoRA (the output would silently differ).
    """
    folder = Path(path)
    weights = folder / f"{ADAPTER_MODEL_FNAME}.safetensors"
    config_file = folder / ADAPTER_CONFIG_FNAME
    for needed in (weights, config_file):
        if not needed.is_file():
            raise ConfigError("adapter", f"{needed} not found: is {folder} a PEFT adapter folder?")
    config = json.loads(config_file.read_text())
    lora = next((m for m in model.modules() if isinstance(m, LoRALinear)), None)
    if lora is None:
        raise ConfigError(
            "adapter", "the model section builds no LoRA layers (use a lora_ builder)"
        )
    for key, ours in (("r", lora.rank), ("lora_alpha", lora.alpha)):
        if float(config.get(key, -1)) != float(ours):
            raise ConfigError(
                "adapter", f"{config_file} has {key}={config.get(key)}, the model section {ours}"
            )
    attn = model.layers[0].attn
    shape = dict(
        num_heads=attn.num_heads,
        num_kv_heads=attn.num_kv_heads,
        dim=attn.embed_dim,
        head_dim=attn.head_dim,
    )
    # `peft` saves the base weight of a targeted lm_head / embedding too
    # (save_embedding_layers="auto", for resized vocabularies); it goes in as a base weight.
    state = load_file(weights)
    saved_base = {
        k.removeprefix("base_model.model.").replace(".base_layer.", "."): v
        for k, v in state.items()
        if ".base_layer." in k
    }
    adapter = {k: v for k, v in state.items() if ".base_layer." not in k}
    return peft_to_tune_adapter_weights(adapter, **shape) | hf_to_tune(saved_base, **shape)


def _check_filled(missing: list[str], unexpected: list[str], key: str) -> None:
    """Every parameter in `missing` had to come from the weights `key` names."""
    if unexpected:
        raise ConfigError(key, f"holds {unexpected[0]!r}, which the model section has not")
    if missing:
        raise ConfigError(key, f"lacks {missing[0]!r} ({len(missing)} model weights missing)")


def _build(cfg: dict[str, Any], device: torch.device) -> nn.Module:
    """The model with its base weights (the checkpointer's, or random) and fresh adapters."""
    if cfg.get("checkpointer") is None:
        print("raytune-chat: no checkpointer configured, base weights are RANDOM INIT")
        return instantiate(cfg["model"], key="model").to(device)
    with torch.device("meta"):
        model = instantiate(cfg["model"], key="model")
    checkpointer = instantiate(cfg["checkpointer"], key="checkpointer")
    missing, unexpected = load_base_weights(model, checkpointer.iter_model_weights(), device=device)
    adapters = get_adapter_params(model)
    _check_filled([k for k in missing if k not in adapters], unexpected, "checkpointer")
    initialize_adapters(model, device)
    initialize_dora_magnitudes(model)
    return model


def load_generation_model(cfg: dict[str, Any], *, device: torch.device, dtype: str) -> nn.Module:
    """Build `cfg["model"]` in eval mode on `device` with the checkpointer's base weights and,
    when `cfg["adapter"]` names a PEFT folder, that adapter in the LoRA layers, unmerged.

    Without a checkpointer the base weights are random (seeded by the caller); without an
    adapter a LoRA model's adapters are zero, so it computes the base model.

    Raises:
        ConfigError: on ``checkpointer`` or ``adapter`` when their weights do not fill the
            model exactly (a key missing, or one the model has not).
    """
    previous = torch.get_default_dtype()
    torch.set_default_dtype(get_dtype(dtype))
    try:
        model = _build(cfg, device)
    finally:
        torch.set_default_dtype(previous)
    if cfg.get("adapter"):
        adapter = read_peft_adapter(cfg["adapter"], model)
        missing, unexpected = load_base_weights(model, adapter.items(), device=device)
        adapters = get_adapter_params(model)
        _check_filled([k for k in missing if k in adapters], unexpected, "adapter")
    for param in model.parameters():
        param.requires_grad_(False)
    return model.eval()
