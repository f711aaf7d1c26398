"""Activation checkpointing of a decoder's layers and peak-memory readout."""

from __future__ import annotations

import resource
import sys

import torch
from torch import nn
from torch.distributed.algorithms._checkpoint.checkpoint_wrapper import (
    apply_activation_checkpointing,
)

__all__ = ["peak_memory_gib", "set_activation_checkpointing"]


def set_activation_checkpointing(model: nn.Module) -> None:
    """Recompute each layer of `model.layers` in backward instead of storing activations.

    State-dict keys are unchanged (the wrapper strips its own prefix).

    Example:
        >>> m = nn.Module(); m.layers = nn.ModuleList([nn.Linear(2, 2)])
        >>> set_activation_checkpointing(m); list(m.state_dict())
        ['layers.0.weight', 'layers.0.bias']
    """
    layers = set(model.layers)
    apply_activation_checkpointing(model, check_fn=lambda module: module in layers)


def peak_memory_gib(device: torch.device) -> float:
    """Peak memory of this process: allocated GPU memory on CUDA, else max RSS (GiB)."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**30
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / 2**30 if sys.platform == "darwin" else rss / 2**20
