"""Validation loss during training (`dataset_val`, `run_val_every_n_steps`), on a real cluster.

The equality tests run with `optimizer.lr=0` (and no dropout), so the adapter never changes
and the validation loss of any step is the loss of the untouched model over the validation
rows: the training loss of the same rows, token-weighted.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest
import torch
from torch import nn

from raytune_chat.config import ConfigError, load_config
from raytune_chat.data import CROSS_ENTROPY_IGNORE_IDX as IGNORE
from raytune_chat.datasets import read_rejects
from raytune_chat.datasets._split import parse_split
from raytune_chat.recipes import get_recipe
from raytune_chat.training import validate_config, validation_loss
from raytune_chat.training.metric_logging import read_metrics
from tests.recipes._tiny import fast_overrides, sample_conversations, write_chat_file

BAD_LINES = [b'{"dialogue": [{"from": "human", "value": "a"}', b'{"dialogue": "hello"}']


# --- plain torch and config: no cluster ------------------------------------------------


class _Tiny(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.emb = nn.Embedding(16, 16)
        self.drop = nn.Dropout(0.5)

    def forward(self, tokens: torch.Tensor, **_: object) -> torch.Tensor:
        return self.drop(self.emb(tokens))


def _ce(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    return nn.functional.cross_entropy(logits.flatten(0, 1), labels.flatten(), ignore_index=IGNORE)


def test_validation_loss_is_token_weighted_in_eval_mode_and_stops_at_max_steps():
    torch.manual_seed(0)
    model = _Tiny()
    batches = [
        {"tokens": torch.tensor([[1, 2, 3, 4]]), "labels": torch.tensor([[2, 3, 4, 5]])},
        {"tokens": torch.tensor([[6, 7]]), "labels": torch.tensor([[7, IGNORE]])},
        {"tokens": torch.tensor([[8, 9]]), "labels": torch.tensor([[9, 10]])},
    ]
    cpu = torch.device("cpu")
    stats = validation_loss(model, _ce, batches, device=cpu)
    model.eval()  # dropout off: what validation must have used
    with torch.no_grad():
        per_batch = [
            (_ce(model(b["tokens"]), b["labels"]), (b["labels"] != IGNORE).sum()) for b in batches
        ]
    expected = sum(float(loss) * int(n) for loss, n in per_batch) / 7
    assert stats.num_trained_tokens == 7 and stats.num_batches == 3
    assert stats.loss == pytest.approx(expected, rel=1e-6)
    model.train()
    first_two = validation_loss(model, _ce, batches, device=cpu, max_steps=2)
    assert (first_two.num_batches, first_two.num_trained_tokens) == (2, 5)
    assert model.training  # back in the mode it was in


def test_val_keys_need_a_dataset_val_section():
    cfg = load_config("tiny/llama3_lora_cpu", ["run_val_every_n_steps=5"])
    with pytest.raises(ConfigError, match="run_val_every_n_steps.*dataset_val"):
        validate_config(cfg)
    cfg = load_config("tiny/llama3_lora_cpu", ["eval_generate_n=5"])
    with pytest.raises(ConfigError, match="eval_generate_n.*dataset_val"):
        validate_config(cfg)
    cfg["dataset_val"] = {**cfg["dataset"], "split": "train[90%:]", "bogus": 1}
    with pytest.raises(ConfigError, match="dataset_val"):
        validate_config(cfg)


def test_split_parts_are_disjoint_and_cover_every_row():
    first, rest = parse_split("train[:90%]"), parse_split("train[90%:]")
    rows = torch.arange(1000).numpy()
    assert int(first.keep(rows).sum()) == 900 and int(rest.keep(rows).sum()) == 100
    assert not (first.keep(rows) & rest.keep(rows)).any()
    with pytest.raises(ValueError, match="in percent"):
        parse_split("train[:100]")


# --- recipes on the cluster ----------------------------------------------------------------


def _jsonl(path: Path, rows: list[dict], bad: list[bytes]) -> Path:
    lines = [json.dumps(r).encode() for r in rows]
    for i, raw in enumerate(bad):
        lines.insert(1 + 2 * i, raw)
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path


@pytest.mark.slow
def test_val_loss_at_the_steps_and_the_end_equals_the_training_loss_of_the_same_rows(
    ray_cluster, tmp_path
):
    """6 rows, batch 2, no shuffle: 3 steps. The validation file holds the same 6 rows in the
    same order (plus 2 bad lines), so its batches are the training batches, tensor for
    tensor; with lr 0 its loss is the token-weighted mean of the 3 step losses."""
    rows = sample_conversations(6, skip=100)
    data = write_chat_file(tmp_path / "train.json", rows)
    val_file = _jsonl(tmp_path / "val.jsonl", rows, BAD_LINES)
    out = tmp_path / "out"
    overrides = [
        *fast_overrides(out, data),
        "optimizer.lr=0",
        "shuffle=False",
        "seed=0",
        "max_steps_per_epoch=null",
        "run_val_every_n_steps=2",
        "log_peak_memory_stats=False",
        "eval_generate_n=2",  # the end-of-run stop check on the first 2 validation prompts
        "eval_max_new_tokens=3",
    ]
    cfg = load_config("tiny/llama3_lora_cpu", overrides)
    # The training set's own quarantine folder: the validation rejects go beside, in val/.
    cfg["dataset_val"] = {
        **cfg["dataset"],
        "data_files": str(val_file),
        "max_rejected_fraction": 0.5,
    }
    summary = get_recipe("lora_finetune_single_device")(cfg)

    records = read_metrics(out / "metrics.jsonl")
    train = [r for r in records if "loss" in r]
    val = [r for r in records if "val_loss" in r]
    assert [r["step"] for r in train] == [1, 2, 3]
    assert [r["step"] for r in val] == [2, 3]  # every 2 steps, and at the end (step 3)
    seen = [0] + [r["trained_tokens_seen"] for r in train]
    tokens = [b - a for a, b in itertools.pairwise(seen)]
    expected = sum(r["loss"] * n for r, n in zip(train, tokens, strict=True)) / sum(tokens)
    for record in val:
        assert record["val_trained_tokens"] == sum(tokens)
        assert record["val_batches"] == 3
        assert record["val_loss"] == pytest.approx(expected, rel=1e-6)
    # The config's own metric_logger (a DiskLogger in logs/) gets the same records.
    (tracker,) = (out / "logs").glob("*.jsonl")
    assert [r for r in read_metrics(tracker) if "val_loss" in r] == val
    assert summary["val_loss"] == val[-1]["val_loss"]
    assert summary["val_losses"] == [[r["step"], r["val_loss"]] for r in val]
    # Rejected validation rows are counted and quarantined apart from the training rows.
    assert (summary["rows_read"], summary["rows_kept"], summary["rows_rejected"]) == (6, 6, 0)
    assert (summary["val_rows_read"], summary["val_rows_kept"]) == (8, 6)
    assert summary["val_rows_rejected_by_reason"] == {"invalid_json": 1, "not_a_list": 1}
    assert summary["val_rejected_path"] == str(out / "rejected" / "val")
    assert read_rejects(str(out / "rejected")) == []
    assert sorted(r["line"] for r in read_rejects(str(out / "rejected" / "val"))) == [2, 4]
    assert (out / "loss.png").stat().st_size > 0
    # The stop check ran once, at the end, on 2 prompts cut from the validation rows.
    (stops,) = [r for r in records if "stop_share" in r]
    assert (stops["step"], stops["stop_share_n"], stops["stop_share_max_new_tokens"]) == (3, 2, 3)
    assert (summary["stop_share"], summary["stop_share_n"]) == (stops["stop_share"], 2)
    assert stops["stop_share"] in (0.0, 0.5, 1.0)


@pytest.mark.slow
def test_two_workers_reduce_the_val_loss_over_both_shards(ray_cluster, tmp_path):
    """10 rows, `split: train[:50%]`: rows 0,2,4,5,7,9 (bucket (61k) % 100 < 50), 3 a rank,
    one step of batch 3 on each. `dataset_val` names the same part: each rank validates its 3
    rows and the all-reduced loss must be the step's loss over all 6 (lr 0), and its token
    count the step's, exactly (one rank's alone would be about half)."""
    data = write_chat_file(tmp_path / "rows.json", sample_conversations(10, skip=200))
    out = tmp_path / "out"
    overrides = [
        *fast_overrides(out, data),
        "ray.num_workers=2",
        "ray.resources_per_worker={CPU: 0.25}",
        "batch_size=3",
        "optimizer.lr=0",
        "shuffle=False",
        "seed=0",
        "max_steps_per_epoch=null",
        "log_row_ids=True",
        "log_peak_memory_stats=False",
    ]
    cfg = load_config("tiny/llama3_lora_cpu", overrides)
    cfg["dataset"]["split"] = "train[:50%]"
    cfg["dataset_val"] = dict(cfg["dataset"])
    summary = get_recipe("lora_finetune_distributed")(cfg)

    trained = {
        i for p in (out / "row_ids").glob("*.jsonl") for r in read_metrics(p) for i in r["row_ids"]
    }
    assert trained == {0, 2, 4, 5, 7, 9}  # the part, all of it in the one step
    assert summary["rows_kept"] == 6 and summary["val_rows_kept"] == 6
    records = read_metrics(out / "metrics.jsonl")
    (step,) = [r for r in records if "loss" in r]
    (val,) = [r for r in records if "val_loss" in r]  # no run_val_every_n_steps: the end
    assert val["step"] == 1 and val["val_batches"] == 1  # per rank
    assert val["val_trained_tokens"] == step["trained_tokens_seen"]  # both ranks' tokens
    assert val["val_loss"] == pytest.approx(step["loss"], rel=1e-5)
