"""The run summary a recipe prints and writes to `<output_dir>/summary.json` (no Ray).

With `ray.storage_path` set the summary and the loss plot also go to
`<storage_path>/<ray.name>/outputs/`, and the metrics are read from there when rank 0 ran on
another node than the driver (`raytune_chat.training._storage`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from raytune_chat.training._loss_plot import plot_loss
from raytune_chat.training._storage import copy_outputs_to_storage, fetch_output, output_in_storage
from raytune_chat.training.checkpointing import ADAPTER_MODEL_FNAME
from raytune_chat.training.metric_logging import read_metrics
from raytune_chat.training.recipe_config import RecipeSettings

__all__ = ["print_start", "print_summary", "write_summary"]

_ADAPTER_FILES = (f"{ADAPTER_MODEL_FNAME}.safetensors", f"{ADAPTER_MODEL_FNAME}.pt")


def _final_adapter_folder(cfg: dict[str, Any], settings: RecipeSettings, epoch: int) -> str | None:
    """The folder rank 0's `save_final_outputs` wrote the last epoch's adapter to: here when
    rank 0 ran on this node, else its copy in storage."""
    checkpointer = cfg.get("checkpointer")
    root = Path((checkpointer or {}).get("output_dir") or settings.output_dir)
    folder = root / f"epoch_{epoch}"
    if any((folder / name).exists() for name in _ADAPTER_FILES):
        return str(folder)
    return output_in_storage(settings, folder)


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


def write_summary(
    cfg: dict[str, Any],
    settings: RecipeSettings,
    info: Any,
    result: Any,
    wall: float,
    *,
    val_data: Any = None,
) -> dict[str, Any]:
    """Plot the loss, write `summary.json` (steps, tokens, row counts, plan, outputs); return it.

    Args:
        cfg: the run's config.
        settings: its parsed top-level keys.
        info: the dataset's `ChatDatasetInfo` (its pass ledger has the final row counts).
        result: what `TorchTrainer.fit()` returned (last metrics and checkpoint).
        wall: seconds the run took.
        val_data: the `dataset_val` dataset's `ChatDatasetInfo`, or None: its losses and
            row counts go in the summary as `val_*`, apart from the training rows'.
    """
    out = Path(settings.output_dir)
    logged = []
    if not (out / "metrics.jsonl").exists():  # rank 0 ran on another node: its copy
        fetch_output(settings, "metrics.jsonl", out / "metrics.jsonl")
    if (out / "metrics.jsonl").exists():
        plot_loss(out / "metrics.jsonl", out / "loss.png")
        logged = read_metrics(out / "metrics.jsonl")
    records = [r for r in logged if "loss" in r]
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
        "adapter": adapter,
        "loss_plot": str(out / "loss.png") if records else None,
        "metrics": str(out / "metrics.jsonl"),
        "checkpoint": _checkpoint_uri(result.checkpoint),
        "adapter_in_storage": _adapter_in_storage(result.checkpoint),
        "outputs_in_storage": output_in_storage(settings, out),
    }
    if val_data is not None:
        summary.update(_val_summary(val_data, [r for r in logged if "val_loss" in r]))
    stops = [r for r in logged if "stop_share" in r]
    if stops:  # `eval_generate_n`: did the model learn to stop?
        summary["stop_share"] = stops[-1]["stop_share"]
        summary["stop_share_n"] = stops[-1]["stop_share_n"]
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    copy_outputs_to_storage(settings, only=[out / "summary.json", out / "loss.png"])
    return summary


def _val_summary(val_data: Any, records: list[dict[str, Any]]) -> dict[str, Any]:
    """The validation losses (last, lowest and its step) and the validation rows' counts."""
    best = min(records, key=lambda r: r["val_loss"], default=None)
    stats = val_data.stats()
    return {
        "val_loss": records[-1]["val_loss"] if records else None,
        "val_loss_min": best["val_loss"] if best else None,
        "val_loss_min_step": best["step"] if best else None,
        "val_losses": [[r["step"], r["val_loss"]] for r in records],
        "val_rows_read": stats.rows_read,
        "val_rows_kept": stats.rows_kept,
        "val_rows_rejected": stats.rows_rejected,
        "val_rows_rejected_by_reason": stats.rejected_by_reason,
        "val_data_complete": stats.complete,
        "val_rejected_path": val_data.rejected_path,
    }


def print_start(info: Any, plan: Any, seed: int, settings: RecipeSettings) -> None:
    """The line a run starts with: what it reads, its step plan and its seed."""
    source = "the token store" if info.reads_store else "the raw files, tokenizing as it streams"
    drawn = " (drawn: the config says seed: null)" if settings.seed is None else ""
    print(
        f"raytune-chat: training starts now, reading {source}; plan {plan.describe()}; "
        f"seed {seed}{drawn}, unless a checkpoint resumes with its own",
        flush=True,
    )


def print_summary(summary: dict[str, Any]) -> None:
    """Print the summary as one `key value` line each."""
    print("\n=== raytune-chat run summary ===", flush=True)
    for key, value in summary.items():
        print(f"  {key:24s} {value}", flush=True)
