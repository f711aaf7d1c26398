"""Driver CPU to consume tokenized rows in batches of 8: iter_torch_batches vs iter_chat_batches.

The 100k conversations of bench_pipeline.py are tokenized once and materialized in Ray's
object store, so only the consuming side is timed: Ray Data's ``iter_torch_batches`` (one
Ray batch per training batch) against :func:`raytune_chat.datasets.iter_chat_batches` (Ray
hands over 1,024 rows at a time, the batches of 8 are cut locally). Both use the padded
collate class and yield the same tensors; each is run twice, alternating.

Run::

    python benchmarks/bench_batches.py     # uses /tmp/bench_pipeline/chat.jsonl (made if missing)
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("/tmp/bench_pipeline/chat.jsonl"))
    parser.add_argument("--batch-size", type=int, default=8)
    args = parser.parse_args()

    sys.path.insert(0, str(REPO))
    from benchmarks.make_sample_chat import write_sample
    from tests.assets.build_assets import cl100k_bpe_path

    if not args.data.exists():
        args.data.parent.mkdir(parents=True, exist_ok=True)
        write_sample(args.data, num=100_000, seed=1, jsonl=True)

    import ray

    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    from raytune_chat.datasets import chat_dataset, chat_dataset_info, iter_chat_batches
    from raytune_chat.models.llama3 import llama3_tokenizer

    tokenizer = llama3_tokenizer(str(cl100k_bpe_path()))
    ds = chat_dataset(
        tokenizer,
        source="json",
        data_files=str(args.data),
        conversation_column="dialogue",
        conversation_style="sharegpt",
    )
    collate = chat_dataset_info(ds).collate_fn()
    done = ds.materialize()
    ways = {
        "iter_torch_batches": lambda: done.iter_torch_batches(
            batch_size=args.batch_size, collate_fn=collate
        ),
        "iter_chat_batches": lambda: iter_chat_batches(
            done, batch_size=args.batch_size, collate_fn=collate
        ),
    }
    results: dict[str, list[dict]] = {name: [] for name in ways}
    for _ in range(2):
        for name, batches in ways.items():
            cpu, wall, rows = time.process_time(), time.time(), 0
            for batch in batches():
                rows += batch["tokens"].shape[0]
            results[name].append(
                {
                    "rows": rows,
                    "wall_s": round(time.time() - wall, 2),
                    "driver_cpu_s": round(time.process_time() - cpu, 2),
                }
            )
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
