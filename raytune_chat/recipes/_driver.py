"""The driver of the LoRA recipes: dataset in, `TorchTrainer` run, summary and plot out."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import ray
import ray.train
from ray.data import ExecutionOptions
from ray.train import CheckpointConfig, DataConfig, FailureConfig, RunConfig, ScalingConfig
from ray.train.torch import TorchTrainer

from raytune_chat.config import ConfigError, instantiate
from raytune_chat.datasets import chat_dataset_info, dataset_stats
from raytune_chat.recipes._settings import RecipeSettings
from raytune_chat.recipes._validate import validate_config
from raytune_chat.recipes._worker import train_loop_per_worker
from raytune_chat.training import plot_loss
from raytune_chat.training.checkpointing import ADAPTER_MODEL_FNAME
from raytune_chat.training.metric_logging import read_metrics

ADAPTER_FILES = (f"{ADAPTER_MODEL_FNAME}.safetensors", f"{ADAPTER_MODEL_FNAME}.pt")

__all__ = ["plan_steps", "run_lora_finetune"]


def ensure_ray() -> None:
    """Connect to `RAY_ADDRESS` when set, else start a private local cluster."""
    if not ray.is_initialized():
        ray.init(address=os.environ.get("RAY_ADDRESS", "local"))


def plan_steps(num_rows: int, settings: RecipeSettings) -> dict[str, int]:
    """Optimizer steps per epoch and in total for `num_rows` dataset rows.

    Each worker gets `num_rows // num_workers` rows (equal shards), full batches only, and a
    step takes `gradient_accumulation_steps` batches; `max_steps_per_epoch` caps it.

    Raises:
        ValueError: when not even one step fits.

    Example:
        >>> from raytune_chat.recipes._settings import RecipeSettings, RaySettings
        >>> plan_steps(100, RecipeSettings(output_dir="o", batch_size=4,
        ...                                gradient_accumulation_steps=2, epochs=3))
        {'steps_per_epoch': 12, 'total_steps': 36}
    """
    per_worker = num_rows // settings.ray.num_workers
    steps = per_worker // settings.batch_size // settings.gradient_accumulation_steps
    if settings.max_steps_per_epoch is not None:
        steps = min(steps, settings.max_steps_per_epoch)
    if steps < 1:
        raise ValueError(
            f"{num_rows} rows give no full optimizer step with batch_size={settings.batch_size}, "
            f"gradient_accumulation_steps={settings.gradient_accumulation_steps}, "
            f"num_workers={settings.ray.num_workers}"
        )
    return {"steps_per_epoch": steps, "total_steps": steps * settings.epochs}


def _use_gpu(settings: RecipeSettings) -> bool:
    if settings.ray.use_gpu != "auto":
        return bool(settings.ray.use_gpu)
    return settings.device == "cuda" and ray.cluster_resources().get("GPU", 0) > 0


def _trainer(settings: RecipeSettings, ds: Any, execution_options: Any, loop_config: dict) -> Any:
    storage = settings.ray.storage_path or str(Path(settings.output_dir, "ray_results").resolve())
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
            storage_path=storage,
            failure_config=FailureConfig(max_failures=settings.ray.max_failures),
            checkpoint_config=CheckpointConfig(num_to_keep=settings.ray.num_to_keep),
        ),
        datasets={"train": ds},
        # Ray Train replaces a dataset's execution options; keep chat_dataset's seeded order
        # (resume skips exactly the consumed batches) and its memory bound.
        dataset_config=DataConfig(execution_options={"train": execution_options}),
    )


def _final_adapter_folder(cfg: dict[str, Any], settings: RecipeSettings) -> Path | None:
    """The folder the workers' `save_final_outputs` wrote the last epoch's adapter to."""
    checkpointer = cfg.get("checkpointer")
    root = Path((checkpointer or {}).get("output_dir") or settings.output_dir)
    folder = root / f"epoch_{settings.epochs - 1}"
    written = any((folder / name).exists() for name in ADAPTER_FILES)
    return folder if written else None


def _summary(
    cfg: dict[str, Any], settings: RecipeSettings, stats: Any, result: Any, wall: float
) -> dict[str, Any]:
    out = Path(settings.output_dir)
    records = read_metrics(out / "metrics.jsonl") if (out / "metrics.jsonl").exists() else []
    metrics = result.metrics or {}
    adapter = _final_adapter_folder(cfg, settings)
    summary = {
        "steps": metrics.get("global_step"),
        "epochs": metrics.get("epoch"),
        "tokens": metrics.get("num_tokens"),
        "trained_tokens": metrics.get("num_trained_tokens"),
        "first_loss": records[0]["loss"] if records else None,
        "last_loss": records[-1]["loss"] if records else None,
        "rows_read": stats.rows_read,
        "rows_kept": stats.rows_kept,
        "rows_rejected_by_reason": stats.rejected_by_reason,
        "dropped": stats.dropped,  # left out on purpose: reasoning, call text, history messages
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


def run_lora_finetune(cfg: dict[str, Any], *, max_workers: int | None = None) -> dict[str, Any]:
    """Run LoRA fine-tuning on Ray Train as `cfg` describes; return the run summary.

    Rerunning with the same `ray.name` and `ray.storage_path` resumes from the last
    checkpoint (at optimizer-step granularity).

    Args:
        cfg: a loaded config (see `raytune_chat.config.load_config`).
        max_workers: upper bound on `ray.num_workers` (1 for the single-device recipe).

    Returns:
        The summary also written to `<output_dir>/summary.json`.

    Raises:
        ConfigError: naming the key of an invalid config, before anything runs.
    """
    settings = validate_config(cfg, max_workers=max_workers)
    start = time.perf_counter()
    Path(settings.output_dir).mkdir(parents=True, exist_ok=True)
    ensure_ray()
    tokenizer = instantiate(cfg["tokenizer"], key="tokenizer")
    ds = instantiate(cfg["dataset"], tokenizer=tokenizer, key="dataset")
    try:
        info = chat_dataset_info(ds)
    except KeyError as exc:
        raise ConfigError("dataset._component_", "must build a chat_dataset") from exc
    collate = info.collate_fn()
    stats = dataset_stats(ds)
    plan = plan_steps(stats.packed_rows or stats.rows_kept, settings)
    print(
        f"raytune-chat: {stats.rows_kept} conversations kept, {stats.rows_rejected} rejected; "
        f"{plan['steps_per_epoch']} steps/epoch, {plan['total_steps']} steps in all",
        flush=True,
    )
    loop_config = {"cfg": cfg, "plan": plan, "collate": collate}
    execution_options = info.execution_options or ExecutionOptions(preserve_order=True)
    result = _trainer(settings, ds, execution_options, loop_config).fit()
    out = Path(settings.output_dir)
    if (out / "metrics.jsonl").exists():
        plot_loss(out / "metrics.jsonl", out / "loss.png")
    summary = _summary(cfg, settings, stats, result, time.perf_counter() - start)
    summary["plan"] = plan
    _print_summary(summary)
    return summary
