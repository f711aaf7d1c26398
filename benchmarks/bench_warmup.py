"""What starting Ray Data's helper actors early (`datasets/_warmup.py`) saves before a first batch.

Each run is a fresh process: ``ray.init(num_cpus=2)``, a chat dataset over a small JSON Lines
file, then ``--busy`` seconds of the caller's own work (a sleep standing in for importing
torch and building the model, which the recipe does after building the dataset), then the
time to the first batch of ``iter_chat_batches``. With the head start (the package as it
is), Ray Data's autoscaling coordinator, stats actor and actor-location tracker start
during the busy time; without it (``--no-warmup`` replaces ``start_ray_data_actors`` by a
no-op), they start when the first batch is asked for. Runs alternate (with, without, ...)
so a change in machine load hits both sides.

    .venv/bin/python benchmarks/bench_warmup.py --repeats 3
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # run from a source checkout


def measure(data: str, busy: float, warmup: bool) -> dict[str, float]:
    """In a fresh process: seconds from the end of the caller's work to the first batch."""
    import ray

    import raytune_chat.datasets._chat_dataset as chat_module
    from raytune_chat.data import PaddedCollate
    from raytune_chat.datasets import chat_dataset, iter_chat_batches
    from raytune_chat.models.llama3 import llama3_tokenizer
    from tests.assets.build_assets import cl100k_bpe_path

    if not warmup:
        chat_module.start_ray_data_actors = lambda: False
    start = time.perf_counter()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    tokenizer = llama3_tokenizer(str(cl100k_bpe_path()), max_seq_len=256)
    ds = chat_dataset(
        tokenizer,
        source="json",
        data_files=data,
        conversation_column="dialogue",
        conversation_style="sharegpt",
        rejected_path=tempfile.mkdtemp(),
    )
    built = time.perf_counter()
    time.sleep(busy)  # the caller's own start-up (torch, the model) overlaps Ray Data's
    asked = time.perf_counter()
    batches = iter_chat_batches(ds, batch_size=8, collate_fn=PaddedCollate(pad_id=0))
    next(iter(batches))
    first = time.perf_counter()
    ray.shutdown()
    return {
        "build_s": round(built - start, 2),
        "first_batch_after_busy_s": round(first - asked, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--busy", type=float, default=8.0)
    parser.add_argument("--conversations", type=int, default=2000)
    parser.add_argument("--measure", nargs=2, metavar=("DATA", "WARMUP"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        data, warmup = args.measure
        print(json.dumps(measure(data, args.busy, warmup == "1")))
        return

    work = Path(tempfile.mkdtemp(prefix="bench_warmup_"))
    data = work / "chat.jsonl"
    make = [sys.executable, str(REPO / "benchmarks" / "make_sample_chat.py")]
    make += ["--num", str(args.conversations), "--jsonl", "--seed", "1", "--out", str(data)]
    subprocess.run(make, check=True)
    env = dict(os.environ, RAY_DATA_DISABLE_PROGRESS_BARS="1")
    env.pop("RAY_ADDRESS", None)
    times: dict[str, list[float]] = {"with head start": [], "without": []}
    for repeat in range(args.repeats):
        for side, flag in (("with head start", "1"), ("without", "0")):
            load = os.getloadavg()[0]
            command = [sys.executable, __file__, "--busy", str(args.busy)]
            result = subprocess.run(
                [*command, "--measure", str(data), flag],
                check=True,
                capture_output=True,
                text=True,
                env=env,
                cwd=work,
            )
            got = json.loads(result.stdout.strip().splitlines()[-1])
            times[side].append(got["first_batch_after_busy_s"])
            line = {"repeat": repeat, "side": side, "load_before": round(load, 1), **got}
            print(json.dumps(line), flush=True)
    medians = {side: statistics.median(values) for side, values in times.items()}
    print(json.dumps({"median_first_batch_after_busy_s": medians}, indent=2))


if __name__ == "__main__":
    main()
