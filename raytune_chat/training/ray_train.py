"""The Ray Train wiring the LoRA recipes share: the trainer's configs, fit, report, restore.

The one module of `raytune_chat.training` that imports Ray. What Ray Train does for us:
it starts the workers (each with `torch.distributed` set up), hands each one its shard of
the datasets (`ray.train.get_dataset_shard`), copies each reported checkpoint to
`ray.storage_path`, restarts failed workers from the latest one (`ray.max_failures`), and
resumes a run started again with the same `RunConfig(name, storage_path)`.
"""

from __future__ import annotations

import dataclasses
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import ray
import ray.train
import ray.train.torch
from ray.train import CheckpointConfig, DataConfig, FailureConfig, RunConfig, ScalingConfig
from torch import nn

from raytune_chat.config import ConfigError, instantiate
from raytune_chat.datasets import DataFileUnreadable, TooManyRejectedRows, chat_dataset_info
from raytune_chat.generation import validation_prompts
from raytune_chat.training._distributed import from_rank_zero
from raytune_chat.training._outputs import write_peft_adapter
from raytune_chat.training._train_state import (
    TrainPosition,
    load_train_state,
    train_state,
    unwrap_model,
    write_train_state,
)
from raytune_chat.training.recipe_config import RecipeSettings

DATA_ERRORS = (DataFileUnreadable, TooManyRejectedRows)

__all__ = [
    "DATA_ERRORS",
    "chat_datasets",
    "dataset_config",
    "ensure_ray",
    "epoch_dataset",
    "eval_prompts",
    "fit",
    "report",
    "restore",
    "run_config",
    "scaling_config",
    "token_cache_root",
    "val_dataset",
    "val_info",
]


def ensure_ray() -> None:
    """Connect to `RAY_ADDRESS` when set, else start a private local cluster."""
    if not ray.is_initialized():
        ray.init(address=os.environ.get("RAY_ADDRESS", "local"))


def token_cache_root(settings: RecipeSettings) -> str:
    """Where a run's token stores live: under `ray.storage_path` (shared by all nodes) when
    set, else under `output_dir`."""
    root = settings.ray.storage_path or str(Path(settings.output_dir).resolve())
    return f"{root.rstrip('/')}/token_cache"


def chat_datasets(cfg: dict[str, Any], settings: RecipeSettings) -> tuple[Any, dict[str, Any]]:
    """The config's chat dataset: its `ChatDatasetInfo` and the datasets the trainer reads.

    The dataset streams: rows are read and tokenized as training consumes them, and the
    tokens go to a store under `token_cache_root`. When the run trains more than one epoch
    the trainer also gets that store as "cached", read by every epoch that starts after the
    store is complete. With a `dataset_val` section the trainer also gets it as "val"
    (`val_info` gives its `ChatDatasetInfo`) and its own token store as "val_cached", read
    by the validation passes once the first one has completed it (`val_dataset`).

    Raises:
        ConfigError: when `dataset` (or `dataset_val`) does not build a chat_dataset.
    """
    tokenizer = instantiate(cfg["tokenizer"], key="tokenizer")
    cache = token_cache_root(settings)
    ds = instantiate(cfg["dataset"], tokenizer=tokenizer, cache_path=cache, key="dataset")
    info = _info(ds, "dataset")
    datasets = {"train": ds}
    if settings.epochs > 1 and not info.reads_store and info.store is not None:
        datasets["cached"] = info.store_dataset()
    if cfg.get("dataset_val") is not None:
        datasets["val"] = _val_dataset(cfg["dataset_val"], tokenizer, cache, info)
        val = chat_dataset_info(datasets["val"])
        if not val.reads_store and val.store is not None:
            datasets["val_cached"] = val.store_dataset()
    return info, datasets


def _info(ds: Any, key: str) -> Any:
    try:
        return chat_dataset_info(ds)
    except KeyError as exc:
        raise ConfigError(f"{key}._component_", "must build a chat_dataset") from exc


