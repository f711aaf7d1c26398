"""Raw row → training sample (the function the Ray map stage calls)."""

from __future__ import annotations

import pickle

import pytest

from raytune_chat.data import (
    CROSS_ENTROPY_IGNORE_IDX,
    OpenAIToMessages,
    RowRejected,
    ShareGPTToMessages,
    shifted_labels,
    tokenize_row,
)
from raytune_chat.models.llama2 import llama2_tokenizer
from raytune_chat.models.llama3 import llama3_tokenizer

ROW = {
    "dialogue": [
        {"from": "human", "value": "What is your name?"},
        {"from": "gpt", "value": "I am an AI assistant, I don't have a name."},
        {"from": "human", "value": "Pretend you have a name."},
        {"from": "gpt", "value": "My name is Mark Zuckerberg."},
    ]
}
SHAREGPT = ShareGPTToMessages(column_map={"conversations": "dialogue"})


@pytest.fixture(scope="module")
def llama3(bpe_path):
    return llama3_tokenizer(str(bpe_path))


def test_ignore_index():
    assert CROSS_ENTROPY_IGNORE_IDX == -100


def test_shifted_labels_literal():
    assert shifted_labels([1, 5, 6, 7, 2], [True, True, False, False, True]) == [
        -100, 6, 7, -100, -100,
    ]  # fmt: skip
    assert shifted_labels([], []) == []


def test_sample_labels_follow_the_mask(llama3):
    sample = tokenize_row(ROW, message_transform=SHAREGPT, tokenizer=llama3)
    tokens, mask = llama3.tokenize_messages(SHAREGPT(ROW)["messages"])
    assert sample["tokens"] == tokens and sample["num_tokens"] == len(tokens)
    labels = sample["labels"]
    assert len(labels) == len(tokens) and labels[-1] == -100
    for i in range(len(tokens) - 1):
        assert labels[i] == (-100 if mask[i + 1] else tokens[i + 1])
    assert sample["num_trained_tokens"] == mask.count(False) == sum(x != -100 for x in labels)
    first_trained = mask.index(False)
    assert labels[first_trained - 1] == 128006  # the user's eot position predicts the header
    assert sample["truncated"] is False


def test_truncated_flag(bpe_path):
    full = tokenize_row(ROW, message_transform=SHAREGPT, tokenizer=llama3_tokenizer(str(bpe_path)))
    n = full["num_tokens"]
    for max_seq_len, truncated in [(n + 1, False), (n, False), (n - 1, True), (20, True)]:
        tok = llama3_tokenizer(str(bpe_path), max_seq_len=max_seq_len)
        sample = tokenize_row(ROW, message_transform=SHAREGPT, tokenizer=tok)
        assert sample["truncated"] is truncated
        assert sample["num_tokens"] == min(n, max_seq_len)
        assert sample["tokens"][-1] == 128001
    # 7 tokens hold only the masked user turn: nothing left to train on (spec §5).
    tok = llama3_tokenizer(str(bpe_path), max_seq_len=7)
    with pytest.raises(RowRejected) as info:
        tokenize_row(ROW, message_transform=SHAREGPT, tokenizer=tok)
    assert info.value.reason == "no_trained_tokens"


def test_sentencepiece_tokenizer(spm_path):
    tok = llama2_tokenizer(str(spm_path))
    sample = tokenize_row(ROW, message_transform=SHAREGPT, tokenizer=tok)
    tokens, mask = tok.tokenize_messages(SHAREGPT(ROW)["messages"])
    assert sample["labels"] == shifted_labels(tokens, mask)
    assert sample["labels"][sample["tokens"].index(2, 1) - 1] == 2  # eos is a trained target


def test_foreign_tokenizer_without_info_method(bpe_path):
    class OnlyTokenizeMessages:  # a torchtune-style tokenizer: just tokenize_messages
        def __init__(self, inner):
            self.inner, self.max_seq_len = inner, inner.max_seq_len

        def tokenize_messages(self, messages, add_end_tokens=True):
            return self.inner.tokenize_messages(messages, add_end_tokens=add_end_tokens)

    tok = OnlyTokenizeMessages(llama3_tokenizer(str(bpe_path), max_seq_len=20))
    sample = tokenize_row(ROW, message_transform=SHAREGPT, tokenizer=tok)
    assert sample["num_tokens"] == 20 and sample["truncated"] is True


@pytest.mark.parametrize(
    ("row", "reason"),
    [
        ({"dialogue": [{"from": "human", "value": "only one"}]}, "too_few_messages"),
        (
            {"dialogue": [{"from": "human", "value": "a"}, {"from": "human", "value": "b"}]},
            "bad_turn_order",
        ),
        (
            {"dialogue": [{"from": "gpt", "value": "a"}, {"from": "human", "value": "b"}]},
            "bad_turn_order",
        ),
        (
            {
                "dialogue": [
                    {"from": "human", "value": "a"},
                    {"from": "system", "value": "s"},
                    {"from": "gpt", "value": "b"},
                ]
            },
            "system_not_first",
        ),
        ({"dialogue": [{"from": "alien", "value": "a"}]}, "unknown_role"),
        ({"chat": []}, "missing_column"),
    ],
)
def test_rejected_rows(llama3, row, reason):
    with pytest.raises(RowRejected) as info:
        tokenize_row(row, message_transform=SHAREGPT, tokenizer=llama3)
    assert info.value.reason == reason
    assert isinstance(info.value, ValueError)


def test_openai_null_content_rejected(llama3):
    row = {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": None}]}
    with pytest.raises(RowRejected, match="message 1") as info:
        tokenize_row(row, message_transform=OpenAIToMessages(), tokenizer=llama3)
    assert info.value.reason == "null_content"


def test_transform_and_tokenizer_ship_to_workers(llama3):
    transform, tok = pickle.loads(pickle.dumps((SHAREGPT, llama3)))
    assert tokenize_row(ROW, message_transform=transform, tokenizer=tok) == tokenize_row(
        ROW, message_transform=SHAREGPT, tokenizer=llama3
    )
