"""The driver of the LoRA recipes: dataset in, `TorchTrainer` run, summary and plot out.

Nothing reads the data before training starts: the step plan comes from what the dataset
knows cheaply (the pass ledger's estimate, or a token store's counts) and the workers make
it exact as the run goes. The dataset writes its token store under
`<ray.storage_path or output_dir>/token_cache/`; when the run trains more than one epoch,
the trainer also gets that store as the dataset "cached", read by every epoch that starts
after the store is complete.
"""

from __future__ import annotations

import json
import os
import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import ray
import ray.train
from ray.train import CheckpointConfig, DataConfig, FailureConfig, RunConfig, ScalingConfig
from ray.train.torch import TorchTrainer

from raytune_chat.config import ConfigError, instantiate
from raytune_chat.datasets import (
    ChatDatasetInfo,
    DataFileUnreadable,
    TooManyRejectedRows,
    chat_dataset_info,
)
from raytune_chat.recipes._plan import StepPlan, plan_from_rows
from raytune_chat.recipes._settings import RecipeSettings
from raytune_chat.recipes._validate import validate_config
from raytune_chat.recipes._worker import train_loop_per_worker
from raytune_chat.training import plot_loss
from raytune_chat.training.checkpointing import ADAPTER_MODEL_FNAME
from raytune_chat.training.metric_logging import read_metrics

ADAPTER_FILES = (f"{ADAPTER_MODEL_FNAME}.safetensors", f"{ADAPTER_MODEL_FNAME}.pt")
DATA_ERRORS = (DataFileUnreadable, TooManyRejectedRows)

__all__ = ["DATA_ERRORS", "run_lora_finetune"]


def ensure_ray() -> None:
    """Connect to `RAY_ADDRESS` when set, else start a private local cluster."""
    if not ray.is_initialized():
        ray.init(address=os.environ.get("RAY_ADDRESS", "local"))


def _storage(settings: RecipeSettings) -> str:
    return settings.ray.storage_path or str(Path(settings.output_dir, "ray_results").resolve())


def token_cache_root(settings: RecipeSettings) -> str:
    """Where a run's token stores live: under `ray.storage_path` (shared by all nodes) when
    set, else under `output_dir`."""
    root = settings.ray.storage_path or str(Path(settings.output_dir).resolve())
    return f"{root.rstrip('/')}/token_cache"


def _use_gpu(settings: RecipeSettings) -> bool:
    if settings.ray.use_gpu != "auto":
        return bool(settings.ray.use_gpu)
    return settings.device == "cuda" and ray.cluster_resources().get("GPU", 0) > 0


def _trainer(settings: RecipeSettings, datasets: dict[str, Any], loop_config: dict) -> Any:
    return TorchTrainer(
        train_loop_per_worker,
        train_loop_config=loop_config,
        scaling_config=ScalingConfig(
            num_workers=settings.ray.num_workers,
            use_gpu=_use_gpu(settings),
            resources_per_worker=settings.ray.resources_per_worker,
        ),
        run_config=RunConfig(
            name=settings.ray.name,
            storage_path=_storage(settings),
            failure_config=FailureConfig(max_failures=settings.ray.max_failures),
            checkpoint_config=CheckpointConfig(num_to_keep=settings.ray.num_to_keep),
        ),
        datasets=datasets,
        # Ray Train replaces a dataset's execution options; keep chat_dataset's order (with
        # `preserve_order` the split hands each rank the same rows in the same order on every
        # run, so resume skips exactly the consumed batches) and its memory bound.
        dataset_config=DataConfig(
            execution_options={n: d.context.execution_options for n, d in datasets.items()}
        ),
    )


def _final_adapter_folder(cfg: dict[str, Any], settings: RecipeSettings, epoch: int) -> Path | None:
    """The folder the workers' `save_final_outputs` wrote the last epoch's adapter to."""
    checkpointer = cfg.get("checkpointer")
    root = Path((checkpointer or {}).get("output_dir") or settings.output_dir)
    folder = root / f"epoch_{epoch}"
    written = any((folder / name).exists() for name in ADAPTER_FILES)
    return folder if written else None


