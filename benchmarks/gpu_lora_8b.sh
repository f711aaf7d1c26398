#!/usr/bin/env bash
# LoRA fine-tuning throughput of Llama3-8B shapes on one GPU (prepared for an H200), <= 8 min.
#
#   bash benchmarks/gpu_lora_8b.sh            # from the repo root, on the GPU machine
#   SMOKE=1 bash benchmarks/gpu_lora_8b.sh    # tiny shape on CPU: checks the script's Python
#
# What it runs (no Ray on the GPU box: the plain torch `raytune_chat.training.train_step`,
# the step the Ray recipe calls, driven from pre-tokenized Parquet):
#   1. writes synthetic pre-tokenized *packed* rows (2048 tokens, ~400-token conversations,
#      about half the labels masked as user turns) to Parquet, the format `raytune-chat prepare`
#      + packing produce;
#   2. random-init Llama3-8B shapes (`lora_llama3_8b`, LoRA on q/v/output_proj + MLP, rank 8),
#      bf16, activation checkpointing, batch 2 x 2048 packed, chunked CE loss;
#      compile off, then compile on (per-layer torch.compile);
#   3. torchtune 0.6.1's lora_finetune_single_device on the same shapes, when `torchtune` is
#      importable (skipped otherwise; the box has no network).
# Prints tokens/s, MFU (model FLOPs: 4*N + 4*L*s*d per token for frozen-base LoRA, vs bf16 dense
# peak, H200 = 989 TFLOP/s), peak memory and the fraction of step time spent waiting for data.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-python}
WORK=${WORK:-/tmp/gpu_lora_8b}
mkdir -p "$WORK"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
export WORK

"$PY" - <<'EOF'
import os, time, threading, queue
import numpy as np, pyarrow as pa, pyarrow.parquet as pq, torch

from raytune_chat.data import PackedCollate
from raytune_chat.models.llama3 import lora_llama3, lora_llama3_8b
from raytune_chat.modules.loss import CEWithChunkedOutputLoss
from raytune_chat.modules.peft import get_adapter_params, set_trainable_params
from raytune_chat.training import peak_memory_gib, set_activation_checkpointing, train_step

