"""Every docstring example in the model, LoRA, loss and checkpoint modules runs."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = [
    "raytune_chat.modules.rms_norm",
    "raytune_chat.modules.feed_forward",
    "raytune_chat.modules.position_embeddings",
    "raytune_chat.modules.attention_utils",
    "raytune_chat.modules.attention",
    "raytune_chat.modules.transformer",
    "raytune_chat.modules.peft._lora",
    "raytune_chat.modules.peft._dora",
    "raytune_chat.modules.low_precision._nf4",
    "raytune_chat.modules.peft._adapters",
    "raytune_chat.modules.loss._chunked_cross_entropy",
    "raytune_chat.models._builder",
    "raytune_chat.models.llama2._component_builders",
    "raytune_chat.models.llama2._model_builders",
    "raytune_chat.models.code_llama2._model_builders",
    "raytune_chat.models.llama3._component_builders",
    "raytune_chat.models.llama3._model_builders",
    "raytune_chat.models.llama3_1._model_builders",
    "raytune_chat.models.llama3_2._model_builders",
    "raytune_chat.models.llama3_3._model_builders",
    "raytune_chat.models.mistral._component_builders",
    "raytune_chat.models.mistral._model_builders",
    "raytune_chat.models.convert_weights",
    "raytune_chat.training.checkpointing._files",
    "raytune_chat.training.checkpointing._constants",
    "raytune_chat.training.checkpointing._checkpointer",
]


@pytest.mark.parametrize("name", MODULES)
def test_examples_run(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS, verbose=False)
    assert result.failed == 0, f"{result.failed} docstring example(s) failed in {name}"
    if name != "raytune_chat.training.checkpointing._checkpointer":
        assert result.attempted > 0, f"{name} has no docstring example"
