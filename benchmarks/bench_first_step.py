"""Seconds from `raytune-chat run` to the first logged step: 2,000 vs 200,000 conversations.

Training must start when the first batch is ready, however large the data: the two times
should be about the same (target: ratio <= 1.3). Each run is the tiny CPU config on a JSON
Lines file made by `make_sample_chat.py`, in a fresh process and a fresh output folder
(nothing to resume, no token store yet), timed from starting the command to the line
`Step 1 | ...`; it then stops after `max_steps=2`. Sizes alternate (small, large, small,
...) so a change in machine load hits both; medians and the ratio of medians are printed,
and each pair's ratio.

`--baseline-src DIR` also times the same command on another checkout of the package (e.g.
`git archive <commit> | tar -x -C DIR`), interleaved the same way, for a before/after.

Run::

    python benchmarks/bench_first_step.py --repeats 3
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
_FIRST_STEP = re.compile(r"Step 1 \|")


def make_data(folder: Path, num: int) -> Path:
    out = folder / f"chat_{num}.jsonl"
    if not out.exists():
        cmd = [sys.executable, str(REPO / "benchmarks" / "make_sample_chat.py")]
        subprocess.run(
            [*cmd, "--num", str(num), "--jsonl", "--seed", "1", "--out", str(out)], check=True
        )
    return out


def time_first_step(data: Path, work: Path, src: Path | None, timeout: float) -> dict:
    """Run the tiny config on `data`; seconds to the first logged step, and to the end."""
    out = work / "out"
    shutil.rmtree(out, ignore_errors=True)
    env = dict(os.environ, RAY_DATA_DISABLE_PROGRESS_BARS="1")
    env.pop("RAY_ADDRESS", None)
    if src is not None:
        env["PYTHONPATH"] = f"{src}{os.pathsep}{env.get('PYTHONPATH', '')}"
    cmd = [
        sys.executable,
        "-m",
        "raytune_chat._cli",
        "run",
        "lora_finetune_single_device",
        "--config",
        "tiny/llama3_lora_cpu",
        f"dataset.data_files={data}",
        f"output_dir={out}",
        "log_every_n_steps=1",
        "max_steps_per_epoch=2",
        "save_every_n_steps=null",
    ]
    start = time.perf_counter()
    proc = subprocess.Popen(
        cmd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=work,
        start_new_session=True,
    )
    first: list[float] = []
    tail: list[str] = []

    def watch() -> None:
        for line in proc.stdout:
            tail.append(line)
            del tail[:-40]
            if not first and _FIRST_STEP.search(line):
                first.append(time.perf_counter() - start)

    reader = threading.Thread(target=watch, daemon=True)
    reader.start()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, 9)
        proc.wait()
    reader.join(timeout=10)
    if not first or proc.returncode != 0:
        raise RuntimeError(f"run failed (rc {proc.returncode}):\n{''.join(tail)}")
    return {"first_step_s": round(first[0], 1), "total_s": round(time.perf_counter() - start, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs=2, default=[2000, 200000])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--workdir", type=Path, default=Path(tempfile.gettempdir()) / "bench_first_step"
    )
    parser.add_argument("--baseline-src", type=Path, default=None)
    parser.add_argument("--timeout", type=float, default=900)
    args = parser.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    data = {n: make_data(args.workdir, n) for n in args.sizes}
    sides = {"this": None, **({"baseline": args.baseline_src} if args.baseline_src else {})}
    times: dict[str, dict[int, list[float]]] = {s: {n: [] for n in args.sizes} for s in sides}
    for repeat in range(args.repeats):
        for side, src in sides.items():
            for n in args.sizes:
                load = os.getloadavg()[0]
                got = time_first_step(data[n], args.workdir, src, args.timeout)
                times[side][n].append(got["first_step_s"])
                print(
                    json.dumps(
                        {
                            "repeat": repeat,
                            "side": side,
                            "conversations": n,
                            "load_before": round(load, 1),
                            **got,
                        }
                    ),
                    flush=True,
                )
    small, large = args.sizes
    summary = {}
    for side in sides:
        med = {n: statistics.median(times[side][n]) for n in args.sizes}
        pairs = [
            round(b / a, 2) for a, b in zip(times[side][small], times[side][large], strict=True)
        ]
        summary[side] = {
            "median_first_step_s": med,
            "ratio_of_medians": round(med[large] / med[small], 2),
            "ratio_per_pair": pairs,
        }
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
