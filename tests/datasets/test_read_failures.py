"""A connection that breaks mid-file: every row once after a transient break, a named
failure of the run after a break for good. Never a rejected row.

The file is served over HTTP from 127.0.0.1 by a server that resets the connection when a
request reaches 55% of the file's bytes; it is larger than the driver's 1 MiB sample, so
the break lands in the pipeline's read task. Small HTTP blocks (8 KiB) make the reader's
progress, and so "how far it got", fine-grained.
"""

from __future__ import annotations

import json
import re
from collections import Counter

import pytest

from raytune_chat._cli import main
from raytune_chat.datasets import chat_dataset, chat_dataset_info
from raytune_chat.models.llama3 import llama3_tokenizer
from tests.datasets._breaking_server import BreakingFileServer
from tests.recipes._tiny import fast_overrides

pytestmark = pytest.mark.slow

ROWS = 3000
HTTP = {"block_size": 8192}


def _conversation(i: int) -> dict:
    filler = " ".join(f"w{(i * 7 + k) % 997}" for k in range(150))
    return {
        "dialogue": [
            {"from": "human", "value": f"Repeat zq{i:05d}x please. {filler}"},
            {"from": "gpt", "value": f"zq{i:05d}x"},
        ]
    }


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    folder = tmp_path_factory.mktemp("served")
    path = folder / "chat.jsonl"
    path.write_text("".join(json.dumps(_conversation(i)) + "\n" for i in range(ROWS)))
    assert path.stat().st_size > 2 * (1 << 20)  # the driver's sample stops before the break
    return path


def test_a_transient_break_recovers_every_row_exactly_once(ray_cluster, bpe_path, served):
    tokenizer = llama3_tokenizer(str(bpe_path), max_seq_len=512)
    with BreakingFileServer(
        served.parent, break_at=served.stat().st_size * 55 // 100, breaks=3
    ) as srv:
        ds = chat_dataset(
            tokenizer,
            source="jsonl",
            data_files=f"{srv.url}/{served.name}",
            conversation_column="dialogue",
            conversation_style="sharegpt",
            storage_options=HTTP,
            rejected_path=str(served.parent / "rejected"),
            num_workers=1,
        )
        rows = ds.take_all()
        broken = srv.broken
    assert broken == 3  # the connection did break, three times
    seen = Counter()
    for row in rows:
        seen.update(re.findall(r"zq\d{5}x", tokenizer.decode(list(row["tokens"][-12:]))))
    assert seen == Counter({f"zq{i:05d}x": 1 for i in range(ROWS)})  # each answer once
    stats = chat_dataset_info(ds).stats()
    assert stats.complete and stats.rows_read == stats.rows_kept == ROWS
    assert not (served.parent / "rejected").exists()  # a read failure is never a reject


def test_a_break_for_good_fails_the_run_naming_the_file(ray_cluster, served, tmp_path, capsys):
    size = served.stat().st_size
    with BreakingFileServer(served.parent, break_at=size * 55 // 100, breaks=None) as srv:
        url = f"{srv.url}/{served.name}"
        code = main(
            [
                "run",
                "lora_finetune_single_device",
                "--config",
                "tiny/llama3_lora_cpu",
                *fast_overrides(tmp_path / "out", served),
                f"dataset.data_files={url}",
                "dataset.source=jsonl",
                f"dataset.storage_options={{block_size: {HTTP['block_size']}}}",
                "max_steps_per_epoch=null",  # the epoch needs the whole file
                "log_peak_memory_stats=False",
            ]
        )
    assert code == 1
    error = capsys.readouterr().err
    assert f"raytune-chat: data error: cannot read {url} after 5 retries" in error
    reached = int(re.search(r"stopped at byte ([\d,]+) of", error).group(1).replace(",", ""))
    assert size * 0.40 < reached <= size * 0.55, error  # how far it got: near the break
    assert f"of {size:,} (" in error
    assert not (tmp_path / "out" / "rejected").exists()
