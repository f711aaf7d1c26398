"""Golden tests of spec §5 for the Llama3 tokenizer: tool calls, tool results, reasoning.

Runs on cl100k, Meta's `tokenizer.model` and Meta's `tokenizer.json` (tests/models/conftest.py).
Expected ids are raw tiktoken calls on the texts the spec writes out (Meta's Llama 3.1 JSON
tool-calling layout), with literal special ids.
"""

from __future__ import annotations

import json

import pytest

from raytune_chat.data import OpenAIToMessages, ShareGPTToMessages, tokenize_row
from raytune_chat.models.llama3 import llama3_tokenizer
from tests.assets.tool_chats import (
    SYSTEM,
    TOOLS,
    answer,
    expected_call,
    expected_result,
    openai_tool_row,
    sharegpt_tool_row,
)

BOS, EOS, SH, EH, EOT = 128000, 128001, 128006, 128007, 128009
# Meta's template text, written out here (no space before "Do", as in the template).
PREAMBLE = (
    "Given the following functions, please respond with a JSON for a function call with its "
    "proper arguments that best answers the given prompt.\n\nRespond in the format "
    '{"name": function name, "parameters": dictionary of argument name and its value}.'
    "Do not use variables.\n\n"
)


@pytest.fixture(scope="module")
def tok(tokenizer_file):
    return llama3_tokenizer(str(tokenizer_file.path))


def turn(raw, role, text, masked):
    ids = [SH, *raw(role), EH, *raw("\n\n"), *raw(text), EOT]
    return ids, [masked] * len(ids)


def layout(*turns):
    tokens, mask = [BOS], [True]
    for ids, m in turns:
        tokens += ids
        mask += m
    return tokens + [EOS], mask + [True]


def expected_tool_row(raw, i):
    schemas = "".join(json.dumps(t, indent=4, ensure_ascii=False) + "\n\n" for t in TOOLS)
    question = openai_tool_row(i)["messages"][-4]["content"]
    turns = [turn(raw, "system", SYSTEM, True)] if i % 2 == 0 else []
    turns += [
        turn(raw, "user", PREAMBLE + schemas + question, True),
        turn(raw, "assistant", expected_call(i), False),
        turn(raw, "ipython", expected_result(i), True),
        turn(raw, "assistant", answer(i), False),
    ]
    return layout(*turns)


@pytest.mark.parametrize("i", [0, 1, 3])  # system or not; tools as a list or a JSON string
def test_tool_row_layout(tok, raw, i):
    sample = OpenAIToMessages()(openai_tool_row(i))
    tokens, mask = tok.tokenize_messages(sample["messages"], tools=sample["tools"])
    assert (tokens, mask) == expected_tool_row(raw, i)
    text = tok.decode(tokens, skip_special_tokens=False)
    assert '<|start_header_id|>assistant<|end_header_id|>\n\n{"name": "get_weather", ' in text
    assert "<|start_header_id|>ipython<|end_header_id|>\n\n{" in text


def test_llama_factory_sharegpt_gives_the_same_tokens_and_masks(tok, raw):
    for i in range(60):
        openai = tokenize_row(
            openai_tool_row(i), message_transform=OpenAIToMessages(), tokenizer=tok
        )
        sharegpt = tokenize_row(
            sharegpt_tool_row(i), message_transform=ShareGPTToMessages(), tokenizer=tok
        )
        assert sharegpt == openai, i
    assert openai["tokens"] == expected_tool_row(raw, 59)[0]


def test_train_on_input_trains_schemas_and_results(tok, raw):
    sample = OpenAIToMessages(train_on_input=True)(openai_tool_row(1))
    tokens, mask = tok.tokenize_messages(sample["messages"], tools=sample["tools"])
    assert tokens == expected_tool_row(raw, 1)[0]
    assert mask[0] and mask[-1] and not any(mask[1:-1])


REASONING_ROW = {
    "messages": [
        {"role": "user", "content": "What is 17 * 3?"},
        {"role": "assistant", "content": " 51. ", "reasoning_content": " 17 * 3 = 51 "},
    ]
}


@pytest.mark.parametrize("key", ["reasoning_content", "reasoning"])
def test_reasoning_keep_mask_drop(tok, raw, key):
    row = {"messages": [dict(m) for m in REASONING_ROW["messages"]]}
    row["messages"][1][key] = row["messages"][1].pop("reasoning_content")
    think = "<think>\n17 * 3 = 51\n</think>\n\n"
    user = turn(raw, "user", "What is 17 * 3?", True)

    keep = OpenAIToMessages(reasoning="keep")(row)["messages"]
    assert tok.tokenize_messages(keep) == layout(user, turn(raw, "assistant", think + "51.", False))

    masked = OpenAIToMessages(reasoning="mask")(row)["messages"]
    tokens, mask = tok.tokenize_messages(masked)
    assert tokens == layout(user, turn(raw, "assistant", think + "51.", False))[0]
    start = len(user[0]) + 1 + 4  # bos, the user turn, the assistant header
    n_think = len(raw(think))
    assert mask[start : start + n_think] == [True] * n_think  # the trace is not trained
    assert mask[start - 4 : start] == [False] * 4  # the header and the answer are
    assert mask[start + n_think : -1] == [False] * (len(tokens) - 1 - start - n_think)

    dropped = OpenAIToMessages(reasoning="drop")(row)
    assert tok.tokenize_messages(dropped["messages"]) == layout(
        user, turn(raw, "assistant", "51.", False)
    )
    assert dropped["dropped"] == {"reasoning": 1, "call_text": 0}


def test_reasoning_beside_a_tool_call(tok, raw):
    row = openai_tool_row(1)
    row["messages"][1]["reasoning_content"] = "I need the weather tool."
    sample = OpenAIToMessages()(row)
    tokens, mask = tok.tokenize_messages(sample["messages"], tools=sample["tools"])
    think = "<think>\nI need the weather tool.\n</think>\n\n"
    call, call_mask = turn(raw, "assistant", think + expected_call(1), False)
    begin = tokens.index(EOT) + 1  # right after the user turn
    assert tokens[begin : begin + len(call)] == call
    assert mask[begin : begin + len(call)] == call_mask
