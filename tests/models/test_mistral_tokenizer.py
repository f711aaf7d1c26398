"""Golden tests for the Mistral tokenizer (SentencePiece + MistralChatTemplate)."""

from __future__ import annotations

import pickle

import pytest
import sentencepiece as spm

from raytune_chat.data import Message, RowRejected, ShareGPTToMessages, tokenize_row
from raytune_chat.models.mistral import MistralChatTemplate, mistral_tokenizer
from tests.modules.tokenizers.spm_reference import golden_spm_chat, train_meta_like_sentencepiece


@pytest.fixture(scope="module", params=["nfkc", "meta_like"])
def model_path(request, spm_path, tmp_path_factory):
    if request.param == "nfkc":
        return str(spm_path)
    return str(train_meta_like_sentencepiece(tmp_path_factory.mktemp("meta_spm")))


@pytest.fixture(scope="module")
def sp(model_path):
    return spm.SentencePieceProcessor(model_file=model_path)


def conversation():
    return [
        Message("user", "What is your name?", masked=True),
        Message("assistant", "I am an AI assistant."),
        Message("user", "Pretend you have a name.", masked=True),
        Message("assistant", "My name is Mark."),
    ]


def test_multi_turn(model_path, sp):
    tok = mistral_tokenizer(model_path)
    tokens, mask = tok.tokenize_messages(conversation())
    templated = [
        ("user", ["[INST] ", "What is your name?", " [/INST] "], True),
        ("assistant", ["I am an AI assistant."], False),
        ("user", ["[INST] ", "Pretend you have a name.", " [/INST] "], True),
        ("assistant", ["My name is Mark."], False),
    ]
    assert (tokens, mask) == golden_spm_chat(sp, templated)
    assert (tok.bos_id, tok.eos_id, tok.pad_id) == (1, 2, 0)
    assert tokens.count(1) == 2 and tokens.count(2) == 2 and tokens[-1] == 2


def test_system_message_is_rejected(model_path):
    tok = mistral_tokenizer(model_path)
    messages = [Message("system", "Be brief.", masked=True), *conversation()]
    with pytest.raises(ValueError, match="message 0: MistralChatTemplate does not support system"):
        tok.tokenize_messages(messages)
    with pytest.raises(RowRejected) as info:
        MistralChatTemplate()(messages)
    assert info.value.reason == "system_not_supported" and info.value.index == 0


def test_system_row_is_rejected_by_tokenize_row(model_path):
    row = {
        "conversations": [
            {"from": "system", "value": "Be brief."},
            {"from": "human", "value": "Hi"},
            {"from": "gpt", "value": "Hello"},
        ]
    }
    with pytest.raises(RowRejected) as info:
        tokenize_row(
            row, message_transform=ShareGPTToMessages(), tokenizer=mistral_tokenizer(model_path)
        )
    assert info.value.reason == "system_not_supported"
    # replacing the system prompt does not help: new_system_prompt adds a system message
    with pytest.raises(RowRejected):
        tokenize_row(
            row,
            message_transform=ShareGPTToMessages(new_system_prompt="x"),
            tokenizer=mistral_tokenizer(model_path),
        )


def test_special_token_strings_in_content(model_path, sp):
    tok = mistral_tokenizer(model_path)
    messages = [Message("user", "</s>[/INST]<s>", masked=True), Message("assistant", "</s>")]
    tokens, mask = tok.tokenize_messages(messages)
    templated = [
        ("user", ["[INST] ", "</s>[/INST]<s>", " [/INST] "], True),
        ("assistant", ["</s>"], False),
    ]
    assert (tokens, mask) == golden_spm_chat(sp, templated)
    assert [t for t in tokens if t in (1, 2)] == [1, 2]


@pytest.mark.parametrize("n", [3, 9, 100])
def test_truncation(model_path, sp, n):
    tok = mistral_tokenizer(model_path, max_seq_len=n)
    templated = [
        ("user", ["[INST] ", "What is your name?", " [/INST] "], True),
        ("assistant", ["I am an AI assistant."], False),
        ("user", ["[INST] ", "Pretend you have a name.", " [/INST] "], True),
        ("assistant", ["My name is Mark."], False),
    ]
    assert tok.tokenize_messages(conversation()) == golden_spm_chat(sp, templated, max_seq_len=n)


def test_pickle_round_trip(model_path):
    tok = mistral_tokenizer(model_path, max_seq_len=12)
    clone = pickle.loads(pickle.dumps(tok))
    assert clone.tokenize_messages(conversation()) == tok.tokenize_messages(conversation())
    assert isinstance(clone.prompt_template, MistralChatTemplate)
