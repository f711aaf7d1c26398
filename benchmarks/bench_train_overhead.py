"""Ray Train overhead: optimizer steps/s of the recipe's loop on Ray Train vs a plain torch loop.

Both run the same `raytune_chat.training.train_step` on the same tiny Llama3 LoRA model
(1 layer, embed 32, full 128,256 vocabulary) and the same pre-collated batches, on CPU with
the same torch thread count. The Ray side is one `TorchTrainer` worker reading a Ray Dataset
with `iter_chat_batches(get_dataset_shard("train"), collate_fn=PaddedCollate)`, as the recipe
does; its steps/s is measured inside the worker after a warm-up (start-up cost is reported
separately).

    .venv/bin/python benchmarks/bench_train_overhead.py [--steps 40] [--threads 1]
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
import torch

from raytune_chat.data import PaddedCollate
from raytune_chat.models.llama3 import lora_llama3
from raytune_chat.modules.loss import CEWithChunkedOutputLoss
from raytune_chat.modules.peft import get_adapter_params, set_trainable_params
from raytune_chat.training import train_step

WARMUP = 5
SEQ, BATCH, PAD = 64, 2, 128004


def _model() -> torch.nn.Module:
    torch.manual_seed(0)
    model = lora_llama3(
        lora_attn_modules=["q_proj", "v_proj", "output_proj"],
        apply_lora_to_mlp=True,
        apply_lora_to_output=True,
        vocab_size=128256,
        num_layers=1,
        num_heads=2,
        num_kv_heads=1,
        embed_dim=32,
        intermediate_dim=64,
        max_seq_len=128,
        lora_rank=4,
        lora_alpha=8,
    )
    set_trainable_params(model, get_adapter_params(model))
    model.set_num_output_chunks(1)
    return model


def _rows(n: int) -> list[dict]:
    rng = np.random.default_rng(0)
    rows = []
    for _ in range(n):
        length = int(rng.integers(SEQ // 2, SEQ + 1))
        tokens = rng.integers(0, 100_000, length).astype(np.int32)
        labels = np.where(rng.random(length) < 0.5, -100, np.roll(tokens, -1)).astype(np.int32)
        rows.append({"tokens": tokens, "labels": labels})
    return rows


def _loop(batches, steps: int) -> float:
    """Run `steps` steps after WARMUP; return steps/s of the measured part."""
    model, loss_fn = _model(), CEWithChunkedOutputLoss(num_output_chunks=1)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    it = iter(batches)
    start = None
    for i in range(WARMUP + steps):
        if i == WARMUP:
            start = time.perf_counter()
        train_step(model, loss_fn, opt, None, [next(it)], device=torch.device("cpu"))
    return steps / (time.perf_counter() - start)


def plain(rows: list[dict], steps: int, threads: int) -> float:
    torch.set_num_threads(threads)
    collate = PaddedCollate(pad_id=PAD)

    def batches():
        for i in range(0, len(rows), BATCH):
            chunk = rows[i : i + BATCH]
            yield collate({k: np.array([r[k] for r in chunk], dtype=object) for k in chunk[0]})

    return _loop(batches(), steps)


def _worker(config: dict) -> None:
    import ray.train

    from raytune_chat.datasets import iter_chat_batches

    torch.set_num_threads(config["threads"])
    shard = ray.train.get_dataset_shard("train")
    batches = iter_chat_batches(shard, batch_size=BATCH, collate_fn=PaddedCollate(pad_id=PAD))
    sps = _loop(batches, config["steps"])
    with open(config["result_file"], "w") as f:  # V2 keeps metrics only with checkpoints
        f.write(str(sps))
    ray.train.report({"steps_per_second": sps})


def on_ray(rows: list[dict], steps: int, threads: int) -> tuple[float, float]:
    import ray
    import ray.data
    from ray.train import RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    ds = ray.data.from_items(rows)
    result_file = f"/tmp/bench_train_overhead_{os.getpid()}.txt"
    start = time.perf_counter()
    trainer = TorchTrainer(
        _worker,
        train_loop_config={"steps": steps, "threads": threads, "result_file": result_file},
        scaling_config=ScalingConfig(num_workers=1, resources_per_worker={"CPU": 1}),
        run_config=RunConfig(storage_path="/tmp/bench_train_overhead", name=f"run{os.getpid()}"),
        datasets={"train": ds},
    )
    trainer.fit()
    wall = time.perf_counter() - start
    with open(result_file) as f:
        return float(f.read()), wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    import ray

    rows = _rows(BATCH * (WARMUP + args.steps))
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    plain_a = plain(rows, args.steps, args.threads)
    ray_sps, ray_wall = on_ray(rows, args.steps, args.threads)
    plain_b = plain(rows, args.steps, args.threads)
    ray.shutdown()
    plain_sps = (plain_a + plain_b) / 2
    print(f"plain torch loop : {plain_sps:.2f} steps/s (runs: {plain_a:.2f}, {plain_b:.2f})")
    print(f"Ray Train worker : {ray_sps:.2f} steps/s (fit() wall incl. start-up {ray_wall:.1f} s)")
    print(f"overhead         : {100 * (1 - ray_sps / plain_sps):+.1f}% (target <= 10%)")


if __name__ == "__main__":
    main()
