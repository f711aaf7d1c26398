"""`lora_finetune_distributed`: LoRA fine-tuning on `ray.num_workers` data-parallel workers.

DDP by default (gloo on CPU, nccl on GPU); `ray.strategy: fsdp` shards the model instead
(FSDP2: each rank holds and loads only its rows of every weight).
Run it as ``raytune-chat run lora_finetune_distributed --config llama3/8B_lora``, or copy it
(``raytune-chat cp lora_finetune_distributed my_recipe.py``), edit the copy and run that:
``raytune-chat run ./my_recipe.py --config ...``.

The story of `lora_finetune_single_device`, on several workers: `recipe_main` builds the
dataset and the trainer on the driver; `train_loop_per_worker` is what every worker runs;
`train_epoch` takes the optimizer steps and reports. What several ranks add: the model is
wrapped (DDP/FSDP), every rank must take the same steps (a rank that enters a collective
another one skips waits forever), so the ranks agree before each step that each has a
full step of data, and rank 0 decides the plan and the dataset of an epoch for all and
alone logs and writes the outputs.

Nothing reads the data before training starts: the step plan comes from what the dataset
knows cheaply (the pass ledger's estimate, or a token store's counts) and the worker makes
it exact as the run goes (`raytune_chat.training.step_plan`).
"""

from __future__ import annotations

import dataclasses
import secrets
import time
from pathlib import Path
from typing import Any

import ray.train
import ray.train.torch
from ray.train.torch import TorchTrainer
from torch import nn

from raytune_chat import generation, training
from raytune_chat.datasets import iter_chat_batches
from raytune_chat.training import ray_train

__all__ = ["recipe_main", "train_loop_per_worker"]


# --- the driver: dataset -> trainer -> fit -> summary ------------------------------------


def recipe_main(cfg: dict[str, Any]) -> dict[str, Any]:
    """Train LoRA adapters with `cfg` on `ray.num_workers` workers; return the run summary.

    Rerunning with the same `ray.name` and `ray.storage_path` resumes from the last
    checkpoint (at optimizer-step granularity), with the same seed and row order.

    Raises:
        ConfigError: naming the key of an invalid config, before anything runs.
        DataFileUnreadable: a data file could not be read (named, with how far it got).
        TooManyRejectedRows: more than `max_rejected_fraction` of the rows were rejected.
    """
    settings = training.validate_config(cfg)
    start = time.perf_counter()
    Path(settings.output_dir).mkdir(parents=True, exist_ok=True)
    ray_train.ensure_ray()

    # The dataset streams and fills a token store that later epochs read instead; Ray
    # Train splits it into one equal shard per worker (`ray_train.dataset_config`).
    info, datasets = ray_train.chat_datasets(cfg, settings)
    # An estimate unless the rows are already counted (a token store, a finished pass).
    plan = training.initial_plan(info.stats(), settings, reads_store=info.reads_store)
    # `seed: null` draws a seed here; the checkpoints keep it, so a resumed run (a new
    # driver drawing another one) continues with the seed the run started with.
    seed = settings.seed if settings.seed is not None else secrets.randbelow(2**31)
    training.print_start(info, plan, seed, settings)

    trainer = TorchTrainer(
        # The function object itself: Ray pickles it by value when this file was loaded
        # from a path (a copied recipe), so the workers run the copy's loop.
        train_loop_per_worker,
        train_loop_config={
            "cfg": cfg,
            "plan": plan,
            "seed": seed,
            "data": info,
            "datasets": sorted(datasets),
            "val_data": ray_train.val_info(datasets),
            # `eval_generate_n` validation prompts (a few rows read here) and stop tokens
            "eval_prompts": ray_train.eval_prompts(cfg, datasets, settings.eval_generate_n),
        },
        scaling_config=ray_train.scaling_config(settings),
        run_config=ray_train.run_config(settings),
        datasets=datasets,
        dataset_config=ray_train.dataset_config(datasets),
    )
    result = ray_train.fit(trainer)
    wall = time.perf_counter() - start
    summary = training.write_summary(
        cfg, settings, info, result, wall, val_data=ray_train.val_info(datasets)
    )
    training.print_summary(summary)
    return summary


# --- the worker: parts -> restore -> epochs -> outputs -----------------------------------


def _wrap(model: nn.Module, settings: training.RecipeSettings) -> nn.Module:
    """DDP around the model (Ray Train set up the group); an FSDP model is already sharded."""
    if settings.ray.strategy == "fsdp" or ray.train.get_context().get_world_size() == 1:
        return model
    return ray.train.torch.prepare_model(model, move_to_device=False, parallel_strategy="ddp")


