"""Runs that stream: epochs end with the data, epoch 2 reads the token store, counts are
exact, and a killed run resumes on exactly the rows it had not trained.

Every rank logs the row ids of each step (`log_row_ids=True`): that log is the proof that
each row of an epoch was trained exactly once, on 2 DDP workers, across a kill.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import psutil
import pytest

from raytune_chat.config import load_config
from raytune_chat.recipes import get_recipe
from raytune_chat.training.metric_logging import read_metrics
from tests.recipes._runs import holding, logged_step, registered_step, row_log, two_workers
from tests.recipes._tiny import sample_conversations

pytestmark = pytest.mark.slow

BAD = {
    b'{"dialogue": [{"from": "human", "value": "a"}': "invalid_json",
    json.dumps({"dialogue": [{"from": "robot", "value": "b"}]}).encode(): "unknown_role",
    json.dumps({"dialogue": "hello"}).encode(): "not_a_list",
}


def _jsonl(path: Path, rows: list, extra: list[bytes] = ()) -> Path:
    lines = [json.dumps(r).encode() for r in rows]
    for i, raw in enumerate(extra):
        lines.insert(3 + 4 * i, raw)
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path


def test_two_workers_uneven_files_two_epochs_tokenize_once_exact_counts(ray_cluster, tmp_path):
    """41 good rows in files of 33 and 8, 3 bad ones: 20 rows a rank, 10 steps an epoch."""
    good = sample_conversations(41, skip=400)
    _jsonl(tmp_path / "a.jsonl", good[:33], list(BAD))
    _jsonl(tmp_path / "b.jsonl", good[33:])
    out = tmp_path / "out"
    overrides = two_workers(
        out,
        tmp_path / "*.jsonl",
        "epochs=2",
        "dataset.max_rejected_fraction=0.2",
        "save_every_n_steps=100",
    )
    summary = get_recipe("lora_finetune_distributed")(
        load_config("tiny/llama3_lora_cpu", overrides)
    )
    # The counts come from the run itself, exact: read = kept + rejected, by reason.
    assert summary["data_complete"]
    assert (summary["rows_read"], summary["rows_kept"], summary["rows_rejected"]) == (44, 41, 3)
    assert summary["rows_rejected_by_reason"] == dict(Counter(BAD.values()))
    # Tokenized once: 44 records over two epochs; epoch 2 read the token store.
    assert summary["rows_tokenized"] == 44
    assert summary["steps"] == 20 and summary["plan"]["exact"]
    records = read_metrics(out / "metrics.jsonl")
    assert [r["step"] for r in records] == list(range(1, 21))
    for r in records:  # the counts grow in the step log, and always add up
        assert r["rows_read"] == r["rows_kept"] + r["rows_rejected"]
    assert all(r["rows_tokenized"] == 44 for r in records if r["epoch"] == 1)
    assert records[-1]["plan"] == "exact (epoch)" and records[-1]["planned_steps"] == 20
    logs = row_log(out)
    assert sorted(logs) == [0, 1]
    by_epoch: dict[int, Counter] = {0: Counter(), 1: Counter()}
    for lines in logs.values():
        assert [line["step"] for line in lines] == list(range(1, 21))  # no uneven DDP step
        for line in lines:
            assert len(line["row_ids"]) == 2
            by_epoch[line["epoch"]].update(line["row_ids"])
    # Each epoch trains 40 distinct rows of 41 (one left over by the equal split), from both
    # files (file index in the row id's high bits), and epoch 2's rows are epoch 1's.
    assert sum(by_epoch[0].values()) == len(by_epoch[0]) == 40
    assert by_epoch[1] == by_epoch[0]
    assert {row >> 40 for row in by_epoch[0]} == {0, 1}


def test_two_workers_killed_mid_epoch_resume_on_exactly_the_untrained_rows(ray_cluster, tmp_path):
    """`seed: null`, shuffled: the driver, then its workers, are killed after a checkpoint;
    a new driver (which draws another seed) resumes with the checkpoint's seed and order."""
    import ray

    data = _jsonl(tmp_path / "chat.jsonl", sample_conversations(80, skip=500))
    out = tmp_path / "out"
    overrides = two_workers(out, data, "save_every_n_steps=2")
    env = dict(os.environ, RAY_ADDRESS=ray.get_runtime_context().gcs_address)
    argv = [sys.executable, "-m", "raytune_chat._cli", "run", "lora_finetune_distributed"]
    first = subprocess.Popen(
        [*argv, "--config", "tiny/llama3_lora_cpu", *overrides],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    deadline = time.time() + 600
    while time.time() < deadline and first.poll() is None:
        saved = registered_step(out / "ray_results")
        if saved and logged_step(out) >= saved + 2:
            break
        time.sleep(0.02)
    assert first.poll() is None, first.stdout.read()[-3000:]
    os.killpg(first.pid, signal.SIGKILL)  # the driver...
    printed = first.communicate()[0]
    for proc in holding(out):  # ...and its training workers, as when a node dies
        proc.kill()
    psutil.wait_procs(holding(out), timeout=60)
    killed_at = logged_step(out)
    seed = int(re.search(r"seed (\d+) \(drawn", printed).group(1))

    cfg = load_config("tiny/llama3_lora_cpu", overrides)
    summary = get_recipe("lora_finetune_distributed")(cfg)
    assert summary["steps"] == 20
    records = read_metrics(out / "metrics.jsonl")
    resumed_from = records[-1]["resumed_from_step"]
    assert 2 <= resumed_from < killed_at < 20  # killed mid-epoch, after some unsaved steps
    trained: Counter = Counter()
    for rank, lines in row_log(out).items():
        assert [line["step"] for line in lines] == list(range(1, 21)), rank
        for line in lines:
            trained.update(line["row_ids"])
    # 80 rows (ids = lines 1-80), 2 ranks x 2 rows x 20 steps: every row exactly once.
    assert trained == Counter({line: 1 for line in range(1, 81)})
    assert summary["seed"] == seed  # the checkpoint's seed, not the one the new driver drew
