"""Helpers of the tests that interrupt 2-worker runs and check the row-id fingerprint.

`log_row_ids: True` makes every rank log the row ids of each step to
`<output_dir>/row_ids/rank_<r>.jsonl`; a resumed run truncates it after its checkpoint's step,
so over the whole run each row of an epoch must appear exactly once.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import psutil

from raytune_chat.training.metric_logging import read_metrics
from tests.recipes._tiny import fast_overrides


def row_log(out: Path) -> dict[int, list[dict]]:
    """Each rank's row-id log: {rank: [{"step", "epoch", "row_ids"}, ...]}."""
    return {int(p.stem.split("_")[1]): read_metrics(p) for p in sorted((out / "row_ids").glob("*"))}


def two_workers(out: Path, data: Path | str, *extra: str) -> list[str]:
    """Overrides of a 2-worker run on `data`, shuffled with a drawn seed, row ids logged."""
    return [
        *fast_overrides(out, data),
        "ray.num_workers=2",
        "ray.resources_per_worker={CPU: 0.25}",
        "max_steps_per_epoch=null",
        "shuffle=True",
        "seed=null",
        "log_row_ids=True",
        "log_peak_memory_stats=False",
        *extra,
    ]


def registered_step(storage: Path) -> int:
    """The step of the newest checkpoint Ray Train's controller has registered (0: none)."""
    for snapshot in storage.glob("*/checkpoint_manager_snapshot.json"):
        try:
            results = json.loads(snapshot.read_text())["checkpoint_results"]
        except (OSError, ValueError, KeyError):
            return 0  # being written: look again
        steps = [int(m) for m in re.findall(r"_(\d{7})", json.dumps(results))]
        return max(steps, default=0)
    return 0


def logged_step(out: Path, rank: int = 0) -> int:
    """The last step in rank `rank`'s row-id log (0: none yet)."""
    path = out / "row_ids" / f"rank_{rank}.jsonl"
    try:
        return max((r["step"] for r in read_metrics(path)), default=0)
    except (OSError, ValueError):
        return 0


def holding(path: Path) -> list[psutil.Process]:
    """This test's processes (Ray workers are children of its raylet) with a file open at
    `path` or below it."""
    found = []
    for proc in psutil.Process().children(recursive=True):
        try:
            if any(Path(f.path).is_relative_to(path) for f in proc.open_files()):
                found.append(proc)
        except psutil.Error:
            continue
    return found
