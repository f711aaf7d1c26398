"""Every docstring example of the config, job-submission, training-step and recipe modules runs."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = [
    "raytune_chat._jobs",
    "raytune_chat.config",
    "raytune_chat.config._assets",
    "raytune_chat.config._builtin",
    "raytune_chat.config._errors",
    "raytune_chat.config._instantiate",
    "raytune_chat.config._load",
    "raytune_chat.config._registry",
    "raytune_chat.training._activations",
    "raytune_chat.training._distributed",
    "raytune_chat.training._loop",
    "raytune_chat.training._precision",
    "raytune_chat.training._train_state",
    "raytune_chat.training._train_step",
    "raytune_chat.training.lr_schedulers",
    "raytune_chat.training.metric_logging",
    "raytune_chat.training.profiler",
    "raytune_chat.training.recipe_config",
    "raytune_chat.training.step_plan",
    "raytune_chat.recipes",
    "raytune_chat.recipes._preview",
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name):
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.failed == 0
