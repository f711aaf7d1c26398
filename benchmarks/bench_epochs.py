"""Epoch 2+ against epoch 1, data side: the first pass tokenizes (and fills the token store),
later passes read the store.

The training step is the same in every epoch; what differs is where the rows come from. One
JSON Lines file of conversations (`make_sample_chat.py`), `chat_dataset` consumed with
`iter_chat_batches(batch_size=8)` as the recipe does, each pass in a fresh process
(`ray.init(num_cpus=2)`, start-up included), three kinds interleaved per repeat:

* `raw`: no token store (what every epoch cost before), the pass ledger counting as it goes;
* `raw+store`: the first epoch of a run: tokenize and write the store in the same pass;
* `store`: a later epoch (or a resumed run): read the complete store, tokenize nothing.

Also the pass ledger's cost: the round trip of one ledger call, timed from a Ray task, against
the tokenize stage's time per 256-row batch.

Run::

    python benchmarks/bench_epochs.py --num 100000 --repeats 3
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

PASS = r"""
import sys, time, json
t0 = float(sys.argv[4])
import ray
ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
from raytune_chat.models.llama3 import llama3_tokenizer
from raytune_chat.datasets import chat_dataset, chat_dataset_info, iter_chat_batches
tok = llama3_tokenizer(sys.argv[2])
cache = None if sys.argv[3] == "-" else sys.argv[3]
ds = chat_dataset(tok, source="jsonl", data_files=sys.argv[1], conversation_column="dialogue",
                  conversation_style="sharegpt", rejected_path=sys.argv[5], cache_path=cache)
info = chat_dataset_info(ds)
collate = info.collate_fn()
rows = tokens = 0
for batch in iter_chat_batches(ds, batch_size=8, collate_fn=collate):
    rows += batch["tokens"].shape[0]; tokens += int((batch["tokens"] != tok.pad_id).sum())
seconds = time.time() - t0
stats = info.stats()
print(json.dumps({"rows": rows, "tokens": tokens, "seconds": seconds,
                  "reads_store": info.reads_store, "rows_tokenized": stats.rows_tokenized,
                  "complete": stats.complete}))
"""

LEDGER = r"""
import json, time, ray
ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
from raytune_chat.datasets._ledger import BatchCounts
from raytune_chat.datasets._ledger_actor import start_ledger
ledger = start_ledger(file_sizes=[1])
ledger.snapshot()
@ray.remote(num_cpus=0.25)
def calls(client, n):
    counts = BatchCounts(records=256, kept=255, rejected={"invalid_json": 1}, filtered=0,
                         truncated=3, tokens=20000, trained_tokens=9000)
    start = time.perf_counter()
    for i in range(n):
        client.tokenized(i, counts)
    return (time.perf_counter() - start) / n
print(json.dumps({"ledger_call_ms": 1000 * ray.get(calls.remote(ledger, 2000))}))
"""


def run(code: str, *args: str) -> dict:
    env = dict(os.environ, PYTHONPATH=str(REPO), RAY_DATA_DISABLE_PROGRESS_BARS="1")
    env.pop("RAY_ADDRESS", None)
    out = subprocess.run(
        [sys.executable, "-c", code, *args], env=env, capture_output=True, text=True, check=False
    )
    if out.returncode != 0:
        raise RuntimeError(out.stderr[-3000:])
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num", type=int, default=100000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--workdir", type=Path, default=Path(tempfile.gettempdir()) / "bench_epochs"
    )
    args = parser.parse_args()
    sys.path.insert(0, str(REPO))
    from tests.assets.build_assets import cl100k_bpe_path

    args.workdir.mkdir(parents=True, exist_ok=True)
    data = args.workdir / f"chat_{args.num}.jsonl"
    if not data.exists():
        subprocess.run(
            [
                sys.executable,
                str(REPO / "benchmarks" / "make_sample_chat.py"),
                "--num",
                str(args.num),
                "--jsonl",
                "--seed",
                "1",
                "--out",
                str(data),
            ],
            check=True,
        )
    bpe, rejected = str(cl100k_bpe_path()), str(args.workdir / "rejected")
    cache = args.workdir / "cache"
    seconds: dict[str, list[float]] = {"raw": [], "raw+store": [], "store": []}
    for repeat in range(args.repeats):
        shutil.rmtree(cache, ignore_errors=True)
        for kind, store in (("raw", "-"), ("raw+store", str(cache)), ("store", str(cache))):
            load = os.getloadavg()[0]
            got = run(PASS, str(data), bpe, store, str(time.time()), rejected)
            assert got["reads_store"] == (kind == "store"), got
            seconds[kind].append(got["seconds"])
            print(
                json.dumps({"repeat": repeat, "kind": kind, "load_before": round(load, 1), **got}),
                flush=True,
            )
    med = {k: round(statistics.median(v), 1) for k, v in seconds.items()}
    ledger = run(LEDGER)
    print(
        json.dumps(
            {
                "median_seconds": med,
                "store_vs_raw": round(med["store"] / med["raw"], 2),
                "raw+store_vs_raw": round(med["raw+store"] / med["raw"], 2),
                **ledger,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
