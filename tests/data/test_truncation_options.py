"""`truncation` right / drop / history, and rows left with no trained token (spec §5)."""

from __future__ import annotations

import pytest

from raytune_chat.data import (
    Message,
    OpenAIToMessages,
    RowRejected,
    ShareGPTToMessages,
    tokenize_conversation,
)
from raytune_chat.models.llama2 import llama2_tokenizer
from raytune_chat.models.llama3 import llama3_tokenizer
from tests.assets.tool_chats import openai_tool_row

SYSTEM = {"role": "system", "content": "Be brief."}


def exchange(i: int, words: int = 20) -> list[dict]:
    return [
        {"role": "user", "content": f"question {i}: " + "why " * words},
        {"role": "assistant", "content": f"answer {i}: " + "because " * words},
    ]


def conversation(n: int, system: bool = True, words: int = 20) -> dict:
    messages = [SYSTEM] if system else []
    for i in range(n):
        messages += exchange(i, words)
    return {"messages": messages}


def run(tok, row, truncation, transform=None):
    return tokenize_conversation(
        row, message_transform=transform or OpenAIToMessages(), tokenizer=tok, truncation=truncation
    )


@pytest.fixture(scope="module")
def full_len(bpe_path):
    return {
        (n, system): len(run(llama3_tokenizer(str(bpe_path)), conversation(n, system), "right")[0])
        for n in (1, 2, 3, 5, 6)
        for system in (True, False)
    }


def test_fitting_rows_are_the_same_under_every_option(bpe_path, full_len):
    tok = llama3_tokenizer(str(bpe_path), max_seq_len=full_len[(6, True)])
    results = {t: run(tok, conversation(6), t) for t in ("right", "drop", "history")}
    assert results["right"] == results["drop"] == results["history"]
    assert results["right"].truncated is False and results["right"].dropped == {}


def test_drop_rejects_too_long(bpe_path, full_len):
    tok = llama3_tokenizer(str(bpe_path), max_seq_len=full_len[(6, True)] - 1)
    assert run(tok, conversation(6), "right").truncated
    with pytest.raises(RowRejected, match="longer than max_seq_len=") as info:
        run(tok, conversation(6), "drop")
    assert info.value.reason == "too_long"


@pytest.mark.parametrize("system", [True, False])
def test_history_drops_the_oldest_exchanges(bpe_path, full_len, system):
    # Room for the system message and exactly 3 of the 6 exchanges.
    max_seq_len = full_len[(3, system)] + 2
    tok = llama3_tokenizer(str(bpe_path), max_seq_len=max_seq_len)
    tokens, mask, truncated, dropped = run(tok, conversation(6, system), "history")
    kept = ([SYSTEM] if system else []) + [m for i in (3, 4, 5) for m in exchange(i)]
    expected = llama3_tokenizer(str(bpe_path)).tokenize_messages(
        OpenAIToMessages()({"messages": kept})["messages"]
    )
    assert (tokens, mask) == expected and len(tokens) <= max_seq_len
    assert truncated is True and dropped == {"messages": 6}
    assert tokens[-1] == 128001 and tokens.count(128009) == len(kept)  # no answer is cut


def test_history_rejects_when_the_last_exchange_alone_is_too_long(bpe_path, full_len):
    tok = llama3_tokenizer(str(bpe_path), max_seq_len=full_len[(1, True)] - 1)
    with pytest.raises(RowRejected, match=r"last exchange \(messages 11\.\.12\)") as info:
        run(tok, conversation(6), "history")
    assert info.value.reason == "too_long"
    with pytest.raises(RowRejected) as info:  # a single exchange: nothing to drop
        run(tok, conversation(1), "history")
    assert info.value.reason == "too_long"


def test_history_keeps_the_tool_schemas_and_the_whole_tool_exchange(bpe_path):
    row = openai_tool_row(0)  # system, user, call, result, answer
    old = exchange(0, words=200)
    row["messages"] = row["messages"][:1] + old + row["messages"][1:]
    plain = llama3_tokenizer(str(bpe_path))
    alone = run(plain, openai_tool_row(0), "right")
    tok = llama3_tokenizer(str(bpe_path), max_seq_len=len(alone.tokens) + 10)
    result = run(tok, row, "history")
    assert (result.tokens, result.mask) == (alone.tokens, alone.mask)
    assert result.dropped == {"messages": 2}
    assert "Given the following functions" in tok.decode(result.tokens)


def test_right_truncation_that_leaves_nothing_trained_is_rejected(bpe_path):
    row = {"messages": [{"role": "user", "content": "long " * 300}, exchange(0)[1]]}
    tok = llama3_tokenizer(str(bpe_path), max_seq_len=64)
    with pytest.raises(RowRejected, match="after truncation to max_seq_len=64") as info:
        run(tok, row, "right")
    assert info.value.reason == "no_trained_tokens"
    for truncation in ("drop", "history"):  # these never cut an answer: the row is too long
        with pytest.raises(RowRejected) as info:
            run(tok, row, truncation)
        assert info.value.reason == "too_long"


def test_row_without_an_assistant_turn_is_rejected(bpe_path):
    row = {"messages": [{"role": "user", "content": "q"}, {"role": "tool", "content": "r"}]}
    with pytest.raises(RowRejected, match="no token of the conversation is trained on") as info:
        run(llama3_tokenizer(str(bpe_path)), row, "right")
    assert info.value.reason == "no_trained_tokens"


def test_tokenizers_without_a_tool_or_reasoning_format_reject_such_rows(spm_path):
    tok = llama2_tokenizer(str(spm_path))
    with pytest.raises(RowRejected, match="has no tool-calling format") as info:
        run(tok, openai_tool_row(1), "right")
    assert info.value.reason == "not_supported_by_tokenizer"
    row = {
        "conversations": [
            {"from": "human", "value": "q"},
            {"from": "gpt", "value": "a", "reasoning_content": "r"},
        ]
    }
    with pytest.raises(RowRejected, match="message 1 has a reasoning trace") as info:
        run(tok, row, "right", ShareGPTToMessages())
    result = run(tok, row, "right", ShareGPTToMessages(reasoning="drop"))
    assert result.dropped == {"reasoning": 1, "call_text": 0}
    assert (
        result.tokens
        == tok.tokenize_messages([Message("user", "q", masked=True), Message("assistant", "a")])[0]
    )


def test_unknown_truncation_is_an_error(bpe_path, full_len):
    tok = llama3_tokenizer(str(bpe_path), max_seq_len=8)
    with pytest.raises(ValueError, match="truncation must be one of"):
        run(tok, conversation(2), "left")