def _val_dataset(section: dict[str, Any], tokenizer: Any, cache: str, train: Any) -> Any:
    """The `dataset_val` dataset, kept apart from the training set's records.

    It has its own pass ledger (one per chat_dataset) and its own token store folder (even
    when it names the very rows the training set does); its quarantine files go to
    `<rejected_path>/val` when it names the training set's `rejected_path`, since both
    name their files after the first record of a batch and would overwrite each other.
    """
    section = dict(section)
    if section.get("rejected_path") is not None and section["rejected_path"] == train.rejected_path:
        section["rejected_path"] = f"{section['rejected_path'].rstrip('/')}/val"
    ds = instantiate(section, tokenizer=tokenizer, cache_path=f"{cache}/val", key="dataset_val")
    _info(ds, "dataset_val")
    return ds


def val_info(datasets: dict[str, Any]) -> Any:
    """The `ChatDatasetInfo` of the "val" dataset (ledger, quarantine, collate), or None.

    Example:
        >>> val_info({"train": None}) is None
        True
    """
    return chat_dataset_info(datasets["val"]) if "val" in datasets else None


def eval_prompts(cfg: dict[str, Any], datasets: dict[str, Any], n: int) -> dict[str, Any] | None:
    """The first `n` validation rows' first-user-turn prompts and the tokenizer's stop tokens,
    for the end-of-run stop check (`eval_generate_n`); None when it is off.

    Read on the driver before training: a few rows of "val", in file order.
    """
    if n <= 0 or "val" not in datasets:
        return None
    tokenizer = instantiate(cfg["tokenizer"], key="tokenizer")
    rows = (row["tokens"] for row in datasets["val"].iter_rows())
    return {
        "prompts": [list(map(int, p)) for p in validation_prompts(tokenizer, rows, n)],
        "stop_tokens": sorted(tokenizer.stop_tokens),
    }


def scaling_config(settings: RecipeSettings) -> ScalingConfig:
    """`ray.num_workers` workers, on GPUs when `ray.use_gpu` says so ("auto": when the
    cluster has one and `device` is cuda), on the nodes `ray.label_selector` names."""
    use_gpu = settings.ray.use_gpu
    if use_gpu == "auto":
        use_gpu = settings.device == "cuda" and ray.cluster_resources().get("GPU", 0) > 0
    return ScalingConfig(
        num_workers=settings.ray.num_workers,
        use_gpu=bool(use_gpu),
        resources_per_worker=settings.ray.resources_per_worker,
        label_selector=settings.ray.label_selector,
    )


def run_config(settings: RecipeSettings) -> RunConfig:
    """The run's name and storage (the same pair resumes it), failures, checkpoints kept."""
    storage = settings.ray.storage_path or str(Path(settings.output_dir, "ray_results").resolve())
    return RunConfig(
        name=settings.ray.name,
        storage_path=storage,
        failure_config=FailureConfig(max_failures=settings.ray.max_failures),
        checkpoint_config=CheckpointConfig(num_to_keep=settings.ray.num_to_keep),
    )


def dataset_config(datasets: dict[str, Any]) -> DataConfig:
    """Keep each dataset's own execution options, which Ray Train would replace.

    chat_dataset sets `preserve_order`, so the split hands each rank the same rows in the
    same order on every run (resume skips exactly the consumed batches), and its memory bound.
    """
    return DataConfig(
        execution_options={name: ds.context.execution_options for name, ds in datasets.items()}
    )


def _causes(exc: BaseException) -> Iterator[BaseException]:
    """`exc` and everything it wraps: causes, contexts, Ray's task errors, worker failures."""
    seen: set[int] = set()
    todo = [exc]
    while todo:
        err = todo.pop()
        if err is None or id(err) in seen:
            continue
        seen.add(id(err))
        yield err
        todo += [err.__cause__, err.__context__, getattr(err, "cause", None)]
        todo += list(getattr(err, "worker_failures", {}).values())


def _data_error(exc: BaseException) -> BaseException | None:
    """The data error (unreadable file, too many rejected rows) a failed run ended with.

    Ray wraps the error raised in a read task or actor once per hop (task, split
    coordinator, worker); the innermost one is the original, with its plain message.
    """
    found = [err for err in _causes(exc) if isinstance(err, DATA_ERRORS)]
    plain = [err for err in found if type(err) in DATA_ERRORS]
    return (plain or found or [None])[0]


