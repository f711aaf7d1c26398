"""Rows/s of the tokenization map stage (`TokenizeRows`, no Ray), one source tree against another.

The stage is what every row goes through; this checks that a change to messages, the Llama3
tokenizer or `tokenize_conversation` costs nothing on plain rows, and shows what tool rows
cost and how Meta's `tokenizer.json` (the `tokenizers` backend) compares with its
`tokenizer.model` (tiktoken). Each measurement is a fresh subprocess with ``PYTHONPATH`` set
to one tree, timing ``TokenizeRows.__call__`` on batches of 256 raw JSON records (parse,
messages, tokens, labels, Arrow table) after one warm-up batch, best of three passes; runs
are interleaved (order alternating), ``--repeats`` times. The figure is rows per second of
the process's CPU time (``time.process_time``): on a shared machine wall time swings with
other processes, CPU time much less.

Run (the base tree made with ``git archive <commit> | tar -x -C /tmp/base``)::

    python benchmarks/bench_tokenize_stage.py --base /tmp/base --repeats 5
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

STAGE = r"""
import json, sys, tempfile, time
import pyarrow as pa
from raytune_chat.datasets._readers import RECORD_SCHEMA
from raytune_chat.datasets._tokenize import TokenizeRows
from raytune_chat.models.llama3 import llama3_tokenizer
rows_path, bpe, style, column, n = sys.argv[1:6]
rows = json.loads(open(rows_path).read())
raws = ([json.dumps(r).encode() for r in rows] * (int(n) // len(rows) + 1))[: int(n)]
tok = llama3_tokenizer(bpe, max_seq_len=2048)
stage = TokenizeRows(tokenizer=tok, conversation_style=style, conversation_column=column,
                     rejected_path=tempfile.mkdtemp())
def batch(chunk):
    k = len(chunk)
    return pa.Table.from_pydict({"source": ["f"] * k, "line": list(range(k)), "row": [-1] * k,
                                 "raw": chunk, "error": [None] * k}, schema=RECORD_SCHEMA)
batches = [batch(raws[i:i + 256]) for i in range(0, len(raws), 256)]
stage(batches[0])
best = 0.0
for _ in range(3):  # steady state: the best of three passes
    t0 = time.process_time()
    kept = sum(stage(b).num_rows for b in batches)
    best = max(best, len(raws) / (time.process_time() - t0))
print(json.dumps({"rows_per_s": best, "kept": kept}))
"""


def _measure(tree: Path, rows: Path, bpe: str, style: str, column: str, n: int) -> float:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    out = subprocess.run(
        [sys.executable, "-c", STAGE, str(rows), bpe, style, column, str(n)],
        env=env,
        cwd=tree,
        capture_output=True,
        text=True,
        check=True,
    )
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["kept"] == n, result
    return result["rows_per_s"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--base", type=Path, required=True, help="source tree to compare with")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--rows", type=int, default=8_000)
    args = parser.parse_args()
    sys.path.insert(0, str(REPO))
    from raytune_chat.config import asset_path
    from tests.assets.build_assets import meta_llama3_tokenizer_path
    from tests.assets.tool_chats import openai_tool_row

    bpe = str(asset_path("cl100k_base"))
    tmp = Path(os.environ.get("TMPDIR", "/tmp"))
    plain = asset_path("sample_chat")  # 800 ShareGPT conversations, column "dialogue"
    tools = tmp / "bench_tool_rows.json"
    tools.write_text(json.dumps([openai_tool_row(i) for i in range(100)]))
    meta_model = str(meta_llama3_tokenizer_path("tokenizer.model"))
    meta_json = str(meta_llama3_tokenizer_path("tokenizer.json"))
    runs = {
        "base plain": (args.base, plain, bpe, "sharegpt", "dialogue"),
        "this plain": (REPO, plain, bpe, "sharegpt", "dialogue"),
        "this tools": (REPO, tools, bpe, "openai", "messages"),
        "meta .model": (REPO, plain, meta_model, "sharegpt", "dialogue"),
        "meta .json": (REPO, plain, meta_json, "sharegpt", "dialogue"),
    }
    results: dict[str, list[float]] = {name: [] for name in runs}
    for repeat in range(args.repeats):
        names = list(runs) if repeat % 2 == 0 else list(reversed(runs))  # no order bias
        for name in names:
            tree, rows, tokenizer_file, style, column = runs[name]
            results[name].append(_measure(tree, rows, tokenizer_file, style, column, args.rows))
    median = {name: statistics.median(v) for name, v in results.items()}
    for name, values in results.items():
        print(f"{name:12s} rows/CPU-s median {median[name]:6.0f}  all {[round(v) for v in values]}")
    print(f"this/base on plain rows: {median['this plain'] / median['base plain']:.3f}")
    print(f"tokenizer.json/tokenizer.model: {median['meta .json'] / median['meta .model']:.3f}")
    print(f"load average: {os.getloadavg()}")


if __name__ == "__main__":
    main()
