"""Rows with tools, tool calls, tool results and reasoning → messages (spec §5)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from raytune_chat.data import Message, OpenAIToMessages, RowRejected, ShareGPTToMessages
from tests.assets.tool_chats import TOOLS, openai_tool_row, sharegpt_tool_row


def roles_and_texts(messages):
    return [(m.role, m.text_content, m.masked) for m in messages]


def test_openai_tool_row():
    sample = OpenAIToMessages()(openai_tool_row(1))
    assert roles_and_texts(sample["messages"]) == [
        ("user", "What is the weather in Zürich right now, in °F? (#1)", True),
        ("assistant", '{"name": "get_weather", "parameters": {"city": "Zürich", "unit": "F"}}',
         False),
        ("tool", '{"city": "Z\\u00fcrich", "temperature": 10, "unit": "F"}', True),
        ("assistant", "It is 10°F in Zürich right now.", False),
    ]  # fmt: skip
    assert sample["tools"] == TOOLS and "dropped" not in sample


def test_tools_as_list_or_json_string_and_sharegpt_give_the_same_messages():
    a = OpenAIToMessages()(openai_tool_row(1))  # tools as a list
    b = OpenAIToMessages()(openai_tool_row(3))  # tools as a JSON string
    assert a["tools"] == b["tools"] == TOOLS
    for i in range(6):
        openai = OpenAIToMessages()(openai_tool_row(i))
        sharegpt = ShareGPTToMessages()(sharegpt_tool_row(i))
        assert sharegpt == openai


def test_arrow_numpy_arrays_and_dict_arguments_and_results():
    row = openai_tool_row(1)
    call = row["messages"][1]["tool_calls"][0]
    call["function"]["arguments"] = {"city": "Zürich", "unit": "F"}  # already parsed
    row["messages"][1]["tool_calls"] = np.array([call], dtype=object)
    row["messages"][2]["content"] = {"temperature": 10}
    row["messages"] = np.array(row["messages"], dtype=object)
    row["tools"] = np.array(TOOLS, dtype=object)
    messages = OpenAIToMessages()(row)["messages"]
    assert messages[1].text_content == (
        '{"name": "get_weather", "parameters": {"city": "Zürich", "unit": "F"}}'
    )
    assert messages[2].text_content == '{"temperature": 10}'


def test_text_beside_a_call_is_counted_not_rendered():
    row = openai_tool_row(1)
    row["messages"][1]["content"] = "Let me check."
    sample = OpenAIToMessages()(row)
    assert sample["messages"][1].text_content.startswith('{"name": "get_weather"')
    assert "Let me check." not in [m.text_content for m in sample["messages"]]
    assert sample["dropped"] == {"reasoning": 0, "call_text": 1}


def test_call_without_content_key_and_empty_tools():
    row = openai_tool_row(1)
    del row["messages"][1]["content"]
    row["tools"] = ""
    sample = OpenAIToMessages()(row)
    assert "tools" not in sample and sample["messages"][1].role == "assistant"


def _call_row(calls):
    return {
        "messages": [
            {"role": "user", "content": "q"},
            {"role": "assistant", "content": None, "tool_calls": calls},
            {"role": "tool", "content": "r"},
            {"role": "assistant", "content": "a"},
        ]
    }


CALL = {"type": "function", "function": {"name": "f", "arguments": "{}"}}


@pytest.mark.parametrize(
    ("transform", "row", "reason", "text"),
    [
        (OpenAIToMessages(), _call_row([CALL, CALL]), "multiple_tool_calls", "message 1: 2 tool"),
        (
            OpenAIToMessages(),
            _call_row([{"function": {"name": "f", "arguments": "{oops"}}]),
            "bad_tool_call",
            "arguments of tool call 'f' are not valid JSON",
        ),
        (
            OpenAIToMessages(),
            _call_row([{"function": {"name": "f", "arguments": "[1]"}}]),
            "bad_tool_call",
            "must be a JSON object",
        ),
        (OpenAIToMessages(), _call_row([{"function": {}}]), "bad_tool_call", "function name"),
        (
            OpenAIToMessages(),
            {**_call_row([CALL]), "tools": "{not json"},
            "bad_tools",
            "'tools' is not valid JSON",
        ),
        (
            OpenAIToMessages(),
            {**_call_row([CALL]), "tools": {"name": "f"}},
            "bad_tools",
            "list of tool schemas",
        ),
        (
            OpenAIToMessages(),
            {
                "messages": [
                    {"role": "tool", "content": "r"},
                    {"role": "assistant", "content": "a"},
                ],
                "tools": TOOLS,
            },
            "tools_without_user_message",
            "no user message",
        ),
        (
            ShareGPTToMessages(),
            {
                "conversations": [
                    {"from": "human", "value": "q"},
                    {"from": "function_call", "value": json.dumps([CALL, CALL])},
                ]
            },
            "multiple_tool_calls",
            "2 tool calls",
        ),
        (
            ShareGPTToMessages(),
            {"conversations": [{"from": "human", "value": "q"}, {"from": "function_call",
                                                                   "value": "{x"}]},
            "bad_tool_call",
            "function_call is not valid JSON",
        ),
        (
            OpenAIToMessages(),
            {
                "messages": [
                    {"role": "user", "content": "q"},
                    {"role": "assistant", "content": "a", "reasoning_content": 5},
                ]
            },
            "non_string_content",
            "'reasoning_content' must be text",
        ),
    ],
)  # fmt: skip
def test_rejected_tool_rows(transform, row, reason, text):
    with pytest.raises(RowRejected, match=text) as info:
        transform(row)
    assert info.value.reason == reason


def test_reasoning_options_and_counts():
    row = {
        "messages": [
            {"role": "user", "content": "q", "reasoning_content": "not an assistant: ignored"},
            {"role": "assistant", "content": "a", "reasoning_content": "because"},
            {"role": "user", "content": "q2"},
            {"role": "assistant", "content": "a2", "reasoning": "  "},  # blank: no trace
        ]
    }
    keep = OpenAIToMessages()(row)["messages"]
    assert [(m.reasoning, m.reasoning_masked) for m in keep] == [
        (None, False), ("because", False), (None, False), (None, False),
    ]  # fmt: skip
    mask = OpenAIToMessages(reasoning="mask")(row)["messages"]
    assert mask[1] == Message("assistant", "a", reasoning="because", reasoning_masked=True)
    dropped = OpenAIToMessages(reasoning="drop")(row)
    assert all(m.reasoning is None for m in dropped["messages"])
    assert dropped["dropped"] == {"reasoning": 1, "call_text": 0}
    with pytest.raises(ValueError, match="reasoning must be one of"):
        OpenAIToMessages(reasoning="hide")


def test_tools_column_option():
    row = openai_tool_row(1)
    row["functions"] = row.pop("tools")
    assert "tools" not in OpenAIToMessages()(row)
    assert OpenAIToMessages(tools_column="functions")(row)["tools"] == TOOLS