SMOKE = os.environ.get("SMOKE") == "1"  # tiny shape on CPU, to check the script without a GPU
WORK, BATCH, PEAK = os.environ["WORK"], 2, float(os.environ.get("PEAK_TFLOPS", 989))
SEQ, VOCAB, DEV = (128, 1024, "cpu") if SMOKE else (2048, 128000, "cuda")
WARMUP, STEPS = (1, 2) if SMOKE else (int(os.environ.get("WARMUP", 3)), int(os.environ.get("STEPS", 12)))
path = f"{WORK}/packed_{SEQ}.parquet"
if not os.path.exists(path):
    rng = np.random.default_rng(0)
    rows = {k: [] for k in ("tokens", "labels", "input_pos", "document_ids")}
    for _ in range(BATCH * (WARMUP + STEPS) * 2 + 8):
        tok, lab, pos, doc, d = [], [], [], [], 0
        while len(tok) < SEQ:
            n = min(int(rng.integers(SEQ // 14, SEQ // 3)), SEQ - len(tok))
            t = rng.integers(0, VOCAB, n)
            l = np.roll(t, -1); l[-1] = -100; l[: n // 2] = -100
            tok += t.tolist(); lab += l.tolist(); pos += list(range(n)); doc += [d] * n; d += 1
        for k, v in zip(rows, (tok, lab, pos, doc)):
            rows[k].append(np.asarray(v, dtype=np.int32))
    pq.write_table(pa.table({k: pa.array([r.tolist() for r in v]) for k, v in rows.items()}), path)

def batches():
    """Background reader: Parquet -> PackedCollate -> pinned tensors (a 4-batch queue)."""
    q, collate = queue.Queue(4), PackedCollate()
    def fill():
        for rb in pq.ParquetFile(path).iter_batches(batch_size=BATCH):
            cols = {n: np.stack(rb.column(n).to_numpy(zero_copy_only=False)) for n in rb.schema.names}
            q.put({k: v if SMOKE else v.pin_memory() for k, v in collate(cols).items()})
        q.put(None)
    threading.Thread(target=fill, daemon=True).start()
    while (b := q.get()) is not None:
        yield b

def run(compile_layers: bool) -> None:
    if not SMOKE:
        torch.cuda.reset_peak_memory_stats()
    torch.manual_seed(0)
    torch.set_default_dtype(torch.bfloat16)
    lora = dict(lora_attn_modules=["q_proj", "v_proj", "output_proj"], apply_lora_to_mlp=True,
                lora_rank=8, lora_alpha=16)
    with torch.device(DEV):
        model = (lora_llama3(vocab_size=VOCAB, num_layers=2, num_heads=4, num_kv_heads=2,
                             embed_dim=64, intermediate_dim=128, max_seq_len=SEQ, **lora)
                 if SMOKE else lora_llama3_8b(**lora))
    torch.set_default_dtype(torch.float32)
    set_trainable_params(model, get_adapter_params(model))
    set_activation_checkpointing(model)
    if compile_layers:
        for layer in model.layers:
            layer.compile()
    loss_fn = CEWithChunkedOutputLoss(num_output_chunks=8)
    model.set_num_output_chunks(8)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=3e-4, fused=not SMOKE)
    frozen = sum(p.numel() for p in model.parameters() if not p.requires_grad)
    emb = model.tok_embeddings.weight.numel()
    L, d = len(model.layers), model.tok_embeddings.embedding_dim
    flops_per_token = 4 * (frozen - emb) + 4 * L * SEQ * d
    it, tokens, waited, t0 = batches(), 0, 0.0, None
    for i in range(WARMUP + STEPS):
        if i == WARMUP:
            if not SMOKE:
                torch.cuda.synchronize()
            t0, tokens, waited = time.perf_counter(), 0, 0.0
        w = time.perf_counter(); batch = next(it); waited += time.perf_counter() - w
        stats = train_step(model, loss_fn, opt, None, [batch], device=torch.device(DEV))
        tokens += stats.num_tokens
    if not SMOKE:
        torch.cuda.synchronize()
    wall = time.perf_counter() - t0
    tps = tokens / wall
    print(f"raytune_chat compile={compile_layers}: {tps:,.0f} tokens/s  "
          f"MFU {100 * tps * flops_per_token / (PEAK * 1e12):.1f}%  "
          f"peak {peak_memory_gib(torch.device(DEV)):.1f} GiB  "
          f"data-wait {100 * waited / wall:.2f}% of step time  loss {stats.loss:.3f}", flush=True)
    del model, opt
    if not SMOKE:
        torch.cuda.empty_cache()

print("CPU smoke run" if SMOKE else torch.cuda.get_device_name(), "torch", torch.__version__, flush=True)
run(False)
if not SMOKE:  # compiling on CPU would only time the compiler
    run(True)
EOF
[ "${SMOKE:-0}" = 1 ] && exit 0  # the torchtune comparison needs the GPU

# torchtune 0.6.1's own recipe on the same shapes, when installed (random-init weights written
# as a Meta checkpoint; the cl100k file stands in for tokenizer.model when present).
if "$PY" -c "import torchtune, sys; sys.exit(0 if torchtune.__version__.startswith('0.6') else 1)" 2>/dev/null; then
  "$PY" - <<'EOF'
import json, os, torch
from torchtune.models.llama3 import llama3_8b
from torchtune.models.convert_weights import tune_to_meta
w = os.environ["WORK"] + "/tt"; os.makedirs(w, exist_ok=True)
if not os.path.exists(f"{w}/consolidated.00.pth"):
    torch.set_default_dtype(torch.bfloat16)
    with torch.device("cuda"):
        sd = {k: v.cpu() for k, v in llama3_8b().state_dict().items()}
    torch.save(tune_to_meta(sd), f"{w}/consolidated.00.pth")
rows = [{"dialogue": [{"from": "human", "value": "hello " * 300}, {"from": "gpt", "value": "hi " * 300}]}] * 64
json.dump(rows, open(f"{w}/data.json", "w"))
EOF
  BPE=$("$PY" -c "import tiktoken_ext, os; print(os.path.join(list(tiktoken_ext.__path__)[0], 'data', 'cl100k_base.tiktoken'))" 2>/dev/null || true)
  timeout 240 tune run lora_finetune_single_device --config llama3/8B_lora_single_device \
    checkpointer.checkpoint_dir="$WORK/tt" tokenizer.path="$BPE" tokenizer.max_seq_len=2048 \
    dataset._component_=torchtune.datasets.chat_dataset dataset.source=json \
    dataset.data_files="$WORK/tt/data.json" dataset.conversation_column=dialogue \
    dataset.conversation_style=sharegpt dataset.packed=True dataset.split=train batch_size=2 \
    gradient_accumulation_steps=1 max_steps_per_epoch=12 output_dir="$WORK/tt_out" \
    metric_logger._component_=torchtune.training.metric_logging.StdoutLogger compile=False \
    2>&1 | grep -E "tokens_per_second|peak_memory|Error" | tail -5 || echo "torchtune run failed"
else
  echo "torchtune 0.6.x not importable: torchtune comparison skipped"
fi