def _summary(
    cfg: dict[str, Any],
    settings: RecipeSettings,
    info: ChatDatasetInfo,
    result: Any,
    wall: float,
) -> dict[str, Any]:
    out = Path(settings.output_dir)
    records = read_metrics(out / "metrics.jsonl") if (out / "metrics.jsonl").exists() else []
    metrics = result.metrics or {}
    stats = info.stats()
    adapter = _final_adapter_folder(cfg, settings, metrics.get("epoch_done", settings.epochs - 1))
    summary = {
        "steps": metrics.get("global_step"),
        "epochs": metrics.get("epoch"),
        "tokens": metrics.get("num_tokens"),
        "trained_tokens": metrics.get("num_trained_tokens"),
        "first_loss": records[0]["loss"] if records else None,
        "last_loss": records[-1]["loss"] if records else None,
        "rows_read": stats.rows_read,
        "rows_kept": stats.rows_kept,
        "rows_rejected": stats.rows_rejected,
        "rows_rejected_by_reason": stats.rejected_by_reason,
        "rows_filtered": stats.rows_filtered,
        "rows_truncated": stats.truncated_rows,
        "dropped": stats.dropped,  # left out on purpose: reasoning, call text, history messages
        "data_tokens": stats.num_tokens,
        "data_trained_tokens": stats.num_trained_tokens,
        "packing_fill_ratio": stats.packing_fill_ratio,
        "data_complete": stats.complete,
        "rows_tokenized": stats.rows_tokenized,
        "token_store": info.store.path if info.store is not None else None,
        "plan": {
            "planned_steps": metrics.get("planned_steps"),
            "steps_per_epoch": metrics.get("steps_per_epoch"),
            "exact": metrics.get("plan_exact"),
            "basis": metrics.get("plan_basis"),
        },
        "seed": metrics.get("seed"),
        "wall_seconds": round(wall, 1),
        "adapter": str(adapter) if adapter else None,
        "loss_plot": str(out / "loss.png") if records else None,
        "metrics": str(out / "metrics.jsonl"),
        "checkpoint": _checkpoint_uri(result.checkpoint),
        "adapter_in_storage": _adapter_in_storage(result.checkpoint),
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary


def _checkpoint_uri(checkpoint: Any) -> str | None:
    """The checkpoint's location as a URI a user can paste (`s3://…` for object storage)."""
    if checkpoint is None:
        return None
    scheme = getattr(checkpoint.filesystem, "type_name", "local")
    return checkpoint.path if scheme == "local" else f"{scheme}://{checkpoint.path}"


def _adapter_in_storage(checkpoint: Any) -> str | None:
    """Where the last checkpoint's PEFT adapter lives in `ray.storage_path`, if it has one.

    The workers write it there so it survives when `output_dir` is a worker node's local disk.
    """
    if checkpoint is None:
        return None
    adapter = f"{checkpoint.path}/adapter/adapter_config.json"
    info = checkpoint.filesystem.get_file_info(adapter)
    if info.type.name != "File":
        return None
    return f"{_checkpoint_uri(checkpoint)}/adapter"


def _print_summary(summary: dict[str, Any]) -> None:
    print("\n=== raytune-chat run summary ===", flush=True)
    for key, value in summary.items():
        print(f"  {key:24s} {value}", flush=True)


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


def _initial_plan(info: ChatDatasetInfo, settings: RecipeSettings) -> StepPlan:
    stats = info.stats()
    basis = "counted" if stats.output_rows_exact else "store" if info.reads_store else "sample"
    try:
        return plan_from_rows(
            stats.output_rows, settings, exact=stats.output_rows_exact, basis=basis
        )
    except ValueError as exc:
        raise ConfigError("batch_size", str(exc)) from exc


def run_lora_finetune(cfg: dict[str, Any], *, max_workers: int | None = None) -> dict[str, Any]:
    """Run LoRA fine-tuning on Ray Train as `cfg` describes; return the run summary.

    Training starts at the first batch: nothing counts the data first (see the module
    docstring). Rerunning with the same `ray.name` and `ray.storage_path` resumes from the
    last checkpoint (at optimizer-step granularity), with the same seed and row order.

    Args:
        cfg: a loaded config (see `raytune_chat.config.load_config`).
        max_workers: upper bound on `ray.num_workers` (1 for the single-device recipe).

    Returns:
        The summary also written to `<output_dir>/summary.json`.

    Raises:
        ConfigError: naming the key of an invalid config, before anything runs.
        DataFileUnreadable: a data file could not be read (named, with how far it got).
        TooManyRejectedRows: more than `max_rejected_fraction` of the rows were rejected.
    """
    settings = validate_config(cfg, max_workers=max_workers)
    start = time.perf_counter()
    Path(settings.output_dir).mkdir(parents=True, exist_ok=True)
    ensure_ray()
    tokenizer = instantiate(cfg["tokenizer"], key="tokenizer")
    ds = instantiate(
        cfg["dataset"], tokenizer=tokenizer, cache_path=token_cache_root(settings), key="dataset"
    )
    try:
        info = chat_dataset_info(ds)
    except KeyError as exc:
        raise ConfigError("dataset._component_", "must build a chat_dataset") from exc
    plan = _initial_plan(info, settings)
    # `seed: null` draws a seed here; the checkpoints keep it, so a resumed run (a new
    # driver drawing another one) continues with the seed the run started with.
    seed = settings.seed if settings.seed is not None else secrets.randbelow(2**31)
    datasets = {"train": ds}
    if settings.epochs > 1 and not info.reads_store and info.store is not None:
        datasets["cached"] = info.store_dataset()
    source = "the token store" if info.reads_store else "the raw files, tokenizing as it streams"
    drawn = " (drawn: the config says seed: null)" if settings.seed is None else ""
    print(
        f"raytune-chat: training starts now, reading {source}; plan {plan.describe()}; "
        f"seed {seed}{drawn}, unless a checkpoint resumes with its own",
        flush=True,
    )
    loop_config = {
        "cfg": cfg,
        "plan": plan,
        "seed": seed,
        "data": info,
        "datasets": sorted(datasets),
    }
    try:
        result = _trainer(settings, datasets, loop_config).fit()
    except ray.train.TrainingFailedError as exc:
        error = _data_error(exc)
        if error is not None:
            raise error from None
        raise
    out = Path(settings.output_dir)
    if (out / "metrics.jsonl").exists():
        plot_loss(out / "metrics.jsonl", out / "loss.png")
    summary = _summary(cfg, settings, info, result, time.perf_counter() - start)
    _print_summary(summary)
    return summary
