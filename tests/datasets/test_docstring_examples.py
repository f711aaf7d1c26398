"""The docstring examples of the Ray-free dataset modules run and give what they show."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = [
    "raytune_chat.datasets._files",
    "raytune_chat.datasets._ledger",
    "raytune_chat.datasets._pack",
    "raytune_chat.datasets._quarantine",
    "raytune_chat.datasets._readers",
    "raytune_chat.datasets._token_store",
]


@pytest.mark.parametrize("name", MODULES)
def test_examples(name):
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.failed == 0
    assert result.attempted > 0
