"""Message and conversation validation."""

from __future__ import annotations

import pickle

import pytest

from raytune_chat.data import Message, RowRejected, validate_messages


def test_message_fields_and_from_dict():
    m = Message.from_dict({"role": "assistant", "content": "Hi", "eot": False})
    assert (m.role, m.text_content, m.masked, m.ipython, m.eot) == (
        "assistant", "Hi", False, False, False,
    )  # fmt: skip
    assert m.content == [{"type": "text", "content": "Hi"}]


def test_text_content_joins_parts():
    parts = [{"type": "text", "content": "a "}, {"type": "text", "content": "b"}]
    assert Message("user", parts).text_content == "a b"


def test_bad_messages():
    with pytest.raises(ValueError, match="only assistant messages can be tool calls"):
        Message("user", "x", ipython=True)
    with pytest.raises(ValueError, match="text parts"):
        Message("user", [{"type": "image", "content": b""}])
    with pytest.raises(ValueError, match="string or a list"):
        Message("user", None)


def test_equality_replace_and_pickle():
    m = Message("user", "Hi", masked=True)
    assert m == Message("user", "Hi", masked=True) and m != Message("user", "Hi")
    assert m.replace(content="Yo").text_content == "Yo" and m.text_content == "Hi"
    assert pickle.loads(pickle.dumps(m)) == m


def test_valid_conversations_pass():
    validate_messages([Message("system", "s"), Message("user", "u"), Message("assistant", "a")])
    validate_messages(
        [
            Message("user", "u"),
            Message("assistant", "call", ipython=True, eot=False),
            Message("ipython", "42"),
            Message("assistant", "a"),
            Message("user", "u2"),
        ]
    )


@pytest.mark.parametrize(
    ("roles", "reason", "text"),
    [
        (["user"], "too_few_messages", "at least 2 messages, got 1"),
        ([], "too_few_messages", "got 0"),
        (["user", "user"], "bad_turn_order", "message 1: two user messages in a row"),
        (["assistant", "user"], "bad_turn_order", "message 0: an assistant message must follow"),
        (["system", "assistant"], "bad_turn_order", "message 1: an assistant message must follow"),
        (["user", "assistant", "assistant"], "bad_turn_order", "message 2: an assistant"),
        (["user", "system", "assistant"], "system_not_first", "message 1: a system message"),
        (["user", "robot"], "unknown_role", "message 1: unknown role 'robot'"),
    ],
)
def test_invalid_conversations_name_index_and_rule(roles, reason, text):
    messages = [Message(role, "x") for role in roles]
    with pytest.raises(ValueError, match=text) as info:
        validate_messages(messages)
    assert isinstance(info.value, RowRejected) and info.value.reason == reason


def test_row_rejected_pickles_with_reason_and_index():
    err = pickle.loads(pickle.dumps(RowRejected("null_content", "message 3: null", index=3)))
    assert (err.reason, err.index, str(err)) == ("null_content", 3, "message 3: null")
