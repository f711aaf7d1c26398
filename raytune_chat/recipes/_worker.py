"""`train_loop_per_worker`: what every Ray Train worker runs.

It reads everything from its `config` argument and follows the Ray idiom:
`get_dataset_shard` -> `iter_chat_batches(collate_fn=...)` -> `train_step` ->
`ray.train.report(metrics, checkpoint=Checkpoint.from_directory(tmp))`.

An epoch ends when the shard's data ends: before every step the ranks agree that each of
them has a full step of data, so no rank enters a collective that another one skips. The
first epoch reads the raw pipeline (dataset "train"), which tokenizes and fills the token
store as it streams; an epoch that starts once the store is complete reads the store
("cached") and tokenizes nothing. The step plan, and with it the learning-rate schedule,
follows what the run learns: the pass ledger's counts while the first epoch streams, the
first epoch's length after it (see `_plan.py`).
"""

from __future__ import annotations

import dataclasses
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import ray.train
import ray.train.torch
import torch
from torch import nn

from raytune_chat.config import instantiate
from raytune_chat.datasets import iter_chat_batches
from raytune_chat.recipes._loop import MetricWindow, data_fields, optimizer_steps
from raytune_chat.recipes._outputs import save_final_outputs, write_peft_adapter
from raytune_chat.recipes._parts import build_loss, build_lr_scheduler, build_model, build_optimizer
from raytune_chat.recipes._plan import StepPlan, plan_from_epoch, plan_from_rows, with_budgets
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
from raytune_chat.training._distributed import all_ranks_have, from_rank_zero
from raytune_chat.training._train_state import unwrap_model
from raytune_chat.training.lr_schedulers import set_num_training_steps

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
    row_log: DiskLogger | None
    profiler: Any
    data: Any  # the dataset's ChatDatasetInfo: pass ledger, token store, collate
    datasets: Sequence[str]
    collate: Callable[[Mapping[str, Any]], Any]
    resumed_from_step: int = 0


class _WithRowIds:
    """A collate that also passes on the rows' ids (for the row-id log)."""

    def __init__(self, collate: Callable[[Mapping[str, Any]], Any]) -> None:
        self.collate = collate

    def __call__(self, batch: Mapping[str, Any]) -> Any:
        out = self.collate(batch)
        if "row_id" in batch:
            out["row_id"] = torch.from_numpy(np.asarray(batch["row_id"], dtype=np.int64))
        return out


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


def _with_plan(run: _Run, position: TrainPosition, plan: StepPlan) -> TrainPosition:
    """`position` following `plan`; the schedule's length follows too."""
    set_num_training_steps(run.lr_scheduler, plan.total_steps)
    return dataclasses.replace(
        position,
        planned_steps=plan.total_steps,
        steps_per_epoch=plan.steps_per_epoch,
        plan_exact=plan.exact,
        plan_basis=plan.basis,
    )


