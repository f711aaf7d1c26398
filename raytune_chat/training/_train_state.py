"""Save and restore the trainable state of a run: adapter, optimizer, scheduler, position.

A model sharded with FSDP (`ray.strategy: fsdp`) is saved unsharded: the adapter as full
tensors, the optimizer state keyed by parameter name (`raytune_chat.training._fsdp`), so a
run resumes on any number of workers. Gathering is collective: every rank calls
`train_state`, rank 0 writes it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn

from raytune_chat.training import _fsdp

__all__ = [
    "TrainPosition",
    "load_train_state",
    "save_train_state",
    "train_state",
    "write_train_state",
    "trainable_state_dict",
    "unwrap_model",
]

_FILE = "train_state.pt"
# How the optimizer state is keyed: by parameter name and unsharded (FSDP), else torch's own
_NAMED_OPTIMIZER = "named_full"


@dataclass(frozen=True)
class TrainPosition:
    """Where a run stands, and what it needs to continue exactly as it would have.

    Attributes:
        epoch: the epoch being trained (0-based).
        step_in_epoch: optimizer steps done in it; a resumed run skips that many.
        global_step: optimizer steps done in all.
        num_tokens: tokens seen (padding included), all ranks.
        num_trained_tokens: tokens in the loss, all ranks.
        seed: the shuffle seed of the run (drawn once when the config says `seed: null`).
        dataset: which dataset the epoch reads ("train", or "cached" once the token store
            is complete), so a resumed epoch reads the same rows in the same order.
        planned_steps: the run's planned total of optimizer steps.
        steps_per_epoch: the planned steps of one epoch.
        plan_exact: the plan is counted, not estimated.
        plan_basis: what the plan comes from (see `raytune_chat.training.step_plan`).
    """

    epoch: int = 0
    step_in_epoch: int = 0
    global_step: int = 0
    num_tokens: int = 0
    num_trained_tokens: int = 0
    seed: int | None = None
    dataset: str = "train"
    planned_steps: int = 0
    steps_per_epoch: int = 0
    plan_exact: bool = False
    plan_basis: str = ""

    def after_step(self, num_tokens: int, num_trained_tokens: int) -> TrainPosition:
        """The position one optimizer step later, which saw these token counts (all ranks).

        Example:
            >>> TrainPosition().after_step(10, 4).global_step
            1
        """
        return dataclasses.replace(
            self,
            step_in_epoch=self.step_in_epoch + 1,
            global_step=self.global_step + 1,
            num_tokens=self.num_tokens + num_tokens,
            num_trained_tokens=self.num_trained_tokens + num_trained_tokens,
        )

    def next_epoch(self) -> TrainPosition:
        """The position at the start of the next epoch."""
        return dataclasses.replace(self, epoch=self.epoch + 1, step_in_epoch=0)


def trainable_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """State-dict entries of the parameters that require grad (the adapters), on CPU."""
    trainable = {
        n.replace("_checkpoint_wrapped_module.", "")
        for n, p in model.named_parameters()
        if p.requires_grad
    }
    trainable = {n.removeprefix("module.") for n in trainable}
    return {
        k: v.detach().cpu().clone()
        for k, v in unwrap_model(model).state_dict().items()
        if k in trainable
    }


def unwrap_model(model: nn.Module) -> nn.Module:
    """The model inside a DDP/FSDP wrapper (or the model itself)."""
    return model.module if hasattr(model, "module") else model


def train_state(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    lr_scheduler: torch.optim.lr_scheduler.LRScheduler,
    position: TrainPosition,
) -> dict:
    """What `write_train_state` saves; every rank must call it for an FSDP model (it gathers
    the shards; the full state is on rank 0)."""
    if _fsdp.is_sharded(model):
        adapter = _fsdp.full_adapter_state(model)
        optimizer_state = _fsdp.full_optimizer_state(model, optimizer)
        layout = _NAMED_OPTIMIZER
    else:
        adapter, optimizer_state, layout = trainable_state_dict(model), optimizer.state_dict(), ""
    return {
        "adapter": adapter,
        "optimizer": optimizer_state,
        "optimizer_layout": layout,
        "lr_scheduler": lr_scheduler.state_dict(),
        "position": asdict(position),
    }


def write_train_state(folder: str | Path, state: dict) -> Path:
    """Write `state` (from `train_state`) as `train_state.pt` into `folder`; return its path."""
    path = Path(folder) / _FILE
    torch.save(state, path)
    return path


def save_train_state(
    folder: str | Path,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    lr_scheduler: torch.optim.lr_scheduler.LRScheduler,
    position: TrainPosition,
) -> Path:
    """Write `train_state.pt` into `folder` (one process); return its path."""
    return write_train_state(folder, train_state(model, optimizer, lr_scheduler, position))


def load_train_state(
    folder: str | Path,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    lr_scheduler: torch.optim.lr_scheduler.LRScheduler,
) -> TrainPosition:
    """Restore what `save_train_state` wrote; return the position to continue from.

    Raises:
        RuntimeError: when the saved adapter keys do not match the model's trainable ones.
    """
    state = torch.load(Path(folder) / _FILE, map_location="cpu", weights_only=True)
    sharded = _fsdp.is_sharded(model)
    if sharded != (state.get("optimizer_layout") == _NAMED_OPTIMIZER):
        raise RuntimeError(
            "the checkpoint was written with another ray.strategy (fsdp vs ddp): resume "
            "with the strategy the run started with"
        )
    expected = {
        n.replace("_checkpoint_wrapped_module.", "").removeprefix("module.")
        for n, p in model.named_parameters()
        if p.requires_grad
    }
    if set(state["adapter"]) != expected:
        raise RuntimeError(
            f"checkpoint adapter keys differ from the model's: "
            f"missing {sorted(expected - set(state['adapter']))[:5]}, "
            f"unexpected {sorted(set(state['adapter']) - expected)[:5]}"
        )
    if sharded:  # every rank has the full state: each keeps its own shards
        _fsdp.load_full_adapter(model, state["adapter"])
        _fsdp.load_optimizer_state(model, optimizer, state["optimizer"])
    else:
        unwrap_model(model).load_state_dict(state["adapter"], strict=False)
        optimizer.load_state_dict(state["optimizer"])
    lr_scheduler.load_state_dict(state["lr_scheduler"])
    return TrainPosition(**state["position"])
