"""FSDP2 for the LoRA recipes: a model sharded from the start, and its state gathered whole.

`build_sharded_model` is `build_model` for `ray.strategy: fsdp`. The model is built on the
meta device, its adapters are created and initialised in full exactly as `build_model` does
(same seed, same draws: the same adapter on every rank and as under DDP), then each
transformer layer and the root are sharded with `torch.distributed.fsdp.fully_shard`
(parameters split by rows, dim 0, over all ranks), and only then is memory allocated: each
rank's own rows of the base weights are read from the checkpoint (safetensors slices,
`iter_model_weight_rows`), so no rank ever holds the full model. Base weights stay frozen.
A config without a checkpointer (random base, tiny test models) builds the full model and
then shards it.

What needs the whole model gathers it, every rank taking part (each call is a collective):
`full_adapter_state` (checkpoints, the PEFT files), `full_model_state` (merged weights),
`full_optimizer_state` / `load_optimizer_state` (optimizer state keyed by parameter name,
unsharded, so a run resumes on any number of workers).

Works with gloo on CPU and nccl on GPU (bf16 parameters, fp32 gradient reduction there).
torch's FSDP, DTensor and distributed-checkpoint modules are imported when first used (about
a second of import time a DDP or single-device run does not pay).
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from typing import Any

import torch
from torch import nn

from raytune_chat.config import instantiate
from raytune_chat.modules.peft import (
    DoRALinear,
    get_adapter_params,
    set_trainable_params,
    validate_missing_and_unexpected_for_lora,
)
from raytune_chat.training._activations import set_activation_checkpointing
from raytune_chat.training._base_weights import initialize_adapters
from raytune_chat.training._builders import _checkpointer, _default_dtype
from raytune_chat.training._precision import get_dtype
from raytune_chat.training.recipe_config import RecipeSettings

__all__ = [
    "build_sharded_model",
    "final_output_state",
    "full_adapter_state",
    "full_model_state",
    "full_optimizer_state",
    "is_sharded",
    "load_full_adapter",
    "load_optimizer_state",
    "shard_model",
    "shard_rows",
]

_WRAPPER_PREFIX = "_checkpoint_wrapped_module."


def is_sharded(model: nn.Module) -> bool:
    """True for a model sharded with `fully_shard` (never before torch's FSDP is imported).

    Example:
        >>> is_sharded(nn.Linear(2, 2))
        False
    """
    fsdp = sys.modules.get("torch.distributed.fsdp")
    return fsdp is not None and isinstance(model, fsdp.FSDPModule)


def _is_dtensor(value: Any) -> bool:
    tensor = sys.modules.get("torch.distributed.tensor")
    return tensor is not None and isinstance(value, tensor.DTensor)


def shard_rows(num_rows: int, rank: int, world_size: int) -> tuple[int, int]:
    """The rows ``[start, stop)`` of a tensor that `fully_shard` gives `rank`.

    FSDP2 splits dim 0 like ``torch.chunk``: ``ceil(rows / world)`` rows per rank, the last
    ranks get fewer (or none).

    Example:
        >>> [shard_rows(5, r, 2) for r in range(2)], shard_rows(1, 1, 2)
        ([(0, 3), (3, 5)], (1, 1))
    """
    per_rank = -(-num_rows // world_size)
    return min(rank * per_rank, num_rows), min((rank + 1) * per_rank, num_rows)


def _world() -> tuple[int, int]:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


def _mesh(device: torch.device) -> Any:
    """A 1-D `DeviceMesh` over all ranks (the process group Ray Train, or the caller, set up)."""
    from torch.distributed.device_mesh import init_device_mesh

    if not torch.distributed.is_initialized():
        raise RuntimeError("fully_shard needs torch.distributed initialised (gloo or nccl)")
    return init_device_mesh(device.type, (torch.distributed.get_world_size(),))


def shard_model(model: nn.Module, device: torch.device) -> nn.Module:
    """`fully_shard` each of `model.layers`, then the root (embeddings, norm, output).

    On CUDA parameters are gathered in bf16 and gradients reduced in fp32; on CPU the
    model's dtype is kept (gloo). Parameters on the meta device stay there (sharded),
    for `build_sharded_model` to fill. Returns `model`, now an `FSDPModule`.
    """
    from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard

    mesh = _mesh(device)
    policy = MixedPrecisionPolicy()
    if device.type == "cuda":
        policy = MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.float32)
    for layer in model.layers:
        fully_shard(layer, mesh=mesh, mp_policy=policy)
    fully_shard(model, mesh=mesh, mp_policy=policy)
    return model


def _clean(name: str) -> str:
    return name.replace(_WRAPPER_PREFIX, "")


def _trainable(model: nn.Module) -> list[tuple[str, nn.Parameter]]:
    return [(_clean(n), p) for n, p in model.named_parameters() if p.requires_grad]


@torch.no_grad()
def _put_rows(param: torch.Tensor, rows: torch.Tensor, offset: int = 0) -> None:
    """Copy rows into this rank's shard of a parameter (or a plain one), from row `offset`."""
    local = param.to_local() if _is_dtensor(param) else param
    target = local[offset : offset + rows.shape[0]]
    if tuple(target.shape) != tuple(rows.shape):
        raise ValueError(
            f"shard of shape {tuple(local.shape)} got rows {tuple(rows.shape)} at {offset}"
        )
    target.copy_(rows)


def _refuse_unsupported(model: nn.Module) -> None:
    if any(isinstance(m, DoRALinear) for m in model.modules()):
        raise NotImplementedError("ray.strategy: fsdp does not train DoRA adapters yet; use ddp")
    if any(getattr(m, "quantize_base", False) for m in model.modules()):
        raise NotImplementedError("ray.strategy: fsdp does not train QLoRA (NF4) yet; use ddp")


def build_sharded_model(
    cfg: dict[str, Any], settings: RecipeSettings, device: torch.device
) -> tuple[nn.Module, Any]:
    """`build_model` for FSDP: the LoRA model sharded over all ranks, each rank loading only
    its own rows of the base weights; adapters trainable, all else frozen.

    Every rank must call it (sharding is collective); `torch.distributed` must be set up.

    Returns:
        (sharded model on `device`, checkpointer or None).

    Raises:
        NotImplementedError: for DoRA or QLoRA models (not sharded yet; use ddp).
    """
    if settings.seed is not None:
        torch.manual_seed(settings.seed)
    checkpointer = _checkpointer(cfg)
    with _default_dtype(get_dtype(settings.dtype)):
        if checkpointer is None:  # random base: built whole, then sharded
            model = instantiate(cfg["model"], key="model").to(device)
        else:
            with torch.device("meta"):
                model = instantiate(cfg["model"], key="model")
            # The same draws as build_model's, in full on every rank: identical adapters.
            initialize_adapters(model, device)
    _refuse_unsupported(model)
    set_trainable_params(model, get_adapter_params(model))
    # The full adapters, put back into the shards once memory is allocated (meta case)
    adapters = {n: p.detach().clone() for n, p in _trainable(model)} if checkpointer else {}
    if settings.enable_activation_checkpointing:
        set_activation_checkpointing(model)
    shard_model(model, device)
    if checkpointer is not None:
        model.to_empty(device=device)  # this rank's shards only
        load_full_adapter(model, adapters)
        _load_base_rows(model, cfg, checkpointer, device)
    return model, checkpointer


def _load_base_rows(
    model: nn.Module, cfg: dict[str, Any], checkpointer: Any, device: torch.device
) -> None:
    """Fill the frozen sharded parameters with this rank's rows of the checkpoint."""
    rank, world = _world()
    params = {_clean(n): p for n, p in model.named_parameters() if not p.requires_grad}
    loaded: set[str] = set()
    unexpected: list[str] = []

    def rows_of(name: str, shape: tuple[int, ...]) -> tuple[int, int] | None:
        target = params.get(name)
        if target is None:
            unexpected.append(name)
            return None
        if tuple(shape) != tuple(target.shape):
            raise ValueError(
                f"checkpoint tensor {name} has shape {tuple(shape)}, the model's "
                f"parameter {tuple(target.shape)}: does the model section match the checkpoint?"
            )
        return shard_rows(shape[0], rank, world)

    for name, offset, rows in checkpointer.iter_model_weight_rows(rows_of):
        target = params[name]
        _put_rows(target, rows.to(device=device, dtype=target.dtype), offset)
        loaded.add(name)
    model_cfg = cfg["model"]
    validate_missing_and_unexpected_for_lora(
        lora_attn_modules=model_cfg.get("lora_attn_modules"),
        apply_lora_to_mlp=model_cfg.get("apply_lora_to_mlp"),
        apply_lora_to_output=model_cfg.get("apply_lora_to_output"),
        base_missing=[n for n in params if n not in loaded],
        base_unexpected=unexpected,
    )


def load_full_adapter(model: nn.Module, adapter: dict[str, torch.Tensor]) -> None:
    """Put full (unsharded) adapter tensors into a sharded model: each rank keeps its rows.

    Raises:
        KeyError: naming an adapter parameter `adapter` lacks.
    """
    rank, world = _world()
    for name, param in _trainable(model):
        full = adapter[name]
        start, stop = shard_rows(full.shape[0], rank, world) if is_sharded(model) else (0, None)
        _put_rows(param, full[start:stop].to(device=param.device, dtype=param.dtype))


def full_adapter_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """The trainable parameters (the adapter) as full CPU tensors, on every rank.

    A collective: every rank must call it, in the same order of steps.
    """
    out = {}
    for name, param in _trainable(model):
        full = param.full_tensor() if _is_dtensor(param) else param
        out[name] = full.detach().cpu().clone()
    return out


def full_model_state(model: nn.Module, *, keys: Iterable[str] | None = None) -> dict[str, Any]:
    """The model's state dict as full CPU tensors on rank 0 ({} elsewhere), one tensor
    gathered at a time. A collective: every rank must call it.

    Rank 0 ends up holding the whole model in CPU memory (for the merged weights).
    """
    rank, _ = _world()
    wanted = set(keys) if keys is not None else None
    out = {}
    for name, value in model.state_dict().items():
        if wanted is not None and name not in wanted:
            continue
        full = value.full_tensor() if _is_dtensor(value) else value
        if rank == 0:
            out[name] = full.detach().cpu().clone()
        del full
    return out


def full_optimizer_state(model: nn.Module, optimizer: torch.optim.Optimizer) -> dict[str, Any]:
    """The optimizer state keyed by parameter name, unsharded, on rank 0 (a collective).

    Being unsharded and named, it loads into a model sharded over any number of ranks.
    """
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_optimizer_state_dict

    options = StateDictOptions(full_state_dict=True, cpu_offload=True)
    return get_optimizer_state_dict(model, optimizer, options=options)


def load_optimizer_state(
    model: nn.Module, optimizer: torch.optim.Optimizer, state: dict[str, Any]
) -> None:
    """Load what `full_optimizer_state` returned (every rank passes the full state)."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, set_optimizer_state_dict

    set_optimizer_state_dict(
        model, optimizer, state, options=StateDictOptions(full_state_dict=True)
    )


def final_output_state(
    model: nn.Module, checkpointer: Any, settings: RecipeSettings
) -> dict[str, Any] | None:
    """What `save_final_outputs` writes, gathered from an FSDP model (None for others, which
    write their own state): the adapter, or the whole model when merged weights are saved.

    A collective for an FSDP model: every rank must call it.
    """
    if not is_sharded(model):
        return None
    if checkpointer is None or settings.save_adapter_weights_only:
        return full_adapter_state(model)
    return full_model_state(model)
