"""Peak RSS while loading a multi-GB synthetic bf16 HF checkpoint (target: <= 1.3x its size).

Writes a Llama-shaped bf16 checkpoint in HF layout (sharded safetensors + config.json) to a
temporary folder, then, in a fresh process per case, loads it with
``FullModelHFCheckpointer.load_checkpoint()`` (and assigns it into a model built on the meta
device, as a recipe would) and reads the process's peak RSS (VmHWM). The
``safetensors.torch.load_file`` case loads the same shards with the library reader (which
memory-maps the files; every page is touched so the figure reflects use), for comparison.
``--baseline-src DIR`` also measures the checkpointer of another checkout (e.g.
``git archive <commit> | tar -x -C DIR``) on the same files, through that checkout's copy
of this script; ``--repeats`` interleaves the cases.

    .venv/bin/python benchmarks/bench_checkpoint_load.py --layers 22 --shards 3
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a source checkout

from raytune_chat.training.checkpointing._files import write_safetensors  # noqa: E402

SHAPE = dict(vocab_size=32_000, embed_dim=2048, num_heads=16, num_kv_heads=8, hidden=8192)


def _hf_tensors(layer: int) -> dict[str, torch.Tensor]:
    d, h, kv = SHAPE["embed_dim"], SHAPE["hidden"], d_kv()
    prefix = f"model.layers.{layer}."
    shapes = {
        "self_attn.q_proj.weight": (d, d),
        "self_attn.k_proj.weight": (kv, d),
        "self_attn.v_proj.weight": (kv, d),
        "self_attn.o_proj.weight": (d, d),
        "mlp.gate_proj.weight": (h, d),
        "mlp.up_proj.weight": (h, d),
        "mlp.down_proj.weight": (d, h),
        "input_layernorm.weight": (d,),
        "post_attention_layernorm.weight": (d,),
    }
    return {prefix + k: _random(s) for k, s in shapes.items()}


def d_kv() -> int:
    return SHAPE["embed_dim"] // SHAPE["num_heads"] * SHAPE["num_kv_heads"]


def _random(shape: tuple[int, ...]) -> torch.Tensor:
    return torch.empty(shape, dtype=torch.bfloat16).uniform_(-0.02, 0.02)


def write_checkpoint(folder: Path, layers: int, shards: int) -> tuple[list[str], int]:
    """Write ``shards`` safetensors files holding ``layers`` layers; return names and bytes."""
    per_shard = -(-layers // shards)
    names, total = [], 0
    for index in range(shards):
        tensors: dict[str, torch.Tensor] = {}
        if index == 0:
            tensors["model.embed_tokens.weight"] = _random(
                (SHAPE["vocab_size"], SHAPE["embed_dim"])
            )
        for layer in range(index * per_shard, min(layers, (index + 1) * per_shard)):
            tensors.update(_hf_tensors(layer))
        if index == shards - 1:
            tensors["model.norm.weight"] = _random((SHAPE["embed_dim"],))
            tensors["lm_head.weight"] = _random((SHAPE["vocab_size"], SHAPE["embed_dim"]))
        name = f"model-{index + 1:05d}-of-{shards:05d}.safetensors"
        write_safetensors(tensors, folder / name)
        names.append(name)
        total += sum(t.numel() * t.element_size() for t in tensors.values())
        del tensors
    config = {
        "hidden_size": SHAPE["embed_dim"],
        "num_attention_heads": SHAPE["num_heads"],
        "num_key_value_heads": SHAPE["num_kv_heads"],
        "num_hidden_layers": layers,
        "intermediate_size": SHAPE["hidden"],
        "vocab_size": SHAPE["vocab_size"],
    }
    (folder / "config.json").write_text(json.dumps(config))
    return names, total


def _peak_rss() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def _current_rss() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def measure(case: str, folder: str, names: list[str], layers: int) -> dict[str, float]:
    """Run in a fresh process: load the checkpoint one way, report RSS figures (bytes)."""
    from raytune_chat.models.llama3 import llama3
    from raytune_chat.training import FullModelHFCheckpointer

    baseline = _current_rss()
    start = time.perf_counter()
    if case == "library":
        import safetensors.torch

        sd = {}
        for name in names:
            sd.update(safetensors.torch.load_file(Path(folder) / name))
        for tensor in sd.values():  # the library maps files lazily: touch every page
            tensor.sum()
        seconds, peak = time.perf_counter() - start, _peak_rss()
    else:
        out = tempfile.mkdtemp()
        ckpt = FullModelHFCheckpointer(folder, names, "LLAMA3", out)
        sd = ckpt.load_checkpoint()["model"]
        with torch.device("meta"):
            model = llama3(
                vocab_size=SHAPE["vocab_size"],
                num_layers=layers,
                num_heads=SHAPE["num_heads"],
                num_kv_heads=SHAPE["num_kv_heads"],
                embed_dim=SHAPE["embed_dim"],
                max_seq_len=256,
                intermediate_dim=SHAPE["hidden"],
            )
        model.load_state_dict(sd, strict=True, assign=True)
        seconds, peak = time.perf_counter() - start, _peak_rss()
        with torch.no_grad():  # the loaded model runs (not counted in the peak above)
            assert model(torch.tensor([[1, 2, 3]])).shape == (1, 3, SHAPE["vocab_size"])
    return {"baseline_rss": baseline, "peak_rss": peak, "seconds": seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layers", type=int, default=22, help="22 layers ~= 3.0 GB")
    parser.add_argument("--shards", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--baseline-src", type=Path, default=None)
    parser.add_argument(
        "--measure", nargs=3, metavar=("CASE", "FOLDER", "NAMES"), help=argparse.SUPPRESS
    )
    args = parser.parse_args()
    if args.measure:
        case, folder, names = args.measure
        print(json.dumps(measure(case, folder, names.split(","), args.layers)))
        return

    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_TMP")) as tmp:
        t0 = time.perf_counter()
        names, size = write_checkpoint(Path(tmp), args.layers, args.shards)
        print(
            f"wrote {size / 1e9:.2f} GB in {args.shards} shards ({time.perf_counter() - t0:.0f}s)"
        )
        print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}")
        scripts = {"raytune_chat": Path(__file__)}
        if args.baseline_src is not None:
            scripts["baseline"] = args.baseline_src / "benchmarks" / Path(__file__).name
        for _ in range(args.repeats):
            for label, script in [*scripts.items(), ("library", Path(__file__))]:
                case = "library" if label == "library" else "raytune_chat"
                command = [sys.executable, str(script), "--layers", str(args.layers)]
                command += ["--measure", case, tmp, ",".join(names)]
                result = subprocess.run(command, check=True, capture_output=True, text=True)
                r = json.loads(result.stdout.strip().splitlines()[-1])
                print(
                    f"{label:>13}: peak RSS {r['peak_rss'] / 1e9:.2f} GB = "
                    f"{r['peak_rss'] / size:.2f}x checkpoint; above pre-load RSS "
                    f"({r['baseline_rss'] / 1e9:.2f} GB): "
                    f"{(r['peak_rss'] - r['baseline_rss']) / size:.2f}x; {r['seconds']:.1f}s; "
                    f"load {os.getloadavg()[0]:.1f}",
                    flush=True,
                )


if __name__ == "__main__":
    main()
