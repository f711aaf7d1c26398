"""`train_loop_per_worker`: what every Ray Train worker runs.

It reads everything from its `config` argument and follows the Ray idiom:
`get_dataset_shard` -> `iter_chat_batches(collate_fn=...)` -> `train_step` ->
`ray.train.report(metrics, checkpoint=Checkpoint.from_directory(tmp))`.
"""

from __future__ import annotations

import dataclasses
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ray.train
import ray.train.torch
import torch
from torch import nn

from raytune_chat.config import instantiate
from raytune_chat.datasets import iter_chat_batches
from raytune_chat.recipes._loop import MetricWindow, optimizer_steps
from raytune_chat.recipes._outputs import save_final_outputs, write_peft_adapter
from raytune_chat.recipes._parts import build_loss, build_lr_scheduler, build_model, build_optimizer
from raytune_chat.recipes._settings import RecipeSettings, parse_settings
from raytune_chat.training import (
    DiskLogger,
    StdoutLogger,
    TrainPosition,
    load_train_state,
    save_train_state,
    setup_torch_profiler,
    train_step,
)
from raytune_chat.training._train_state import unwrap_model

__all__ = ["train_loop_per_worker"]


@dataclass
class _Run:
    """The live objects of one worker's run."""

    settings: RecipeSettings
    model: nn.Module
    loss_fn: nn.Module
    optimizer: torch.optim.Optimizer
    lr_scheduler: Any
    device: torch.device
    rank: int
    loggers: list[Any]
    profiler: Any
    resumed_from_step: int = 0


def _wrap(model: nn.Module, settings: RecipeSettings) -> nn.Module:
    if ray.train.get_context().get_world_size() == 1:
        return model
    strategy = settings.ray.strategy
    kwargs = {"use_orig_params": True} if strategy == "fsdp" else {}
    return ray.train.torch.prepare_model(
        model, move_to_device=False, parallel_strategy=strategy, parallel_strategy_kwargs=kwargs
    )


def _loggers(cfg: dict[str, Any], settings: RecipeSettings, rank: int) -> list[Any]:
    if rank != 0:
        return []
    loggers: list[Any] = [
        DiskLogger(log_dir=settings.output_dir, filename="metrics.jsonl"),
        StdoutLogger(),
    ]
    if cfg.get("metric_logger") is not None:
        loggers.append(instantiate(cfg["metric_logger"], key="metric_logger"))
    return loggers


def _profiler(cfg: dict[str, Any], rank: int) -> Any:
    if rank != 0 or cfg.get("profiler") is None:
        return setup_torch_profiler(enabled=False)
    return instantiate(cfg["profiler"], key="profiler")


def _restore(run: _Run) -> TrainPosition:
    checkpoint = ray.train.get_checkpoint()
    if checkpoint is None:
        for logger in run.loggers[:1]:
            logger.truncate_after(0)
        return TrainPosition()
    with checkpoint.as_directory() as folder:
        position = load_train_state(folder, run.model, run.optimizer, run.lr_scheduler)
    for logger in run.loggers[:1]:
        logger.truncate_after(position.global_step)
    if run.rank == 0:
        print(
            f"raytune-chat: resumed at step {position.global_step} "
            f"(epoch {position.epoch}, step {position.step_in_epoch} in it)",
            flush=True,
        )
    return position


def _report(
    run: _Run,
    position: TrainPosition,
    metrics: dict[str, Any],
    name: str = "",
    model_cfg: dict[str, Any] | None = None,
) -> None:
    """Every rank reports; rank 0 attaches the checkpoint (adapter, optimizer, position).

    With `model_cfg` (the last report) the checkpoint also holds the PEFT adapter in
    `adapter/`, so it lands in `ray.storage_path` (local or s3://) with the run.
    """
    with tempfile.TemporaryDirectory() as tmp:
        checkpoint = None
        if run.rank == 0:
            save_train_state(tmp, run.model, run.optimizer, run.lr_scheduler, position)
            if model_cfg is not None:
                write_peft_adapter(unwrap_model(run.model), model_cfg, Path(tmp) / "adapter")
            checkpoint = ray.train.Checkpoint.from_directory(tmp)
        ray.train.report(
            {**metrics, **dataclasses.asdict(position)},
            checkpoint=checkpoint,
            checkpoint_dir_name=f"{name or 'step'}_{position.global_step:07d}",
        )


