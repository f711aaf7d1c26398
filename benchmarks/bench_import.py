"""CPU seconds and memory of importing the package, each in a fresh process.

Three probes: `import raytune_chat.data`, `import raytune_chat.models.llama3`, and what a Ray
Data tokenizer actor does first, unpickling a `Llama3Tokenizer` (which imports the modules its
class and the message transforms live in). CPU seconds (user + sys of the process) rather
than wall time, so that the load of a shared machine moves the figures less.

`--baseline-src DIR` runs the same probes on another checkout of the package (e.g.
`git archive <commit> | tar -x -C DIR`), interleaved with this one, for a before/after.

Run::

    python benchmarks/bench_import.py --repeats 3 --baseline-src /tmp/base
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

_PROBE = """
import json, pickle, resource, sys
t0 = resource.getrusage(resource.RUSAGE_SELF)
{body}
t1 = resource.getrusage(resource.RUSAGE_SELF)
cpu = (t1.ru_utime + t1.ru_stime) - (t0.ru_utime + t0.ru_stime)
hwm = next(int(x.split()[1]) for x in open("/proc/self/status") if x.startswith("VmHWM"))
own = sum(int(x.split()[1]) for x in open("/proc/self/smaps_rollup") if x.startswith("Private"))
print(json.dumps({{"cpu_s": cpu, "peak_rss_mb": hwm / 1024, "private_mb": own / 1024,
                  "torch": "torch" in sys.modules}}))
"""

_FIGURES = ("cpu_s", "peak_rss_mb", "private_mb")
PROBES = {
    "import raytune_chat.data": "import raytune_chat.data",
    "import raytune_chat.models.llama3": "import raytune_chat.models.llama3",
    "unpickle a Llama3Tokenizer": "pickle.loads(open(sys.argv[1], 'rb').read())",
}


def _tokenizer_pickle(folder: Path) -> Path:
    from raytune_chat.config import asset_path
    from raytune_chat.models.llama3 import llama3_tokenizer

    path = folder / "tokenizer.pkl"
    path.write_bytes(pickle.dumps(llama3_tokenizer(str(asset_path("cl100k_base")))))
    return path


def _run(src: Path, body: str, blob: Path) -> dict:
    env = {**os.environ, "PYTHONPATH": str(src)}
    code = _PROBE.format(body=body)
    out = subprocess.run(
        [sys.executable, "-c", code, str(blob)],
        env=env,
        cwd=tempfile.gettempdir(),  # not the checkout: PYTHONPATH alone picks the package
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--baseline-src", type=Path, default=None)
    args = parser.parse_args()
    sides = {"this checkout": REPO}
    if args.baseline_src:
        sides["baseline"] = args.baseline_src.resolve()
    results: dict[tuple[str, str], list[dict]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        blob = _tokenizer_pickle(Path(tmp))
        for _ in range(args.repeats):
            for probe, body in PROBES.items():
                for side, src in sides.items():  # interleaved: load drift hits both sides
                    results.setdefault((probe, side), []).append(_run(src, body, blob))
    print(f"load average {os.getloadavg()[0]:.1f}; {args.repeats} repeats; medians")
    print("| probe | side | CPU s | peak RSS MB | private MB | imports torch |")
    print("| --- | --- | --- | --- | --- | --- |")
    for (probe, side), runs in results.items():
        cpu, rss, own = (statistics.median(r[k] for r in runs) for k in _FIGURES)
        print(f"| {probe} | {side} | {cpu:.2f} | {rss:.0f} | {own:.0f} | {runs[0]['torch']} |")


if __name__ == "__main__":
    main()
