"""ShareGPT / OpenAI rows → messages: roles, masks, system prompts, rejections."""

from __future__ import annotations

import numpy as np
import pytest

from raytune_chat.data import OpenAIToMessages, RowRejected, ShareGPTToMessages

SHAREGPT = {
    "conversations": [
        {"from": "system", "value": "sys"},
        {"from": "human", "value": "q1"},
        {"from": "gpt", "value": "a1"},
        {"from": "human", "value": "q2"},
        {"from": "gpt", "value": "a2"},
    ]
}
ROLE = {"system": "system", "human": "user", "gpt": "assistant"}
OPENAI = {
    "messages": [
        {"role": ROLE[m["from"]], "content": m["value"]} for m in SHAREGPT["conversations"]
    ]
}


def summary(messages):
    return [(m.role, m.text_content, m.masked) for m in messages]


@pytest.mark.parametrize(
    "transform, row",
    [(ShareGPTToMessages, SHAREGPT), (OpenAIToMessages, OPENAI)],
)
def test_default_masks_system_and_user(transform, row):
    assert summary(transform()(row)["messages"]) == [
        ("system", "sys", True),
        ("user", "q1", True),
        ("assistant", "a1", False),
        ("user", "q2", True),
        ("assistant", "a2", False),
    ]


@pytest.mark.parametrize(
    "transform, row",
    [(ShareGPTToMessages, SHAREGPT), (OpenAIToMessages, OPENAI)],
)
def test_train_on_input_and_strategies(transform, row):
    masks = lambda **kw: [m.masked for m in transform(**kw)(row)["messages"]]  # noqa: E731
    assert masks(train_on_input=True) == [False] * 5
    assert masks(masking_strategy="train_on_all") == [False] * 5
    assert masks(masking_strategy="train_on_assistant") == [True, True, False, True, False]
    assert masks(masking_strategy="train_on_last") == [True, True, True, True, False]
    # an explicit strategy wins over train_on_input
    assert masks(train_on_input=True, masking_strategy="train_on_last") == [True] * 4 + [False]
    with pytest.raises(ValueError):
        transform(masking_strategy="train_on_everything")


@pytest.mark.parametrize(
    "transform, row",
    [(ShareGPTToMessages, SHAREGPT), (OpenAIToMessages, OPENAI)],
)
def test_new_system_prompt_replaces_the_data_one(transform, row):
    messages = transform(new_system_prompt="NEW", train_on_input=True)(row)["messages"]
    assert summary(messages)[:2] == [("system", "NEW", True), ("user", "q1", False)]
    assert [m.role for m in messages].count("system") == 1 and len(messages) == 5


def test_column_map():
    row = {"dialogue": SHAREGPT["conversations"]}
    assert len(ShareGPTToMessages(column_map={"conversations": "dialogue"})(row)["messages"]) == 5
    row = {"chat": OPENAI["messages"]}
    assert len(OpenAIToMessages(column_map={"messages": "chat"})(row)["messages"]) == 5
    with pytest.raises(ValueError, match="'conversations'"):
        ShareGPTToMessages(column_map={"dialogue": "x"})


def test_openai_text_parts_are_joined():
    row = {
        "messages": [
            {
                "role": "user",
                "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}],
            },
            {"role": "assistant", "content": "c"},
            {"role": "tool", "content": "d"},
        ]
    }
    assert summary(OpenAIToMessages()(row)["messages"]) == [
        ("user", "ab", True), ("assistant", "c", False), ("tool", "d", True),
    ]  # fmt: skip


def test_numpy_arrays_from_arrow_are_accepted():
    row = {"conversations": np.array(SHAREGPT["conversations"], dtype=object)}
    assert len(ShareGPTToMessages()(row)["messages"]) == 5


@pytest.mark.parametrize(
    ("transform", "row", "reason", "text"),
    [
        (ShareGPTToMessages(), {"x": []}, "missing_column", "no column 'conversations'"),
        (ShareGPTToMessages(), {"conversations": "hi"}, "not_a_list", "got str"),
        (OpenAIToMessages(), {"messages": {"role": "user"}}, "not_a_list", "got dict"),
        (ShareGPTToMessages(), {"conversations": ["hi"]}, "bad_message", "message 0"),
        (ShareGPTToMessages(), {"conversations": [{"from": "human"}]}, "bad_message", "'value'"),
        (OpenAIToMessages(), {"messages": [{"role": "user"}]}, "bad_message", "'content'"),
        (
            ShareGPTToMessages(),
            {"conversations": [{"from": "human", "value": "a"}, {"from": "bot", "value": "b"}]},
            "unknown_role",
            "message 1: unknown ShareGPT role 'bot'",
        ),
        (
            OpenAIToMessages(),
            {"messages": [{"role": "user", "content": "a"}, {"role": "model", "content": "b"}]},
            "unknown_role",
            "message 1: unknown role 'model'",
        ),
        (
            OpenAIToMessages(),
            {
                "messages": [
                    {"role": "user", "content": "a"},
                    {"role": "assistant", "content": None},
                ]
            },
            "null_content",
            "message 1: 'content' is null",
        ),
        (
            ShareGPTToMessages(),
            {"conversations": [{"from": "human", "value": None}]},
            "null_content",
            "message 0",
        ),
        (
            OpenAIToMessages(),
            {"messages": [{"role": "user", "content": 42}]},
            "non_string_content",
            "message 0: 'content' must be text, got int",
        ),
        (
            OpenAIToMessages(),
            {"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {}}]}]},
            "non_string_content",
            "content part 0 is not a text part",
        ),
        (
            OpenAIToMessages(),
            {"messages": [{"role": "user", "content": [{"type": "text", "text": None}]}]},
            "null_content",
            "message 0",
        ),
    ],
)
def test_rejections_have_reasons(transform, row, reason, text):
    with pytest.raises(RowRejected, match=text) as info:
        transform(row)
    assert info.value.reason == reason


def test_null_content_is_never_filled_from_another_message():
    row = {
        "messages": [
            {"role": "user", "content": "first"},
            {"role": "assistant", "content": "answer"},
            {"role": "user", "content": None},
        ]
    }
    with pytest.raises(RowRejected) as info:
        OpenAIToMessages()(row)
    assert (info.value.reason, info.value.index) == ("null_content", 2)