def _restore(run: _Run, fresh: TrainPosition) -> TrainPosition:
    """The position of the last checkpoint (seed and plan included), or `fresh`."""
    checkpoint = ray.train.get_checkpoint()
    position = fresh
    if checkpoint is not None:
        with checkpoint.as_directory() as folder:
            position = load_train_state(folder, run.model, run.optimizer, run.lr_scheduler)
        if position.seed is None:  # written before seeds were kept: keep this run's
            position = dataclasses.replace(position, seed=fresh.seed)
    for log in [*run.loggers[:1], run.row_log]:
        if log is not None:
            log.truncate_after(position.global_step)
    if checkpoint is not None and run.rank == 0:
        print(
            f"raytune-chat: resumed at step {position.global_step} "
            f"(epoch {position.epoch}, step {position.step_in_epoch} in it, seed {position.seed})",
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


def _budget_spent(position: TrainPosition, settings: RecipeSettings) -> bool:
    steps, tokens = settings.max_steps, settings.max_trained_tokens
    return (steps is not None and position.global_step >= steps) or (
        tokens is not None and position.num_trained_tokens >= tokens
    )


def _epoch_over(position: TrainPosition, settings: RecipeSettings) -> bool:
    cap = settings.max_steps_per_epoch
    return (cap is not None and position.step_in_epoch >= cap) or _budget_spent(position, settings)


def _epoch_dataset(run: _Run, position: TrainPosition) -> TrainPosition:
    """The dataset this epoch reads: the token store once it is complete, else the raw one.

    Rank 0 decides for all. A resumed epoch keeps the dataset it started with: skipping
    the consumed steps is only exact on the same rows in the same order.
    """
    if position.step_in_epoch > 0:
        return position
    name = "train"
    if "cached" in run.datasets and run.rank == 0 and run.data.store.complete():
        name = "cached"
    return dataclasses.replace(position, dataset=from_rank_zero(name))


def _refresh_plan(run: _Run, position: TrainPosition, stats: Any) -> TrainPosition:
    """Follow what the run knows now; rank 0 decides (its `stats` are the ledger's counts).

    In the first epoch the plan comes from the rows the pass ledger counts (or still
    estimates); after it, from the first epoch's steps. Every rank calls this at the same
    steps: it sends rank 0's plan to all.
    """
    plan = None
    if run.rank == 0:
        if position.epoch == 0:
            exact = stats.output_rows_exact
            base = plan_from_rows(
                stats.output_rows,
                run.settings,
                exact=exact,
                basis="counted" if exact else "streaming",
            )
        else:
            base = plan_from_epoch(position.steps_per_epoch, run.settings)
        plan = with_budgets(
            base,
            run.settings,
            steps_done=position.global_step,
            trained_tokens_done=position.num_trained_tokens,
        )
    return _with_plan(run, position, from_rank_zero(plan))


def _log(run: _Run, window: MetricWindow, stats: Any, position: TrainPosition) -> TrainPosition:
    """Refresh the plan (all ranks) and, on rank 0, log the step with the data counts."""
    data = run.data.stats() if run.rank == 0 else None
    if data is not None:
        run.data.check_rejected(data)
    position = _refresh_plan(run, position, data)
    if run.rank != 0:
        return position
    record = window.record(stats, run.optimizer.param_groups[0]["lr"], position.epoch)
    record["tokens_seen"] = position.num_tokens
    record["trained_tokens_seen"] = position.num_trained_tokens
    record["resumed_from_step"] = run.resumed_from_step
    record["planned_steps"] = position.planned_steps
    record["plan"] = f"{'exact' if position.plan_exact else 'estimate'} ({position.plan_basis})"
    record.update(data_fields(data))
    for logger in run.loggers:
        logger.log_dict(record, step=position.global_step)
    return position


def _log_rows(run: _Run, position: TrainPosition, micro_batches: list[dict[str, Any]]) -> None:
    if run.row_log is None:
        return
    ids = [int(i) for b in micro_batches if "row_id" in b for i in b["row_id"].tolist()]
    run.row_log.log_dict({"epoch": position.epoch, "row_ids": ids}, step=position.global_step)


def _train_epoch(run: _Run, position: TrainPosition) -> TrainPosition:
    settings = run.settings
    position = _epoch_dataset(run, position)
    batches = iter_chat_batches(
        ray.train.get_dataset_shard(position.dataset),
        batch_size=settings.batch_size,
        collate_fn=run.collate,
        drop_last=True,
        shuffle=settings.shuffle,
        seed=position.seed + position.epoch,
    )
    window = MetricWindow(run.device, settings.log_peak_memory_stats)
    steps = optimizer_steps(batches, settings.gradient_accumulation_steps, position.step_in_epoch)
    while not _epoch_over(position, settings):
        step = next(steps, None)
        if not all_ranks_have(step is not None, run.device):
            break  # the data has ended on some rank: the epoch ends for all
        micro_batches, waited = step
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
        _log_rows(run, position, micro_batches)
        if position.global_step % settings.log_every_n_steps == 0:
            position = _log(run, window, stats, position)
        every = settings.save_every_n_steps
        if every and position.global_step % every == 0 and not _epoch_over(position, settings):
            _report(run, position, {"loss": stats.loss})
        run.profiler.step()
    return position


def _end_epoch(run: _Run, position: TrainPosition) -> TrainPosition:
    """The epoch's data has ended: its step count is exact, and so is the plan from now on."""
    if position.dataset == "train" and run.rank == 0:
        data = run.data.stats()
        if data.complete:
            run.data.check_rejected(data)
    if position.step_in_epoch == 0:
        raise ValueError(
            f"epoch {position.epoch} gave no full optimizer step: fewer rows than "
            f"batch_size * gradient_accumulation_steps * num_workers"
        )
    plan = plan_from_epoch(position.step_in_epoch, run.settings)
    plan = with_budgets(
        plan,
        run.settings,
        steps_done=position.global_step,
        trained_tokens_done=position.num_trained_tokens,
    )
    position = _with_plan(run, position, plan)
    return dataclasses.replace(position, epoch=position.epoch + 1, step_in_epoch=0)


def train_loop_per_worker(config: dict[str, Any]) -> None:
    """Train LoRA adapters on this worker's shard; see the module docstring.

    Args:
        config: ``{"cfg": <resolved config dict>, "plan": <StepPlan>, "seed": <int>,
            "data": <ChatDatasetInfo>, "datasets": <names given to the trainer>}``.
    """
    cfg, plan, data = config["cfg"], config["plan"], config["data"]
    settings = parse_settings(cfg)
    device = ray.train.torch.get_device()
    rank = ray.train.get_context().get_world_rank()
    model, checkpointer = build_model(
        cfg, dataclasses.replace(settings, seed=config["seed"]), device
    )
    loss_fn = build_loss(cfg, model, settings)
    model = _wrap(model, settings)
    optimizer = build_optimizer(cfg, model, device)
    lr_scheduler = build_lr_scheduler(cfg, optimizer, plan.total_steps)
    collate = data.collate_fn()
    run = _Run(
        settings,
        model,
        loss_fn,
        optimizer,
        lr_scheduler,
        device,
        rank,
        _loggers(cfg, settings, rank),
        DiskLogger(
            log_dir=str(Path(settings.output_dir) / "row_ids"), filename=f"rank_{rank}.jsonl"
        )
        if settings.log_row_ids
        else None,
        _profiler(cfg, rank),
        data,
        config["datasets"],
        _WithRowIds(collate) if settings.log_row_ids else collate,
    )
    fresh = _with_plan(run, TrainPosition(seed=config["seed"]), plan)
    position = _restore(run, fresh)
    run.resumed_from_step = position.global_step
    last_epoch = settings.epochs - 1
    with run.profiler:
        for epoch in range(position.epoch, settings.epochs):
            position = _train_epoch(run, position)
            spent = _budget_spent(position, settings)
            if not spent:
                position = _end_epoch(run, position)
            last_epoch = epoch
            last = spent or epoch == settings.epochs - 1
            _report(
                run,
                position,
                {"epoch_done": epoch},
                name=f"epoch_{epoch}",
                model_cfg=cfg["model"] if last else None,
            )
            if spent:
                break
    if rank == 0:
        save_final_outputs(unwrap_model(model), checkpointer, cfg, settings, epoch=last_epoch)
        for logger in run.loggers:
            logger.close()
    if run.row_log is not None:
        run.row_log.close()
