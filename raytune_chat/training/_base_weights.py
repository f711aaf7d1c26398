"""Load base weights into a model built on the meta device, one tensor at a time.

The model is built with ``torch.device("meta")`` (no memory), then each checkpoint tensor is
cast to the parameter's dtype on the target device and put in its place; the weight of a
layer with ``quantize_base`` (QLoRA) is quantized to NF4 there and then, so the
full-precision copy is freed before the next tensor is read. Peak memory is the finished
model plus one tensor, never the bf16 model. The adapters, absent from a base checkpoint,
are then created and initialised on the device, and DoRA magnitudes are set from the
loaded weights.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
from collections.abc import Callable, Iterable

import torch
from torch import nn

from raytune_chat.modules.low_precision import to_nf4
from raytune_chat.modules.peft import DoRALinear, LoRALinear

__all__ = ["initialize_adapters", "initialize_dora_magnitudes", "load_base_weights"]


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    libc = ctypes.util.find_library("c")
    return getattr(ctypes.CDLL(libc), "malloc_trim", None) if libc else None


def _release_freed_memory() -> None:
    """Hand freed heap memory back to the OS (glibc only; elsewhere a no-op).

    torchao's quantizer allocates float32 scratch about 4x the tensor it quantizes; glibc keeps
    those freed blocks in its heap, between the live NF4 buffers, so without a trim the
    process's RSS grows by about twice the NF4 model's size while loading.
    """
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


def load_base_weights(
    model: nn.Module,
    weights: Iterable[tuple[str, torch.Tensor]],
    *,
    device: torch.device | str = "cpu",
) -> tuple[list[str], list[str]]:
    """Put each ``(name, tensor)`` of ``weights`` into ``model`` as a frozen parameter.

    Args:
        model: A model whose base parameters may be on the meta device.
        weights: torchtune-named tensors, e.g. a checkpointer's ``iter_model_weights()``.
        device: Where the parameters go (quantization to NF4 happens there too).

    Returns:
        ``(missing, unexpected)`` names, as ``load_state_dict(strict=False)`` reports them;
        check them with ``validate_missing_and_unexpected_for_lora``.

    Raises:
        ValueError: When a tensor's shape differs from its parameter's, naming both.

    Example:
        >>> with torch.device("meta"):
        ...     model = nn.Sequential(nn.Linear(2, 2, bias=False))
        >>> load_base_weights(model, [("0.weight", torch.eye(2)), ("9.bias", torch.ones(1))])
        ([], ['9.bias'])
        >>> model[0].weight.tolist()
        [[1.0, 0.0], [0.0, 1.0]]
    """
    params = dict(model.named_parameters())
    loaded: set[str] = set()
    unexpected: list[str] = []
    for name, tensor in weights:
        target = params.get(name)
        if target is None:
            unexpected.append(name)
            continue
        if tuple(tensor.shape) != tuple(target.shape):
            raise ValueError(
                f"checkpoint tensor {name} has shape {tuple(tensor.shape)}, the model's "
                f"parameter {tuple(target.shape)}: does the model section match the checkpoint?"
            )
        module_name, _, attr = name.rpartition(".")
        module = model.get_submodule(module_name)
        value = tensor.to(device=device, dtype=target.dtype)
        if attr == "weight" and getattr(module, "quantize_base", False):
            value = to_nf4(value)
            _release_freed_memory()
        setattr(module, attr, nn.Parameter(value, requires_grad=False))
        loaded.add(name)
    return [name for name in params if name not in loaded], unexpected


def initialize_adapters(model: nn.Module, device: torch.device | str = "cpu") -> None:
    """Create every LoRA/DoRA adapter on ``device`` and initialise it as a fresh adapter.

    Example:
        >>> with torch.device("meta"):
        ...     layer = LoRALinear(4, 4, rank=2, alpha=2.0)
        >>> initialize_adapters(layer)
        >>> layer.lora_b.weight.abs().sum().item(), layer.lora_a.weight.is_meta
        (0.0, False)
    """
    for module in model.modules():
        if isinstance(module, LoRALinear):
            module.lora_a.to_empty(device=device)
            module.lora_b.to_empty(device=device)
            module.initialize_parameters()
        if isinstance(module, DoRALinear):
            module.magnitude = nn.Parameter(torch.empty_like(module.magnitude, device=device))


def initialize_dora_magnitudes(model: nn.Module) -> int:
    """Set each DoRA magnitude to the row norms of its loaded weight (torchtune's
    ``initialize_dora_magnitude``); return how many layers were set.

    Example:
        >>> initialize_dora_magnitudes(nn.Sequential(DoRALinear(4, 4, rank=2, alpha=2.0)))
        1
    """
    layers = [m for m in model.modules() if isinstance(m, DoRALinear)]
    for layer in layers:
        layer.initialize_dora_magnitude()
    return len(layers)
