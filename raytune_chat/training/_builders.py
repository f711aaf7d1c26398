"""Build the training parts of a LoRA run from its config (plain torch, no Ray).

Each helper does one thing: the model with its base weights loaded (streamed into a
meta-device model, NF4 for QLoRA) and only adapters trainable, the optimizer over the
adapters, the schedule, the loss, the metric loggers, the profiler.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from typing import Any

import torch
from torch import nn

from raytune_chat.config import instantiate
from raytune_chat.modules.peft import (
    get_adapter_params,
    set_trainable_params,
    validate_missing_and_unexpected_for_lora,
)
from raytune_chat.training._activations import set_activation_checkpointing
from raytune_chat.training._base_weights import (
    initialize_adapters,
    initialize_dora_magnitudes,
    load_base_weights,
)
from raytune_chat.training._precision import get_dtype
from raytune_chat.training.metric_logging import DiskLogger, StdoutLogger
from raytune_chat.training.profiler import setup_torch_profiler
from raytune_chat.training.recipe_config import RecipeSettings

__all__ = [
    "build_loss",
    "build_lr_scheduler",
    "build_metric_loggers",
    "build_model",
    "build_optimizer",
    "build_profiler",
    "load_base",
]

log = logging.getLogger(__name__)


@contextlib.contextmanager
def _default_dtype(dtype: torch.dtype) -> Iterator[None]:
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        yield
    finally:
        torch.set_default_dtype(previous)


def _checkpointer(cfg: dict[str, Any]) -> Any:
    if cfg.get("checkpointer") is None:
        log.warning("no `checkpointer` in the config: the base model starts from random init")
        print("raytune-chat: no checkpointer configured, base weights are RANDOM INIT", flush=True)
        return None
    return instantiate(cfg["checkpointer"], key="checkpointer")


def load_base(
    model: nn.Module, cfg: dict[str, Any], checkpointer: Any, device: torch.device
) -> None:
    """Stream the checkpointer's base weights into `model` (built on the meta device).

    One tensor at a time, cast to the run's dtype on `device`, NF4-quantized there for
    QLoRA: the full-precision model is never held. Then the adapters are created fresh.
    """
    missing, unexpected = load_base_weights(model, checkpointer.iter_model_weights(), device=device)
    model_cfg = cfg["model"]
    validate_missing_and_unexpected_for_lora(
        lora_attn_modules=model_cfg.get("lora_attn_modules"),
        apply_lora_to_mlp=model_cfg.get("apply_lora_to_mlp"),
        apply_lora_to_output=model_cfg.get("apply_lora_to_output"),
        base_missing=missing,
        base_unexpected=unexpected,
    )
    initialize_adapters(model, device)


def build_model(
    cfg: dict[str, Any], settings: RecipeSettings, device: torch.device
) -> tuple[nn.Module, Any]:
    """Build the LoRA model in the run's dtype, load base weights, freeze all but adapters.

    With a checkpointer the model is built on the meta device and filled tensor by tensor
    (see `load_base`); without one it is built with random weights. DoRA magnitudes are then
    set from the base weights, as torchtune does after loading.

    Returns:
        (model on `device`, checkpointer or None).
    """
    if settings.seed is not None:
        torch.manual_seed(settings.seed)
    checkpointer = _checkpointer(cfg)
    with _default_dtype(get_dtype(settings.dtype)):
        if checkpointer is None:
            model = instantiate(cfg["model"], key="model").to(device)
        else:
            with torch.device("meta"):
                model = instantiate(cfg["model"], key="model")
            load_base(model, cfg, checkpointer, device)
    initialize_dora_magnitudes(model)
    set_trainable_params(model, get_adapter_params(model))
    if settings.enable_activation_checkpointing:
        set_activation_checkpointing(model)
    if settings.compile:
        for layer in model.layers:
            layer.compile()
    return model, checkpointer


def build_optimizer(
    cfg: dict[str, Any], model: nn.Module, device: torch.device
) -> torch.optim.Optimizer:
    """The configured optimizer over trainable parameters; `fused` only where CUDA runs it."""
    section = dict(cfg["optimizer"])
    if section.get("fused") and device.type != "cuda":
        section["fused"] = False
    params = [p for p in model.parameters() if p.requires_grad]
    return instantiate(section, params=params, key="optimizer")


def build_lr_scheduler(
    cfg: dict[str, Any], optimizer: torch.optim.Optimizer, num_training_steps: int
) -> torch.optim.lr_scheduler.LRScheduler:
    """The configured schedule, or a constant one when the config has none."""
    if cfg.get("lr_scheduler") is None:
        return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda _: 1.0)
    return instantiate(
        cfg["lr_scheduler"],
        optimizer=optimizer,
        num_training_steps=num_training_steps,
        key="lr_scheduler",
    )


def build_loss(cfg: dict[str, Any], model: nn.Module, settings: RecipeSettings) -> nn.Module:
    """The configured loss; a chunked loss makes the model return logits in chunks."""
    loss_fn = instantiate(cfg["loss"], key="loss")
    if hasattr(loss_fn, "num_output_chunks") and hasattr(model, "set_num_output_chunks"):
        model.set_num_output_chunks(loss_fn.num_output_chunks)
    if settings.compile:
        loss_fn = torch.compile(loss_fn)
    return loss_fn


def build_metric_loggers(cfg: dict[str, Any], settings: RecipeSettings) -> list[Any]:
    """`<output_dir>/metrics.jsonl`, stdout, and the configured `metric_logger` if any."""
    loggers: list[Any] = [
        DiskLogger(log_dir=settings.output_dir, filename="metrics.jsonl"),
        StdoutLogger(),
    ]
    if cfg.get("metric_logger") is not None:
        loggers.append(instantiate(cfg["metric_logger"], key="metric_logger"))
    return loggers


def build_profiler(cfg: dict[str, Any]) -> Any:
    """The configured `profiler`, or one that does nothing."""
    if cfg.get("profiler") is None:
        return setup_torch_profiler(enabled=False)
    return instantiate(cfg["profiler"], key="profiler")
