"""Peak RSS while loading a multi-GB bf16 checkpoint into an NF4 (QLoRA) model (target: the
peak above the pre-load RSS at most 0.5x the checkpoint's bf16 size).

Writes the synthetic Llama-shaped bf16 HF checkpoint of ``bench_checkpoint_load.py`` (sharded
safetensors + config.json), then, in a fresh process per case, builds a QLoRA model
(``lora_llama3(quantize_base=True)``, LoRA on q/v) and loads the checkpoint into it:

- ``streamed``: the recipe's way (``raytune_chat.training.load_base``): the model is built
  on the meta device and ``load_base_weights(model, checkpointer.iter_model_weights())`` puts
  each tensor in place, quantized to NF4 as it arrives;
- ``whole``: torchtune's way, for comparison: the NF4 model is built with random weights,
  the whole state dict is loaded (``load_checkpoint()``), then ``load_state_dict`` quantizes
  it into the NF4 parameters.

Peak = the process's ``VmHWM``; cases alternate so that machine drift hits both alike.

    .venv/bin/python benchmarks/bench_nf4_load.py --layers 16 --shards 2 --repeats 1
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
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_checkpoint_load import (  # noqa: E402
    SHAPE,
    _current_rss,
    _peak_rss,
    write_checkpoint,
)


def _qlora_model(layers: int):
    from raytune_chat.models.llama3 import lora_llama3

    return lora_llama3(
        lora_attn_modules=["q_proj", "v_proj"],
        vocab_size=SHAPE["vocab_size"],
        num_layers=layers,
        num_heads=SHAPE["num_heads"],
        num_kv_heads=SHAPE["num_kv_heads"],
        embed_dim=SHAPE["embed_dim"],
        max_seq_len=256,
        intermediate_dim=SHAPE["hidden"],
        lora_rank=8,
        lora_alpha=16,
        quantize_base=True,
    )


def measure(case: str, folder: str, names: list[str], layers: int) -> dict[str, float]:
    """Run in a fresh process: load the checkpoint one way, report RSS figures (bytes)."""
    from raytune_chat.modules.low_precision import is_nf4, to_nf4
    from raytune_chat.training import (
        FullModelHFCheckpointer,
        initialize_adapters,
        load_base_weights,
    )

    to_nf4(torch.zeros(128, 128, dtype=torch.bfloat16))  # import torchao before the baseline
    torch.set_default_dtype(torch.bfloat16)
    ckpt = FullModelHFCheckpointer(folder, names, "LLAMA3", tempfile.mkdtemp())
    baseline = _current_rss()
    start = time.perf_counter()
    if case == "streamed":
        with torch.device("meta"):
            model = _qlora_model(layers)
        missing, unexpected = load_base_weights(model, ckpt.iter_model_weights())
        assert not unexpected and all(".lora_" in k for k in missing)
        initialize_adapters(model)
    else:
        model = _qlora_model(layers)
        missing, unexpected = model.load_state_dict(ckpt.load_checkpoint()["model"], strict=False)
        assert not unexpected and all(".lora_" in k for k in missing)
    seconds, peak = time.perf_counter() - start, _peak_rss()
    assert is_nf4(model.layers[0].mlp.w1.weight) and is_nf4(model.layers[-1].attn.q_proj.weight)
    with torch.no_grad():  # the loaded model runs (not counted in the peak above)
        assert model(torch.tensor([[1, 2, 3]])).shape == (1, 3, SHAPE["vocab_size"])
    return {"baseline_rss": baseline, "peak_rss": peak, "seconds": seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layers", type=int, default=16, help="16 layers ~= 2.3 GB")
    parser.add_argument("--shards", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=1)
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
        seconds = time.perf_counter() - t0
        print(f"wrote {size / 1e9:.2f} GB bf16 in {args.shards} shards ({seconds:.0f}s)")
        print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}, "
              f"load average {os.getloadavg()[0]:.1f}")  # fmt: skip
        for repeat in range(args.repeats):
            for case in ("streamed", "whole"):
                command = [sys.executable, __file__, "--layers", str(args.layers), "--measure"]
                result = subprocess.run(
                    [*command, case, tmp, ",".join(names)],
                    check=True,
                    capture_output=True,
                    text=True,
                )
                r = json.loads(result.stdout.strip().splitlines()[-1])
                above = r["peak_rss"] - r["baseline_rss"]
                print(
                    f"repeat {repeat} {case:>8}: peak RSS {r['peak_rss'] / 1e9:.2f} GB, above "
                    f"pre-load RSS ({r['baseline_rss'] / 1e9:.2f} GB) {above / 1e9:.2f} GB = "
                    f"{above / size:.2f}x the bf16 checkpoint; {r['seconds']:.1f}s; "
                    f"load average {os.getloadavg()[0]:.1f}"
                )


if __name__ == "__main__":
    main()
