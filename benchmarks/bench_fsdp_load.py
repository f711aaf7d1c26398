"""Peak RSS per worker loading a multi-GB checkpoint into a 2-worker FSDP model (target <= 0.6x).

Writes a synthetic bf16 Llama-shaped checkpoint in HF layout (few wide layers: embed 4096,
32/8 heads, MLP 14336, vocab 32000; 4 layers ~= 2.3 GB, in 2 safetensors shards +
``config.json``) to a temporary folder. Then, per case, two fresh processes joined by
``torch.distributed`` (gloo, no Ray) each build the LoRA model the way the distributed recipe
does and report their RSS before the build ("idle": Python, torch, raytune_chat and the
process group) and their peak (``VmHWM``, which counts every resident page, file-backed
ones too) until the model is loaded:

- ``fsdp``: ``training.build_sharded_model`` (meta device, ``fully_shard`` per layer and
  root, each rank reading only its rows of every tensor with safetensors slices);
- ``full``: ``training.build_model`` (what each DDP worker does: the whole model per worker).

After the peak is read, the FSDP model runs one forward pass on both ranks (a check that it
loaded, not counted). ``--repeats`` interleaves the cases.

    BENCH_TMP=/tmp .venv/bin/python benchmarks/bench_fsdp_load.py --layers 4 --repeats 2
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.multiprocessing as mp

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a source checkout

from raytune_chat.training.checkpointing._files import write_safetensors  # noqa: E402

SHAPE = dict(vocab_size=32_000, embed_dim=4096, num_heads=32, num_kv_heads=8, hidden=14336)


def _random(shape: tuple[int, ...]) -> torch.Tensor:
    return torch.empty(shape, dtype=torch.bfloat16).uniform_(-0.02, 0.02)


def _layer(layer: int) -> dict[str, torch.Tensor]:
    d, h = SHAPE["embed_dim"], SHAPE["hidden"]
    kv = d // SHAPE["num_heads"] * SHAPE["num_kv_heads"]
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
    return {f"model.layers.{layer}.{k}": _random(s) for k, s in shapes.items()}


def write_checkpoint(folder: Path, layers: int) -> tuple[list[str], int]:
    """Two safetensors shards (embeddings + first half, second half + head); names, bytes."""
    halves = [range(0, layers // 2), range(layers // 2, layers)]
    names, total = [], 0
    for index, half in enumerate(halves):
        tensors: dict[str, torch.Tensor] = {}
        if index == 0:
            tensors["model.embed_tokens.weight"] = _random(
                (SHAPE["vocab_size"], SHAPE["embed_dim"])
            )
        for layer in half:
            tensors.update(_layer(layer))
        if index == 1:
            tensors["model.norm.weight"] = _random((SHAPE["embed_dim"],))
            tensors["lm_head.weight"] = _random((SHAPE["vocab_size"], SHAPE["embed_dim"]))
        name = f"model-{index + 1:05d}-of-00002.safetensors"
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


def _status(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no {field} in /proc/self/status")


def recipe_config(folder: str, names: list[str], layers: int, out: str) -> dict:
    """The config sections `build_model` / `build_sharded_model` read (bf16, LoRA on q/v)."""
    return {
        "output_dir": out,
        "dtype": "bf16",
        "device": "cpu",
        "seed": 0,
        "model": {
            "_component_": "raytune_chat.models.llama3.lora_llama3",
            "lora_attn_modules": ["q_proj", "v_proj"],
            "apply_lora_to_mlp": False,
            "apply_lora_to_output": False,
            "vocab_size": SHAPE["vocab_size"],
            "num_layers": layers,
            "num_heads": SHAPE["num_heads"],
            "num_kv_heads": SHAPE["num_kv_heads"],
            "embed_dim": SHAPE["embed_dim"],
            "intermediate_dim": SHAPE["hidden"],
            "max_seq_len": 256,
            "lora_rank": 8,
            "lora_alpha": 16,
        },
        "checkpointer": {
            "_component_": "raytune_chat.training.FullModelHFCheckpointer",
            "checkpoint_dir": folder,
            "checkpoint_files": names,
            "model_type": "LLAMA3",
            "output_dir": out,
        },
        "tokenizer": {},
        "dataset": {},
        "optimizer": {},
        "loss": {},
    }


def _worker(rank: int, case: str, folder: str, names: list[str], layers: int, port: int, q):
    from raytune_chat import training

    torch.distributed.init_process_group(
        "gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2
    )
    cfg = recipe_config(folder, names, layers, tempfile.mkdtemp())
    settings = training.parse_settings(cfg)
    device = torch.device("cpu")
    torch.distributed.barrier()
    idle = _status("VmRSS")
    start = time.perf_counter()
    build = training.build_sharded_model if case == "fsdp" else training.build_model
    model, _ = build(cfg, settings, device)
    seconds, peak = time.perf_counter() - start, _status("VmHWM")
    if case == "fsdp":  # both ranks run a forward pass: the shards hold a working model
        with torch.no_grad():
            logits = model(torch.tensor([[1, 2, 3]]))
        assert logits.shape == (1, 3, SHAPE["vocab_size"]) and torch.isfinite(logits).all()
    q.put({"rank": rank, "idle": idle, "peak": peak, "seconds": seconds})
    torch.distributed.barrier()
    torch.distributed.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def measure(case: str, folder: str, names: list[str], layers: int) -> list[dict]:
    """Two fresh processes load the checkpoint; their RSS figures (bytes), by rank."""
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    port = _free_port()
    procs = [
        ctx.Process(target=_worker, args=(r, case, folder, names, layers, port, q))
        for r in range(2)
    ]
    for p in procs:
        p.start()
    results = [q.get(timeout=1200) for _ in procs]
    for p in procs:
        p.join(timeout=120)
        if p.exitcode != 0:
            raise RuntimeError(f"{case} worker exited with {p.exitcode}")
    return sorted(results, key=lambda r: r["rank"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layers", type=int, default=4, help="4 layers ~= 2.3 GB")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--cases", default="fsdp,full")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_TMP")) as tmp:
        t0 = time.perf_counter()
        names, size = write_checkpoint(Path(tmp), args.layers)
        print(f"wrote {size / 1e9:.2f} GB in 2 shards ({time.perf_counter() - t0:.0f}s)")
        print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}")
        for _ in range(args.repeats):
            for case in args.cases.split(","):
                for r in measure(case, tmp, names, args.layers):
                    above = r["peak"] - r["idle"]
                    print(
                        f"{case:>4} rank {r['rank']}: idle RSS {r['idle'] / 1e9:.2f} GB, peak "
                        f"{r['peak'] / 1e9:.2f} GB; above idle {above / 1e9:.2f} GB = "
                        f"{above / size:.2f}x checkpoint; {r['seconds']:.1f}s; "
                        f"load {os.getloadavg()[0]:.1f}",
                        flush=True,
                    )


if __name__ == "__main__":
    main()
