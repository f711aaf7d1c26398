"""Peak memory of all processes while chat_dataset streams 0.5 GB vs 4 GB of JSON Lines.

Each row is a short valid ShareGPT conversation plus a ~16 KB ``context`` column that is
read, moved through Ray and parsed but not tokenized, so the run streams every byte of the
file through the pipeline in minutes instead of the hours that tokenizing 4 GB of text
on 2 cores would take. The pipeline runs in a fresh subprocess (``ray.init(num_cpus=2)``); a
sampler sums RSS and PSS (proportional set size: shared object-store pages counted once)
over that process and all its descendants (GCS, raylet, workers) every 0.5 s.

Run::

    python benchmarks/bench_memory.py            # files go to /tmp/bench_memory, deleted after
"""

from __future__ import annotations

import argparse
import json
import os
import random
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
                  conversation_style="sharegpt", rejected_path=sys.argv[3])
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
    env = dict(os.environ, PYTHONPATH=str(REPO), RAY_DATA_DISABLE_PROGRESS_BARS="1")
    cmd = [sys.executable, "-c", PIPELINE, str(data), str(bpe), str(workdir / "rejected")]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    root = psutil.Process(proc.pid)
    peak = {"rss": 0, "pss": 0}
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            rss, pss = _tree_memory(root)
            peak["rss"], peak["pss"] = max(peak["rss"], rss), max(peak["pss"], pss)
            time.sleep(0.5)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    out, err = proc.communicate()
    done.set()
    sampler.join()
    if proc.returncode != 0:
        raise RuntimeError(err[-3000:])
    result = json.loads(out.strip().splitlines()[-1])
    result.update(peak_rss_sum_gb=peak["rss"] / 2**30, peak_pss_sum_gb=peak["pss"] / 2**30)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes-gb", type=float, nargs="+", default=[0.5, 4.0])
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/bench_memory"))
    args = parser.parse_args()
    sys.path.insert(0, str(REPO))
    from tests.assets.build_assets import cl100k_bpe_path

    args.workdir.mkdir(parents=True, exist_ok=True)
    block = _block(32 << 20)
    results = {}
    for size in args.sizes_gb:
        data = args.workdir / f"chat_{size}gb.jsonl"
        written = write_file(data, int(size * 2**30), block)
        try:
            result = measure(data, cl100k_bpe_path(), args.workdir)
        finally:
            data.unlink()
        result["file_gb"] = written / 2**30
        results[f"{size}GB"] = result
        print(json.dumps({f"{size}GB": result}), flush=True)
    sizes = list(results.values())
    if len(sizes) >= 2:
        for key in ("peak_rss_sum_gb", "peak_pss_sum_gb"):
            results[f"{key}_ratio_last_vs_first"] = sizes[-1][key] / sizes[0][key]
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
