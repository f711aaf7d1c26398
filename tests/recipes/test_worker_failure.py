"""A training worker killed mid-epoch: the run recovers by itself and trains each row once.

Unlike test_streaming_runs' killed driver (a person reruns the command), here the driver lives
on: one worker process dies (SIGKILL, as when its node goes), and with `ray.max_failures: 1`
Ray Train restarts the worker group from the latest checkpoint within the same `fit()`. The
row-id fingerprint (`log_row_ids: True`) shows that over the whole run every row was trained
exactly once, on both ranks.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter

import pytest

from raytune_chat.config import load_config
from raytune_chat.recipes import get_recipe
from raytune_chat.training.metric_logging import read_metrics
from tests.recipes._runs import holding, logged_step, registered_step, row_log, two_workers
from tests.recipes._tiny import sample_conversations

pytestmark = pytest.mark.slow

ROWS = 40  # 2 ranks x 2 rows a step: 10 steps


# One strategy per run of the same story: DDP, and FSDP2 (each rank holds half of every
# weight; the checkpoint gathers them).
@pytest.mark.parametrize("strategy", ["ddp", "fsdp"])
def test_killed_worker_recovers_by_itself_and_trains_each_row_once(ray_cluster, tmp_path, strategy):
    data = tmp_path / "chat.jsonl"
    rows = sample_conversations(ROWS, skip=600)
    data.write_text("".join(json.dumps(row) + "\n" for row in rows))
    out = tmp_path / "out"
    overrides = two_workers(
        out, data, "save_every_n_steps=2", "ray.max_failures=1", f"ray.strategy={strategy}"
    )
    cfg = load_config("tiny/llama3_lora_cpu", overrides)
    done: dict[str, object] = {}

    def run() -> None:
        try:
            done["summary"] = get_recipe("lora_finetune_distributed")(cfg)
        except BaseException as exc:  # noqa: BLE001 - re-raised by the test below
            done["error"] = exc

    runner = threading.Thread(target=run, daemon=True)
    runner.start()
    # Kill rank 0's worker (the one that writes the checkpoints and the metrics) once a
    # checkpoint is registered and it has trained past it: mid-epoch, with unsaved steps.
    rank0_log = out / "row_ids" / "rank_0.jsonl"
    deadline = time.monotonic() + 600
    victims = []
    while time.monotonic() < deadline and runner.is_alive():
        saved = registered_step(out / "ray_results")
        if saved and logged_step(out) >= saved + 1:
            victims = holding(rank0_log)
            if victims:
                break
        time.sleep(0.02)
    assert len(victims) == 1, (victims, done)
    victims[0].kill()
    killed_at = logged_step(out)  # its last step (the new workers take seconds to start)
    runner.join(timeout=600)
    assert not runner.is_alive(), "the run did not end after the worker was killed"
    if "error" in done:
        raise done["error"]
    summary = done["summary"]

    assert summary["steps"] == ROWS // 4
    records = read_metrics(out / "metrics.jsonl")
    assert [r["step"] for r in records] == list(range(1, ROWS // 4 + 1))
    resumed_from = records[-1]["resumed_from_step"]
    assert 2 <= resumed_from < killed_at < ROWS // 4  # recovered mid-epoch, from a checkpoint
    assert all(r["resumed_from_step"] == 0 for r in records[:resumed_from])
    trained: Counter = Counter()
    for rank, lines in row_log(out).items():
        assert [line["step"] for line in lines] == list(range(1, ROWS // 4 + 1)), rank
        for line in lines:
            trained.update(line["row_ids"])
    # Row ids are line numbers 1..ROWS: every row exactly once over the whole run.
    assert trained == Counter({line: 1 for line in range(1, ROWS + 1)})
