"""Prompt templates and their resolution from objects, dotted paths and YAML mappings."""

from __future__ import annotations

import pickle

import pytest

from raytune_chat.data import (
    ChatMLTemplate,
    GrammarErrorCorrectionTemplate,
    Message,
    PromptTemplate,
    QuestionAnswerTemplate,
    SummarizeTemplate,
    resolve_prompt_template,
)
from raytune_chat.models.llama2 import Llama2ChatTemplate
from raytune_chat.models.mistral import MistralChatTemplate


def parts(message):
    return [p["content"] for p in message.content]


CONV = [
    Message("system", "sys", masked=True),
    Message("user", "hi", masked=True),
    Message("assistant", "yo"),
]


@pytest.mark.parametrize(
    ("template", "expected_user"),
    [
        (SummarizeTemplate(), ["Summarize this dialogue:\n", "hi", "\n---\nSummary:\n"]),
        (GrammarErrorCorrectionTemplate(),
         ["Correct this to standard English: ", "hi", "\n---\nCorrected: "]),
        (QuestionAnswerTemplate(), ["Question: ", "hi", "\n\nAnswer: "]),
        (ChatMLTemplate(), ["<|im_start|>user\n", "hi", "<|im_end|>\n"]),
    ],
)  # fmt: skip
def test_builtin_templates(template, expected_user):
    out = template(CONV)
    assert parts(out[1]) == expected_user
    assert [m.masked for m in out] == [True, True, False]
    assert CONV[1].text_content == "hi"  # inputs are not modified


def test_chatml_wraps_every_role_and_leaves_empty_last_assistant_open():
    out = ChatMLTemplate()(CONV)
    assert parts(out[0]) == ["<|im_start|>system\n", "sys", "<|im_end|>\n"]
    assert parts(out[2]) == ["<|im_start|>assistant\n", "yo", "<|im_end|>\n"]
    prompt = ChatMLTemplate()([Message("user", "hi"), Message("assistant", "")])
    assert prompt[-1].text_content == "<|im_start|>assistant\n"


def test_custom_template_leaves_other_roles_alone():
    out = PromptTemplate({"user": ("U: ", "\n"), "assistant": ("A: ", "")})(CONV)
    assert [parts(m) for m in out] == [["sys"], ["U: ", "hi", "\n"], ["A: ", "yo"]]


def test_llama2_and_mistral_templates():
    out = Llama2ChatTemplate()(CONV)
    assert parts(out[0]) == ["[INST] ", "<<SYS>>\n", "sys", "\n<</SYS>>\n\n", "hi", " [/INST] "]
    out = MistralChatTemplate()(CONV[1:])
    assert parts(out[0]) == ["[INST] ", "hi", " [/INST] "] and parts(out[1]) == ["yo"]


@pytest.mark.parametrize(
    ("spec", "cls"),
    [
        ("raytune_chat.data.SummarizeTemplate", SummarizeTemplate),
        ("torchtune.data.ChatMLTemplate", ChatMLTemplate),
        ("torchtune.models.llama2.Llama2ChatTemplate", Llama2ChatTemplate),
        ("raytune_chat.models.mistral.MistralChatTemplate", MistralChatTemplate),
        (QuestionAnswerTemplate, QuestionAnswerTemplate),
        (GrammarErrorCorrectionTemplate(), GrammarErrorCorrectionTemplate),
    ],
)
def test_resolution(spec, cls):
    assert isinstance(resolve_prompt_template(spec), cls)


def test_resolution_from_yaml_mapping_and_errors():
    template = resolve_prompt_template({"user": ["Q: ", "\nA: "], "system": ["", ""]})
    assert isinstance(template, PromptTemplate)
    assert parts(template(CONV)[1]) == ["Q: ", "hi", "\nA: "]
    assert resolve_prompt_template(None) is None
    with pytest.raises(ValueError, match="cannot import prompt template"):
        resolve_prompt_template("raytune_chat.data.NoSuchTemplate")
    with pytest.raises(ValueError, match="must be \\[before, after\\]"):
        resolve_prompt_template({"user": ["only one"]})
    with pytest.raises(ValueError, match="prompt_template must be"):
        resolve_prompt_template(42)


def test_templates_pickle():
    for template in (SummarizeTemplate(), ChatMLTemplate(), PromptTemplate({"user": ("a", "b")})):
        assert pickle.loads(pickle.dumps(template)) == template