def fit(trainer: Any) -> Any:
    """`trainer.fit()`; a run that failed on its data raises that data error itself.

    Raises:
        DataFileUnreadable: a data file could not be read (named, with how far it got).
        TooManyRejectedRows: more than `max_rejected_fraction` of the rows were rejected.
    """
    try:
        return trainer.fit()
    except ray.train.TrainingFailedError as exc:
        error = _data_error(exc)
        if error is not None:
            raise error from None
        raise


def restore(
    model: nn.Module,
    optimizer: Any,
    lr_scheduler: Any,
    fresh: TrainPosition,
    logs: list[Any],
) -> TrainPosition:
    """The position of the run's latest checkpoint (seed and plan included), or `fresh`.

    Ray Train hands the worker that checkpoint when it restarts failed workers or when the
    run is started again with the same name and storage. `logs` (metrics, row ids) drop the
    records past it: the resumed run logs those steps again.
    """
    checkpoint = ray.train.get_checkpoint()
    position = fresh
    if checkpoint is not None:
        with checkpoint.as_directory() as folder:
            position = load_train_state(folder, model, optimizer, lr_scheduler)
        if position.seed is None:  # written before seeds were kept: keep this run's
            position = dataclasses.replace(position, seed=fresh.seed)
    for log in logs:
        log.truncate_after(position.global_step)
    if checkpoint is not None and ray.train.get_context().get_world_rank() == 0:
        print(
            f"raytune-chat: resumed at step {position.global_step} "
            f"(epoch {position.epoch}, step {position.step_in_epoch} in it, seed {position.seed})",
            flush=True,
        )
    return position


def report(
    model: nn.Module,
    optimizer: Any,
    lr_scheduler: Any,
    position: TrainPosition,
    metrics: dict[str, Any],
    *,
    name: str = "step",
    adapter_of: dict[str, Any] | None = None,
) -> None:
    """Every rank reports; rank 0 attaches the checkpoint (adapter, optimizer, position).

    With `adapter_of` (the model config; given on the last report) the checkpoint also holds
    the PEFT adapter in `adapter/`, so it lands in `ray.storage_path` (local or s3://).
    """
    # Every rank: an FSDP model gathers its adapter and optimizer state (collectives).
    state = train_state(model, optimizer, lr_scheduler, position)
    with tempfile.TemporaryDirectory() as tmp:
        checkpoint = None
        if ray.train.get_context().get_world_rank() == 0:
            write_train_state(tmp, state)
            if adapter_of is not None:
                write_peft_adapter(
                    unwrap_model(model), adapter_of, Path(tmp) / "adapter", state=state["adapter"]
                )
            checkpoint = ray.train.Checkpoint.from_directory(tmp)
        ray.train.report(
            {**metrics, **dataclasses.asdict(position)},
            checkpoint=checkpoint,
            checkpoint_dir_name=f"{name}_{position.global_step:07d}",
        )


def epoch_dataset(position: TrainPosition, datasets: list[str], data: Any) -> TrainPosition:
    """`position` naming the dataset this epoch reads: the token store ("cached") once it is
    complete, else the raw one ("train"). Rank 0 decides for all.

    A resumed epoch keeps the dataset it started with: skipping the consumed steps is only
    exact on the same rows in the same order.
    """
    if position.step_in_epoch > 0:
        return position
    name = "train"
    rank = ray.train.get_context().get_world_rank()
    if "cached" in datasets and rank == 0 and data.store.complete():
        name = "cached"
    return dataclasses.replace(position, dataset=from_rank_zero(name))


def val_dataset(datasets: list[str], val_data: Any) -> str:
    """The dataset a validation pass reads: the validation token store ("val_cached") once
    it is complete, else the raw one ("val"). Rank 0 decides for all."""
    name = "val"
    rank = ray.train.get_context().get_world_rank()
    if "val_cached" in datasets and rank == 0 and val_data.store.complete():
        name = "val_cached"
    return from_rank_zero(name)
