"""Peak memory while chat_dataset streams 1 GB vs 4 GB of JSON Lines: flat in the input size.

Each row is a short valid ShareGPT conversation plus a ~16 KB ``context`` column that is
read, moved through Ray and parsed but not tokenized, so the run streams every byte of the
file through the pipeline in minutes instead of the hours that tokenizing 4 GB of text
on 2 cores would take. The pipeline is the recipe's first epoch: ``chat_dataset`` with a
token store being written (``cache_path``), consumed by ``iter_chat_batches``, in a fresh
subprocess (``ray.init(num_cpus=2)``). Sampled every 0.25 s:

* machine memory in use above idle: ``MemTotal - MemAvailable`` from ``/proc/meminfo``
  (it counts Ray's shared-memory object store, which per-process RSS double counts or
  misses), minus its median over the 3 s before the run starts;
* the sums of RSS and of PSS (shared pages counted once) over the pipeline process and all
  its descendants (GCS, raylet, read tasks, tokenizer actors).

Sizes alternate over the repeats (1 GB, 4 GB, 1 GB, ...). On a shared machine other jobs
move ``MemAvailable`` too: the load average is printed with each run.

Run::

    python benchmarks/bench_memory.py            # files go to /tmp/bench_memory, deleted after
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parent.parent

PIPELINE = r"""
import sys, time, json
t0 = time.time()
import ray
ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
from raytune_chat.models.llama3 import llama3_tokenizer
from raytune_chat.datasets import chat_dataset, chat_dataset_info, iter_chat_batches
tok = llama3_tokenizer(sys.argv[2])
ds = chat_dataset(tok, source="jsonl", data_files=sys.argv[1], conversation_column="dialogue",
                  conversation_style="sharegpt", rejected_path=sys.argv[3],
                  cache_path=sys.argv[4])
collate = chat_dataset_info(ds).collate_fn()
rows = tokens = 0
for batch in iter_chat_batches(ds, batch_size=8, collate_fn=collate):
    rows += batch["tokens"].shape[0]; tokens += int((batch["tokens"] != tok.pad_id).sum())
print(json.dumps({"rows": rows, "tokens": tokens, "seconds": time.time() - t0}))
"""


def _block(target_bytes: int, seed: int = 0) -> bytes:
    rng = random.Random(seed)
    words = "the a data model chat token train stream memory ray file line row".split()
    lines, size = [], 0
    while size < target_bytes:
        n = rng.randint(1, 50)
        row = {
            "dialogue": [
                {"from": "human", "value": f"What is {n} plus {n}?"},
                {"from": "gpt", "value": f"{n} plus {n} is {2 * n}."},
            ],
            "context": " ".join(rng.choice(words) for _ in range(3000)),
        }
        line = (json.dumps(row) + "\n").encode()
        lines.append(line)
        size += len(line)
    return b"".join(lines)


def write_file(path: Path, size_bytes: int, block: bytes) -> int:
    written = 0
    with open(path, "wb") as f:
        while written < size_bytes:
            f.write(block)
            written += len(block)
    return written


def _machine_used() -> int:
    """MemTotal - MemAvailable, bytes."""
    fields = {}
    for line in Path("/proc/meminfo").read_text().splitlines():
        name, value = line.split(":", 1)
        fields[name] = int(value.split()[0]) * 1024
    return fields["MemTotal"] - fields["MemAvailable"]


def _idle_used(seconds: float = 3.0) -> int:
    samples = []
    for _ in range(int(seconds / 0.25)):
        samples.append(_machine_used())
        time.sleep(0.25)
    return sorted(samples)[len(samples) // 2]


def _tree_memory(root: psutil.Process) -> tuple[int, int]:
    rss = pss = 0
    try:
        procs = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0, 0
    for p in procs:
        try:
            info = p.memory_full_info()
            rss += info.rss
            pss += getattr(info, "pss", info.rss)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return rss, pss


def measure(data: Path, bpe: Path, workdir: Path) -> dict:
    shutil.rmtree(workdir / "cache", ignore_errors=True)
    env = dict(os.environ, PYTHONPATH=str(REPO), RAY_DATA_DISABLE_PROGRESS_BARS="1")
    cmd = [
        sys.executable,
        "-c",
        PIPELINE,
        str(data),
        str(bpe),
        str(workdir / "rejected"),
        str(workdir / "cache"),
    ]
    idle = _idle_used()
    load = os.getloadavg()[0]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    root = psutil.Process(proc.pid)
    peak = {"rss": 0, "pss": 0, "machine": 0}
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            rss, pss = _tree_memory(root)
            peak["rss"], peak["pss"] = max(peak["rss"], rss), max(peak["pss"], pss)
            peak["machine"] = max(peak["machine"], _machine_used() - idle)
            time.sleep(0.25)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    out, err = proc.communicate()
    done.set()
    sampler.join()
    if proc.returncode != 0:
        raise RuntimeError(err[-3000:])
    result = json.loads(out.strip().splitlines()[-1])
    result.update(
        load_before=round(load, 1),
        machine_above_idle_gib=peak["machine"] / 2**30,
        peak_rss_sum_gb=peak["rss"] / 2**30,
        peak_pss_sum_gb=peak["pss"] / 2**30,
    )
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes-gb", type=float, nargs="+", default=[1.0, 4.0])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/bench_memory"))
    args = parser.parse_args()
    sys.path.insert(0, str(REPO))
    from tests.assets.build_assets import cl100k_bpe_path

    args.workdir.mkdir(parents=True, exist_ok=True)
    block = _block(32 << 20)
    runs: dict[str, list[dict]] = {f"{size}GB": [] for size in args.sizes_gb}
    for repeat in range(args.repeats):
        for size in args.sizes_gb:
            data = args.workdir / f"chat_{size}gb.jsonl"
            written = write_file(data, int(size * 2**30), block)
            try:
                result = measure(data, cl100k_bpe_path(), args.workdir)
            finally:
                data.unlink()
            result["file_gb"] = written / 2**30
            runs[f"{size}GB"].append(result)
            print(json.dumps({"repeat": repeat, f"{size}GB": result}), flush=True)
    keys = ("machine_above_idle_gib", "peak_rss_sum_gb", "peak_pss_sum_gb")
    summary = {name: {k: max(r[k] for r in rs) for k in keys} for name, rs in runs.items()}
    first, last = list(summary.values())[0], list(summary.values())[-1]
    summary["ratio_last_vs_first"] = {k: last[k] / first[k] for k in keys}
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
