"""Plot the training loss of a run from its metrics JSON lines."""

from __future__ import annotations

from pathlib import Path

from raytune_chat.training.metric_logging import read_metrics

__all__ = ["plot_loss"]


def plot_loss(metrics_path: str | Path, out_path: str | Path) -> Path:
    """Write a loss-vs-step PNG from a `DiskLogger` file; return its path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    records = [r for r in read_metrics(metrics_path) if "loss" in r]
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot([r["step"] for r in records], [r["loss"] for r in records], marker=".")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("loss per trained token")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out_path, dpi=100)
    plt.close(fig)
    return Path(out_path)
