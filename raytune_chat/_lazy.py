"""Re-exports that import their module on first use, so light processes stay light.

A Ray tokenizer actor unpickles a tokenizer, which imports `raytune_chat.models.llama3` and
`raytune_chat.data`; without this, both would import torch (seconds per actor) for model
builders and collate code the actor never calls.

Example:
    >>> __getattr__ = lazy_exports(__name__, {"sqrt": "math"})
    >>> __getattr__("sqrt")(4.0)
    2.0
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["lazy_exports"]


def lazy_exports(package: str, table: Mapping[str, str]) -> Callable[[str], Any]:
    """Build a module `__getattr__` that imports `table[name]` and returns its `name`.

    Args:
        package: the re-exporting module's `__name__`, for error messages.
        table: exported name → module that defines it.
    """

    def __getattr__(name: str) -> Any:
        if name not in table:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(table[name]), name)

    return __getattr__