def _log(run: _Run, window: MetricWindow, stats: Any, position: TrainPosition) -> None:
    record = window.record(stats, run.optimizer.param_groups[0]["lr"], position.epoch)
    record["tokens_seen"] = position.num_tokens
    record["trained_tokens_seen"] = position.num_trained_tokens
    record["resumed_from_step"] = run.resumed_from_step
    for logger in run.loggers:
        logger.log_dict(record, step=position.global_step)


def _train_epoch(
    run: _Run, position: TrainPosition, plan: dict[str, Any], collate: Any
) -> TrainPosition:
    settings = run.settings
    shard = ray.train.get_dataset_shard("train")
    batches = iter_chat_batches(
        shard,
        batch_size=settings.batch_size,
        collate_fn=collate,
        drop_last=True,
        shuffle=settings.shuffle,
        seed=None if settings.seed is None else settings.seed + position.epoch,
    )
    window = MetricWindow(run.device, settings.log_peak_memory_stats)
    steps = optimizer_steps(batches, settings.gradient_accumulation_steps, position.step_in_epoch)
    for micro_batches, waited in steps:
        stats = train_step(
            run.model,
            run.loss_fn,
            run.optimizer,
            run.lr_scheduler,
            micro_batches,
            device=run.device,
            clip_grad_norm=settings.clip_grad_norm,
        )
        window.add(stats, waited)
        position = dataclasses.replace(
            position,
            step_in_epoch=position.step_in_epoch + 1,
            global_step=position.global_step + 1,
            num_tokens=position.num_tokens + stats.num_tokens,
            num_trained_tokens=position.num_trained_tokens + stats.num_trained_tokens,
        )
        if position.global_step % settings.log_every_n_steps == 0:
            _log(run, window, stats, position)
        every = settings.save_every_n_steps
        if (
            every
            and position.global_step % every == 0
            and position.step_in_epoch < plan["steps_per_epoch"]
        ):
            _report(run, position, {"loss": stats.loss})
        run.profiler.step()
        if position.step_in_epoch >= plan["steps_per_epoch"]:
            break
    return position


def train_loop_per_worker(config: dict[str, Any]) -> None:
    """Train LoRA adapters on this worker's shard; see the module docstring.

    Args:
        config: ``{"cfg": <resolved config dict>, "plan": {"steps_per_epoch": int,
            "total_steps": int}, "collate": <collate callable>}``.
    """
    cfg, plan = config["cfg"], config["plan"]
    settings = parse_settings(cfg)
    device = ray.train.torch.get_device()
    rank = ray.train.get_context().get_world_rank()
    model, checkpointer = build_model(cfg, settings, device)
    loss_fn = build_loss(cfg, model, settings)
    model = _wrap(model, settings)
    optimizer = build_optimizer(cfg, model, device)
    lr_scheduler = build_lr_scheduler(cfg, optimizer, plan["total_steps"])
    run = _Run(
        settings,
        model,
        loss_fn,
        optimizer,
        lr_scheduler,
        device,
        rank,
        _loggers(cfg, settings, rank),
        _profiler(cfg, rank),
    )
    position = _restore(run)
    run.resumed_from_step = position.global_step
    with run.profiler:
        for epoch in range(position.epoch, settings.epochs):
            position = _train_epoch(run, position, plan, config["collate"])
            position = dataclasses.replace(position, epoch=epoch + 1, step_in_epoch=0)
            last = epoch == settings.epochs - 1
            _report(
                run,
                position,
                {"epoch_done": epoch},
                name=f"epoch_{epoch}",
                model_cfg=cfg["model"] if last else None,
            )
    if rank == 0:
        save_final_outputs(
            unwrap_model(model),
            checkpointer,
            cfg,
            settings,
            epoch=settings.epochs - 1,
        )
        for logger in run.loggers:
            logger.close()
