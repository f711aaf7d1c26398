"""Tool-calling rows end to end: chat_dataset on a real local Ray cluster, and the stage alone."""

from __future__ import annotations

import json

import pyarrow as pa
import pytest

from raytune_chat.datasets import chat_dataset, chat_dataset_info, read_rejects
from raytune_chat.datasets._readers import RECORD_SCHEMA
from raytune_chat.datasets._tokenize import TokenizeRows
from raytune_chat.models.llama3 import llama3_tokenizer
from tests.assets.tool_chats import (
    answer,
    expected_call,
    expected_result,
    openai_tool_row,
    sharegpt_tool_row,
)

HEADER = "<|start_header_id|>{}<|end_header_id|>\n\n"


def _bad_rows() -> dict[str, dict]:
    two_calls = openai_tool_row(1)
    two_calls["messages"][1]["tool_calls"] *= 2
    bad_args = openai_tool_row(1)
    bad_args["messages"][1]["tool_calls"][0]["function"]["arguments"] = '{"city": '
    bad_tools = {**openai_tool_row(1), "tools": "[{"}
    too_long = openai_tool_row(1)
    too_long["messages"][0]["content"] = "Weather? " * 2000
    nothing_trained = {
        "messages": [{"role": "user", "content": "q"}, {"role": "tool", "content": "r"}]
    }
    return {
        "multiple_tool_calls": two_calls,
        "bad_tool_call": bad_args,
        "bad_tools": bad_tools,
        "too_long": too_long,
        "no_trained_tokens": nothing_trained,
    }


def _spans(tokens: list[int], labels: list[int], decode) -> tuple[list[str], list[str]]:
    """Decoded runs of trained and of masked tokens (token i is trained if labels[i-1] is)."""
    trained, masked, run, state = [], [], [], None
    for i, token in enumerate(tokens):
        now = i > 0 and labels[i - 1] != -100
        if run and now != state:
            (trained if state else masked).append(decode(run))
            run = []
        run.append(token)
        state = now
    (trained if state else masked).append(decode(run))
    return trained, masked


@pytest.mark.slow
def test_sixty_openai_tool_rows_all_kept_and_new_reasons_quarantined(
    ray_cluster, bpe_path, tmp_path
):
    rows = [openai_tool_row(i) for i in range(60)]
    for i in range(0, 60, 3):  # a reasoning trace on every third final answer
        rows[i]["messages"][-1]["reasoning_content"] = f"the tool said so ({i})"
    bad = _bad_rows()
    path = tmp_path / "tools.jsonl"
    path.write_text(
        "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in [*rows, *bad.values()])
    )
    tok = llama3_tokenizer(str(bpe_path), max_seq_len=1024)
    ds = chat_dataset(
        tok,
        source="jsonl",
        data_files=str(path),
        conversation_column="messages",
        conversation_style="openai",
        rejected_path=str(tmp_path / "rejected"),
        max_rejected_fraction=0.5,
        num_workers=1,
        reasoning="drop",
        truncation="drop",
    )
    kept = ds.take_all()
    assert len(kept) == 60

    def decode(ids):
        return tok.decode(ids, truncate_at_eos=False, skip_special_tokens=False)

    seen = set()
    for row in kept:
        tokens, labels = [int(t) for t in row["tokens"]], [int(t) for t in row["labels"]]
        trained, masked = _spans(tokens, labels, decode)
        i = next(i for i in range(60) if f"(#{i})" in decode(tokens))
        seen.add(i)
        assert trained == [
            HEADER.format("assistant") + expected_call(i) + "<|eot_id|>",
            HEADER.format("assistant") + answer(i) + "<|eot_id|>",
        ]
        prompt, result = masked[0], masked[1]
        assert HEADER.format("user") + "Given the following functions" in prompt
        assert '"name": "get_weather",' in prompt and '"name": "convert_currency",' in prompt
        assert result == HEADER.format("ipython") + expected_result(i) + "<|eot_id|>"
        assert "<think>" not in decode(tokens)
    assert seen == set(range(60))

    rejects = {r["reason"]: r for r in read_rejects(str(tmp_path / "rejected"))}
    assert sorted(rejects) == sorted(bad)
    for line, (reason, row) in enumerate(bad.items(), start=61):
        record = rejects[reason]
        assert record["source"].endswith("tools.jsonl") and record["line"] == line
        assert (
            record["message"] and record["raw"][:200] == json.dumps(row, ensure_ascii=False)[:200]
        )
    stats = chat_dataset_info(ds).stats()  # counted while the rows streamed
    assert stats.complete
    assert (stats.rows_read, stats.rows_kept, stats.rows_rejected) == (65, 60, 5)
    assert stats.rejected_by_reason == dict.fromkeys(bad, 1)
    assert stats.dropped == {"reasoning": 20}
    assert stats.truncated_rows == 0


def _batch(rows: list[dict]) -> pa.Table:
    n = len(rows)
    return pa.Table.from_pydict(
        {
            "source": ["t.jsonl"] * n,
            "line": list(range(1, n + 1)),
            "row": [-1] * n,
            "record_id": list(range(1, n + 1)),
            "raw": [json.dumps(r).encode() for r in rows],
            "error": [None] * n,
        },
        schema=RECORD_SCHEMA,
    )


def test_sharegpt_form_gives_the_same_rows_and_history_counts(bpe_path, tmp_path):
    tok = llama3_tokenizer(str(bpe_path), max_seq_len=1024)
    common = {"tokenizer": tok, "rejected_path": str(tmp_path / "rej"), "truncation": "history"}
    openai = TokenizeRows(conversation_style="openai", conversation_column="messages", **common)
    sharegpt = TokenizeRows(
        conversation_style="sharegpt", conversation_column="conversations", **common
    )
    a = openai(_batch([openai_tool_row(i) for i in range(12)]))
    b = sharegpt(_batch([sharegpt_tool_row(i) for i in range(12)]))
    assert a.num_rows == 12 and a.to_pylist() == b.to_pylist()

    long_history = openai_tool_row(1)  # two old exchanges that cannot fit before it
    old = [{"role": "user", "content": "hi " * 700}, {"role": "assistant", "content": "ok"}]
    long_history["messages"] = old * 2 + long_history["messages"]
    out = openai(_batch([long_history, openai_tool_row(1)])).to_pylist()
    assert out[0]["tokens"] == out[1]["tokens"] and out[0]["labels"] == out[1]["labels"]
    assert (out[0]["truncated"], out[0]["dropped_messages"]) == (True, 4)
    assert (out[1]["truncated"], out[1]["dropped_messages"]) == (False, 0)