def train_loop_per_worker(config: dict[str, Any]) -> None:
    """Train LoRA adapters on this rank's shard; rank 0 writes the adapter at the end.

    Args:
        config: ``{"cfg": <resolved config dict>, "plan": <StepPlan>, "seed": <int>,
            "data": <ChatDatasetInfo>, "datasets": <names given to the trainer>,
            "val_data": <ChatDatasetInfo of dataset_val, or None>,
            "eval_prompts": <{"prompts", "stop_tokens"} for eval_generate_n, or None>}``.
    """
    cfg, data = config["cfg"], config["data"]
    settings = training.parse_settings(cfg)
    device = ray.train.torch.get_device()
    rank = ray.train.get_context().get_world_rank()
    # The same seed on every rank: the adapters start identical everywhere. FSDP builds
    # the model sharded (each rank reads only its rows of the base weights).
    fsdp = settings.ray.strategy == "fsdp"
    build = training.build_sharded_model if fsdp else training.build_model
    model, checkpointer = build(cfg, dataclasses.replace(settings, seed=config["seed"]), device)
    loss_fn = training.build_loss(cfg, model, settings)
    model = _wrap(model, settings)
    optimizer = training.build_optimizer(cfg, model, device)
    lr_scheduler = training.build_lr_scheduler(cfg, optimizer, config["plan"].total_steps)
    loggers = training.build_metric_loggers(cfg, settings) if rank == 0 else []
    row_log = training.RowIdLog(settings.output_dir, rank) if settings.log_row_ids else None
    collate = training.RowIdCollate(data.collate_fn()) if row_log else data.collate_fn()

    fresh = training.follow_plan(
        training.TrainPosition(seed=config["seed"]), config["plan"], lr_scheduler
    )
    # After a failure, or when the run is started again, Ray Train hands us its latest
    # checkpoint: adapter, optimizer, schedule and where the run stood.
    logs = [log for log in (*loggers[:1], row_log) if log is not None]
    position = ray_train.restore(model, optimizer, lr_scheduler, fresh, logs)
    parts = training.WorkerParts(
        settings=settings,
        model=model,
        loss_fn=loss_fn,
        optimizer=optimizer,
        lr_scheduler=lr_scheduler,
        device=device,
        rank=rank,
        collate=collate,
        data=data,
        datasets=config["datasets"],
        loggers=loggers,
        row_log=row_log,
        resumed_from_step=position.global_step,
        val_data=config["val_data"],
    )
    last_epoch = settings.epochs - 1
    with training.build_profiler(cfg if rank == 0 else {}) as profiler:
        for epoch in range(position.epoch, settings.epochs):
            position = train_epoch(parts, position, profiler)
            spent = training.budget_spent(position, settings)
            if not spent:
                position = _end_epoch(parts, position)
            last_epoch = epoch
            ray_train.report(
                model,
                optimizer,
                lr_scheduler,
                position,
                {"epoch_done": epoch},
                name=f"epoch_{epoch}",
                adapter_of=cfg["model"] if spent or epoch == settings.epochs - 1 else None,
            )
            if spent:
                break
    if training.validation_due(position.global_step, settings.run_val_every_n_steps, end=True):
        _validate(parts, position)  # the validation loss of the final adapter
    # Did it learn to stop? Under FSDP every rank runs the forwards (they gather shards).
    if config["eval_prompts"] and (rank == 0 or settings.ray.strategy == "fsdp"):
        _check_stops(parts, position, config["eval_prompts"])
    for log in [*loggers, *([row_log] if row_log else [])]:
        log.close()
    # An FSDP model gathers what the outputs need on rank 0 (every rank takes part).
    state = training.final_output_state(model, checkpointer, settings)
    if rank == 0:
        final = training.save_final_outputs(
            training.unwrap_model(model), checkpointer, cfg, settings, epoch=last_epoch, state=state
        )
        # output_dir is this node's disk, maybe not the driver's: with `ray.storage_path`
        # set the outputs go to `<storage_path>/<name>/outputs/` too.
        training.copy_outputs_to_storage(settings, [final])


# --- one epoch: steps -> log -> report ----------------------------------------------------


