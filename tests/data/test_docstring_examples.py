"""The docstring examples of the data and tokenizer modules run and give what they show."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = [
    "raytune_chat.data._common",
    "raytune_chat.data._messages",
    "raytune_chat.data._message_transforms",
    "raytune_chat.data._prompt_templates",
    "raytune_chat.data._sample",
    "raytune_chat.datasets._batches",
    "raytune_chat.datasets._tokenize",
    "raytune_chat.modules.tokenizers._hf_special_tokens",
    "raytune_chat.modules.tokenizers._hf_tokenizer",
    "raytune_chat.modules.tokenizers._sentencepiece",
    "raytune_chat.modules.tokenizers._tiktoken",
    "raytune_chat.modules.tokenizers._truncation",
    "raytune_chat.models.llama3._tokenizer",
    "raytune_chat.models.llama2._prompt_template",
    "raytune_chat.models.llama2._tokenizer",
    "raytune_chat.models.mistral._prompt_template",
    "raytune_chat.models.mistral._tokenizer",
]


@pytest.mark.parametrize("name", MODULES)
def test_examples(name):
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.failed == 0
    assert result.attempted > 0
