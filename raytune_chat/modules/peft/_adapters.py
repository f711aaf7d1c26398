"""Adapter bookkeeping: list, freeze, extract, merge and validate LoRA parameters."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Literal

import torch
from torch import nn

from raytune_chat.modules.low_precision import dequantize

__all__ = [
    "LORA_ATTN_MODULES",
    "get_adapter_params",
    "set_trainable_params",
    "get_adapter_state_dict",
    "get_lora_module_names",
    "get_merged_lora_ckpt",
    "validate_missing_and_unexpected_for_lora",
]

LORA_ATTN_MODULES = Literal["q_proj", "k_proj", "v_proj", "output_proj"]

_ADAPTER_MARKERS = (".lora_a.", ".lora_b.")
_MAGNITUDE = ".magnitude"  # DoRA's per-row magnitude vector


def _is_adapter_key(key: str) -> bool:
    return any(marker in key for marker in _ADAPTER_MARKERS) or key.endswith(_MAGNITUDE)


def get_adapter_params(model: nn.Module) -> dict[str, nn.Parameter]:
    """Collect the adapter parameters of every module that declares ``adapter_params()``.

    Args:
        model: A model containing ``LoRALinear`` layers.

    Returns:
        Fully qualified parameter name -> parameter.

    Example:
        >>> from raytune_chat.modules.peft import LoRALinear
        >>> sorted(get_adapter_params(nn.Sequential(LoRALinear(4, 4, rank=2, alpha=2.0))))
        ['0.lora_a.weight', '0.lora_b.weight']
    """
    params: dict[str, nn.Parameter] = {}
    for module_name, module in model.named_modules():
        if not callable(getattr(module, "adapter_params", None)):
            continue
        for param_name in module.adapter_params():
            full_name = f"{module_name}.{param_name}" if module_name else param_name
            params[full_name] = module.get_parameter(param_name)
    return params


def set_trainable_params(model: nn.Module, adapter_params: Mapping[str, nn.Parameter]) -> None:
    """Freeze every parameter except those named in ``adapter_params``.

    Args:
        model: The model to freeze.
        adapter_params: Output of :func:`get_adapter_params` (only the names are used).

    Example:
        >>> from raytune_chat.modules.peft import LoRALinear
        >>> m = nn.Sequential(LoRALinear(4, 4, rank=2, alpha=2.0))
        >>> set_trainable_params(m, get_adapter_params(m))
        >>> [n for n, p in m.named_parameters() if p.requires_grad]
        ['0.lora_a.weight', '0.lora_b.weight']
    """
    for name, param in model.named_parameters():
        param.requires_grad_(name in adapter_params)


def get_adapter_state_dict(
    state_dict: Mapping[str, torch.Tensor], device: str | torch.device | None = "cpu"
) -> dict[str, torch.Tensor]:
    """Keep only the adapter entries (``*.lora_a.*``, ``*.lora_b.*``, DoRA's ``*.magnitude``).

    Args:
        state_dict: A full model state dict.
        device: Move the kept tensors here; None leaves them where they are.

    Returns:
        The adapter-only state dict.

    Example:
        >>> sd = {"w.weight": torch.zeros(1), "w.lora_a.weight": torch.ones(1)}
        >>> list(get_adapter_state_dict(sd))
        ['w.lora_a.weight']
    """
    return {
        k: (v.to(device) if device is not None else v)
        for k, v in state_dict.items()
        if _is_adapter_key(k)
    }


def get_lora_module_names(
    lora_attn_modules: Iterable[str], apply_lora_to_mlp: bool, apply_lora_to_output: bool
) -> list[str]:
    """Module names that carry LoRA, in torchtune's vocabulary (for ``adapter_config``).

    Example:
        >>> get_lora_module_names(["q_proj", "v_proj"], True, False)
        ['q_proj', 'v_proj', 'w1', 'w2', 'w3']
    """
    names = list(lora_attn_modules)
    if apply_lora_to_mlp:
        names += ["w1", "w2", "w3"]
    if apply_lora_to_output:
        names.append("output")
    return names


def get_merged_lora_ckpt(
    state_dict: Mapping[str, torch.Tensor], rank: int, alpha: float
) -> dict[str, torch.Tensor]:
    """Fold each LoRA update into its base weight: ``W + (alpha / rank) * B @ A``.

    A DoRA module (one with a ``magnitude`` entry) also rescales each row of the merged
    weight to its magnitude: ``m / ||W + s B A|| * (W + s B A)``. NF4 base weights (QLoRA)
    are dequantized. The merge is computed in fp32 and cast back to the weight's dtype
    (an NF4 weight's dtype is the one it was quantized from). Neither the input
    mapping nor its tensors are modified (on CPU ``model.state_dict()`` shares storage with
    the live model), so the merged weights are new tensors.

    Args:
        state_dict: Model state dict including ``lora_a`` / ``lora_b`` entries.
        rank: LoRA rank used in training.
        alpha: LoRA alpha used in training.

    Returns:
        A state dict with base names only, loadable into the non-LoRA model.

    Example:
        >>> sd = {"p.weight": torch.zeros(2, 2), "p.lora_a.weight": torch.ones(1, 2),
        ...       "p.lora_b.weight": torch.ones(2, 1)}
        >>> get_merged_lora_ckpt(sd, rank=1, alpha=2.0)["p.weight"].tolist()
        [[2.0, 2.0], [2.0, 2.0]]
    """
    merged = {k: dequantize(v) for k, v in state_dict.items() if not _is_adapter_key(k)}
    modules = {k[: -len(".lora_a.weight")] for k in state_dict if k.endswith(".lora_a.weight")}
    for module in sorted(modules):
        weight = merged[f"{module}.weight"]
        lora_a = state_dict[f"{module}.lora_a.weight"].float()
        lora_b = state_dict[f"{module}.lora_b.weight"].float()
        full = weight.float() + ((alpha / rank) * (lora_b @ lora_a)).to(weight.device)
        magnitude = state_dict.get(f"{module}{_MAGNITUDE}")
        if magnitude is not None:
            scale = magnitude.float().to(weight.device) / torch.linalg.norm(full, dim=1)
            full = full * scale.view(-1, 1)
        merged[f"{module}.weight"] = full.to(weight.dtype)
    return merged


def validate_missing_and_unexpected_for_lora(
    lora_attn_modules: Iterable[str] | None = None,
    apply_lora_to_mlp: bool | None = None,
    apply_lora_to_output: bool | None = None,
    state_dict_keys: Iterable[str] | None = None,
    base_missing: Iterable[str] | None = None,
    base_unexpected: Iterable[str] | None = None,
    lora_missing: Iterable[str] | None = None,
    lora_unexpected: Iterable[str] | None = None,
) -> None:
    """Check the missing/unexpected keys of two ``load_state_dict(strict=False)`` calls.

    Loading a base checkpoint may miss only adapter keys; loading an adapter checkpoint may
    miss only base keys; neither may bring unexpected keys. When the LoRA configuration
    (``lora_attn_modules`` etc.) is given, the adapter keys missing from the base load must
    also belong to configured modules.

    Args:
        lora_attn_modules: Attention projections that carry LoRA.
        apply_lora_to_mlp: Whether ``w1``/``w2``/``w3`` carry LoRA.
        apply_lora_to_output: Whether ``output`` carries LoRA.
        state_dict_keys: Unused; accepted for torchtune signature compatibility.
        base_missing: Missing keys from loading the base weights.
        base_unexpected: Unexpected keys from loading the base weights.
        lora_missing: Missing keys from loading the adapter weights.
        lora_unexpected: Unexpected keys from loading the adapter weights.

    Raises:
        AssertionError: Naming the first offending key.

    Example:
        >>> validate_missing_and_unexpected_for_lora(
        ...     ["q_proj"], False, False, base_missing=["layers.0.attn.q_proj.lora_a.weight"])
    """
    del state_dict_keys
    allowed = None
    if lora_attn_modules is not None:
        allowed = set(
            get_lora_module_names(
                lora_attn_modules, bool(apply_lora_to_mlp), bool(apply_lora_to_output)
            )
        )
    for key in base_missing or ():
        if not _is_adapter_key(key):
            raise AssertionError(f"Missing non-LoRA key {key} from base model dict")
        module = key.removesuffix(_MAGNITUDE).split(".lora_")[0].rsplit(".", 1)[-1]
        if allowed is not None and module not in allowed:
            raise AssertionError(f"Missing LoRA key {key} for a module without LoRA")
    for key in lora_missing or ():
        if _is_adapter_key(key):
            raise AssertionError(f"Missing LoRA key {key} from adapter state dict")
    if base_unexpected:
        raise AssertionError(f"Unexpected key {next(iter(base_unexpected))} loading base model")
    if lora_unexpected:
        raise AssertionError(f"Unexpected key {next(iter(lora_unexpected))} loading adapter")
