"""The plain-torch training step (no Ray): learning, frozen base, token-normalised loss."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from raytune_chat.config import instantiate, load_config
from raytune_chat.data import PaddedCollate, ShareGPTToMessages, tokenize_row
from raytune_chat.modules.loss import CEWithChunkedOutputLoss
from raytune_chat.modules.peft import get_adapter_params, set_trainable_params
from raytune_chat.training import get_cosine_schedule_with_warmup, train_step
from tests.recipes._tiny import TINY_MODEL, sample_conversations

CPU = torch.device("cpu")


def _tiny_model(seed: int = 0) -> torch.nn.Module:
    cfg = load_config("tiny/llama3_lora_cpu", TINY_MODEL)
    torch.manual_seed(seed)
    model = instantiate(cfg["model"], key="model")
    set_trainable_params(model, get_adapter_params(model))
    return model


@pytest.fixture(scope="module")
def batches(bpe_path):
    from raytune_chat.models.llama3 import llama3_tokenizer

    tokenizer = llama3_tokenizer(str(bpe_path), max_seq_len=64)
    transform = ShareGPTToMessages(column_map={"conversations": "dialogue"})
    rows = [
        tokenize_row(row, message_transform=transform, tokenizer=tokenizer)
        for row in sample_conversations(8)
    ]
    collate = PaddedCollate(pad_id=tokenizer.pad_id, length=64)
    out = []
    for i in range(0, len(rows), 2):
        pair = rows[i : i + 2]
        out.append(
            collate(
                {
                    "tokens": np.array([np.array(r["tokens"]) for r in pair], dtype=object),
                    "labels": np.array([np.array(r["labels"]) for r in pair], dtype=object),
                }
            )
        )
    return out


def test_loss_halves_base_is_bit_identical_and_adapters_change(batches):
    model = _tiny_model()
    frozen = {n: p.detach().clone() for n, p in model.named_parameters() if not p.requires_grad}
    adapters = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
    assert frozen and adapters and all(".lora_" in n for n in adapters)
    loss_fn = CEWithChunkedOutputLoss(num_output_chunks=1)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=3e-2)
    schedule = get_cosine_schedule_with_warmup(optimizer, 2, 30)
    losses = []
    for step in range(30):
        stats = train_step(
            model, loss_fn, optimizer, schedule, [batches[step % 4]], device=CPU, clip_grad_norm=1.0
        )
        losses.append(stats.loss)
    assert np.mean(losses[-5:]) <= 0.5 * losses[0], losses
    for name, before in frozen.items():
        assert torch.equal(before, dict(model.named_parameters())[name]), name
    changed = [
        n
        for n, p in model.named_parameters()
        if p.requires_grad and not torch.equal(p, adapters[n])
    ]
    assert len(changed) == len(adapters)


def test_accumulated_step_equals_one_big_batch(batches):
    """Loss normalised by trained tokens across micro-batches: 2 x b == 1 x 2b."""
    a, b = _tiny_model(1), _tiny_model(1)
    big = {k: torch.cat([batches[0][k], batches[1][k]]) for k in ("tokens", "labels")}
    loss_fn = CEWithChunkedOutputLoss(num_output_chunks=1)
    opt_a = torch.optim.SGD([p for p in a.parameters() if p.requires_grad], lr=1.0)
    opt_b = torch.optim.SGD([p for p in b.parameters() if p.requires_grad], lr=1.0)
    sa = train_step(a, loss_fn, opt_a, None, [batches[0], batches[1]], device=CPU)
    sb = train_step(b, loss_fn, opt_b, None, [big], device=CPU)
    trained = [int((x["labels"] != -100).sum()) for x in batches[:2]]
    assert trained[0] != trained[1]  # a per-micro-batch mean would weight them wrongly
    assert sa.num_trained_tokens == sb.num_trained_tokens == sum(trained)
    assert sa.loss == pytest.approx(sb.loss, rel=1e-5)
    for (name, pa), pb in zip(a.named_parameters(), b.parameters(), strict=True):
        if pa.requires_grad:
            torch.testing.assert_close(pa, pb, rtol=1e-4, atol=1e-6, msg=name)
