"""Plot the training loss of a run, and its validation loss if any, from its metrics JSON lines."""

from __future__ import annotations

from pathlib import Path

from raytune_chat.training.metric_logging import read_metrics

__all__ = ["plot_loss"]


def plot_loss(metrics_path: str | Path, out_path: str | Path) -> Path:
    """Write a loss-vs-step PNG from a `DiskLogger` file; return its path.

    The validation loss (records with `val_loss`) is drawn on the same axes, as points
    joined by a dashed line, so the step where it turns up (overfitting) shows.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    logged = read_metrics(metrics_path)
    records = [r for r in logged if "loss" in r]
    val = [r for r in logged if "val_loss" in r]
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot([r["step"] for r in records], [r["loss"] for r in records], marker=".", label="train")
    if val:
        steps, losses = [r["step"] for r in val], [r["val_loss"] for r in val]
        ax.plot(steps, losses, marker="o", linestyle="--", label="validation")
        ax.legend()
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("loss per trained token")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out_path, dpi=100)
    plt.close(fig)
    return Path(out_path)
