"""FSDP2 LoRA throughput on one GPU (world size 1 with fully_shard), driven by `gpu_fsdp.sh`.

No Ray: one process joins a 1-rank process group (nccl on GPU, gloo on CPU), builds random-init
Llama3-8B shapes in bf16 with LoRA (q/v/output_proj + MLP, rank 8), activation checkpointing
per layer, shards each layer and the root with `raytune_chat.training._fsdp.shard_model`
(bf16 params, fp32 gradient reduction on CUDA), and runs `raytune_chat.training.train_step`
(the recipe's step: gradient clipping over the DTensor grads on) on pre-tokenized packed
Parquet read by a background thread. Then it gathers the adapter and the optimizer state as
a checkpoint would (`train_state`). Prints tokens/s, peak memory and the share of step time
spent waiting for data.

`SMOKE=1` runs a tiny shape on CPU (gloo), to check the script where no GPU is at hand.
"""

from __future__ import annotations

import os
import queue
import socket
import threading
import time

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch

from raytune_chat.data import PackedCollate
from raytune_chat.models.llama3 import lora_llama3, lora_llama3_8b
from raytune_chat.modules.loss import CEWithChunkedOutputLoss
from raytune_chat.modules.peft import get_adapter_params, set_trainable_params
from raytune_chat.training import (
    TrainPosition,
    peak_memory_gib,
    set_activation_checkpointing,
    train_state,
    train_step,
)
from raytune_chat.training._fsdp import shard_model

SMOKE = os.environ.get("SMOKE") == "1"
WORK = os.environ.get("WORK", "/tmp/gpu_fsdp")
SEQ, BATCH = (128, 2) if SMOKE else (2048, 2)
VOCAB = 1024 if SMOKE else 128_256
WARMUP, STEPS = (
    (1, 3) if SMOKE else (int(os.environ.get("WARMUP", 3)), int(os.environ.get("STEPS", 12)))
)
LORA = dict(lora_attn_modules=["q_proj", "v_proj", "output_proj"], apply_lora_to_mlp=True)


def write_parquet(path: str, rows: int) -> None:
    """Packed rows of SEQ tokens (conversations of 150-700 tokens, the first half of each
    masked as the user turn), the layout `raytune-chat prepare` + packing produce."""
    rng = np.random.default_rng(0)
    cols: dict[str, list] = {k: [] for k in ("tokens", "labels", "input_pos", "document_ids")}
    for _ in range(rows):
        tok, lab, pos, doc, d = [], [], [], [], 0
        while len(tok) < SEQ:
            n = min(int(rng.integers(SEQ // 14, SEQ // 3)), SEQ - len(tok))
            t = rng.integers(0, VOCAB - 256, n)
            labels = np.roll(t, -1)
            labels[-1], labels[: n // 2] = -100, -100
            tok += t.tolist()
            lab += labels.tolist()
            pos += list(range(n))
            doc += [d] * n
            d += 1
        for k, v in zip(cols, (tok, lab, pos, doc), strict=True):
            cols[k].append(v)
    pq.write_table(
        pa.table({k: pa.array(v, type=pa.list_(pa.int32())) for k, v in cols.items()}), path
    )


def batches(path: str, pin: bool):
    """Background reader: Parquet -> PackedCollate -> (pinned) tensors, a 4-batch queue."""
    q: queue.Queue = queue.Queue(4)
    collate = PackedCollate()

    def fill() -> None:
        for rb in pq.ParquetFile(path).iter_batches(batch_size=BATCH):
            cols = {
                n: np.stack(rb.column(n).to_numpy(zero_copy_only=False)) for n in rb.schema.names
            }
            batch = collate(cols)
            q.put({k: v.pin_memory() for k, v in batch.items()} if pin else batch)
        q.put(None)

    threading.Thread(target=fill, daemon=True).start()
    while (b := q.get()) is not None:
        yield b


def build(device: torch.device) -> torch.nn.Module:
    torch.manual_seed(0)
    torch.set_default_dtype(torch.bfloat16)
    with device:
        if SMOKE:
            model = lora_llama3(
                vocab_size=VOCAB,
                num_layers=2,
                num_heads=4,
                num_kv_heads=2,
                embed_dim=64,
                intermediate_dim=128,
                max_seq_len=SEQ,
                lora_rank=8,
                lora_alpha=16,
                **LORA,
            )
        else:
            model = lora_llama3_8b(lora_rank=8, lora_alpha=16, **LORA)
    torch.set_default_dtype(torch.float32)
    set_trainable_params(model, get_adapter_params(model))
    set_activation_checkpointing(model)
    return shard_model(model, device)


def main() -> None:
    cuda = torch.cuda.is_available() and not SMOKE
    device = torch.device("cuda" if cuda else "cpu")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    if cuda:
        torch.cuda.set_device(0)
        print(torch.cuda.get_device_name(), "torch", torch.__version__, flush=True)
    torch.distributed.init_process_group(
        "nccl" if cuda else "gloo", init_method=f"tcp://127.0.0.1:{port}", rank=0, world_size=1
    )
    os.makedirs(WORK, exist_ok=True)
    path = f"{WORK}/packed_{SEQ}_{VOCAB}.parquet"
    if not os.path.exists(path):
        write_parquet(path, BATCH * (WARMUP + STEPS) + 4)
    model = build(device)
    chunks = 8
    loss_fn = CEWithChunkedOutputLoss(num_output_chunks=chunks)
    model.set_num_output_chunks(chunks)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=3e-4, fused=cuda)
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    it, tokens, waited, t0 = batches(path, pin=cuda), 0, 0.0, None
    for i in range(WARMUP + STEPS):
        if i == WARMUP:
            if cuda:
                torch.cuda.synchronize()
            t0, tokens, waited = time.perf_counter(), 0, 0.0
        w = time.perf_counter()
        batch = next(it)
        waited += time.perf_counter() - w
        stats = train_step(model, loss_fn, opt, None, [batch], device=device, clip_grad_norm=1.0)
        tokens += stats.num_tokens
    if cuda:
        torch.cuda.synchronize()
    wall = time.perf_counter() - t0
    print(
        f"raytune_chat FSDP2 (world 1, fully_shard, bf16, AC): {tokens / wall:,.0f} tokens/s  "
        f"peak {peak_memory_gib(device):.1f} GiB  data-wait {100 * waited / wall:.2f}% of step "
        f"time  loss {stats.loss:.3f}  grad_norm {stats.grad_norm:.3f}",
        flush=True,
    )
    t = time.perf_counter()
    state = train_state(
        model, opt, torch.optim.lr_scheduler.LambdaLR(opt, lambda _: 1.0), TrainPosition()
    )
    adapter = sum(v.numel() for v in state["adapter"].values())
    assert all(not hasattr(v, "device_mesh") for v in state["adapter"].values())
    print(
        f"checkpoint gather (full adapter {adapter:,} params + optimizer state): "
        f"{time.perf_counter() - t:.2f}s",
        flush=True,
    )
    torch.distributed.destroy_process_group()


if __name__ == "__main__":
    main()