def train_epoch(
    parts: training.WorkerParts, position: training.TrainPosition, profiler: Any
) -> training.TrainPosition:
    """Take the optimizer steps of one epoch (or what is left of it); return the position."""
    settings = parts.settings
    position = ray_train.epoch_dataset(position, parts.datasets, parts.data)
    batches = iter_chat_batches(
        ray.train.get_dataset_shard(position.dataset),
        batch_size=settings.batch_size,
        collate_fn=parts.collate,
        drop_last=True,
        shuffle=settings.shuffle,
        seed=position.seed + position.epoch,  # the same order on every run: resume is exact
    )
    window = training.MetricWindow(parts.device, settings.log_peak_memory_stats)
    # A resumed epoch draws and drops the steps it had already taken.
    steps = training.optimizer_steps(
        batches, settings.gradient_accumulation_steps, position.step_in_epoch
    )
    while not training.epoch_over(position, settings):
        step = next(steps, None)
        if not training.all_ranks_have(step is not None, parts.device):
            break  # the data has ended on some rank: the epoch ends for all
        micro_batches, waited = step
        # One optimizer step over `gradient_accumulation_steps` micro-batches: DDP syncs the
        # gradients on the last one only; the loss is normalised by the trained tokens of
        # the step on all ranks, not averaged per micro-batch or per rank.
        stats = training.train_step(
            parts.model,
            parts.loss_fn,
            parts.optimizer,
            parts.lr_scheduler,
            micro_batches,
            device=parts.device,
            clip_grad_norm=settings.clip_grad_norm,
        )
        window.add(stats, waited)
        position = position.after_step(stats.num_tokens, stats.num_trained_tokens)
        if parts.row_log is not None:
            parts.row_log.log_step(position, micro_batches)
        if position.global_step % settings.log_every_n_steps == 0:
            position = _log(parts, window, stats, position)
        if training.validation_due(position.global_step, settings.run_val_every_n_steps):
            _validate(parts, position)
        every = settings.save_every_n_steps
        if (
            every
            and position.global_step % every == 0
            and not training.epoch_over(position, settings)
        ):
            ray_train.report(
                parts.model, parts.optimizer, parts.lr_scheduler, position, {"loss": stats.loss}
            )
        profiler.step()
    return position


def _log(
    parts: training.WorkerParts,
    window: training.MetricWindow,
    stats: training.StepStats,
    position: training.TrainPosition,
) -> training.TrainPosition:
    """Rank 0 logs the step with the data counts so far; the plan follows what they say.

    Every rank calls this at the same steps: it sends rank 0's plan to all, so every
    rank's schedule has the same length.
    """
    data, plan = None, None
    if parts.rank == 0:
        data = parts.data.stats()
        parts.data.check_rejected(data)  # too many rejected rows stops the run here, named
        plan = training.plan_while_training(position, parts.settings, data)
    position = training.follow_plan(position, training.from_rank_zero(plan), parts.lr_scheduler)
    if parts.rank != 0:
        return position
    lr = parts.optimizer.param_groups[0]["lr"]
    record = training.step_record(
        window, stats, lr, position, resumed_from_step=parts.resumed_from_step, data=data
    )
    for logger in parts.loggers:
        logger.log_dict(record, step=position.global_step)
    return position


def _validate(parts: training.WorkerParts, position: training.TrainPosition) -> None:
    """The validation loss over every rank's shard of `dataset_val`; rank 0 logs it.

    Every rank calls this at the same steps (it runs the same forwards on each).
    """
    if parts.val_data is None:
        return
    # The raw files until a pass has completed the validation token store, then the store.
    name = ray_train.val_dataset(parts.datasets, parts.val_data)
    batches = iter_chat_batches(
        ray.train.get_dataset_shard(name),
        batch_size=parts.settings.batch_size,
        collate_fn=parts.val_data.collate_fn(),
    )
    stats = training.validation_loss(
        parts.model,
        parts.loss_fn,
        batches,
        device=parts.device,
        max_steps=parts.settings.max_validation_steps,
    )
    if parts.rank != 0:
        return
    data = parts.val_data.stats()
    if data.complete:
        parts.val_data.check_rejected(data)  # counted apart from the training rows
    val = training.val_record(stats, data)
    for logger in parts.loggers:
        logger.log_dict(val, step=position.global_step)


def _check_stops(
    parts: training.WorkerParts, position: training.TrainPosition, eval_prompts: dict[str, Any]
) -> None:
    """The share of validation prompts whose greedy answer ends with a stop token, logged."""
    model = training.unwrap_model(parts.model)
    stops = generation.stop_share_record(model, eval_prompts, parts.settings.eval_max_new_tokens)
    for logger in parts.loggers:
        logger.log_dict(stops, step=position.global_step)


def _end_epoch(
    parts: training.WorkerParts, position: training.TrainPosition
) -> training.TrainPosition:
    """The epoch's data has ended: its step count is exact, and so is the plan from now on."""
    if position.dataset == "train" and parts.rank == 0:
        data = parts.data.stats()
        if data.complete:
            parts.data.check_rejected(data)
    plan = training.plan_after_epoch(position, parts.settings)
    return training.follow_plan(position, plan, parts.lr_scheduler).next_epoch()
