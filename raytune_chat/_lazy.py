"""Re-exports that import their module on first use, so light processes stay light.

A package lists its torch-side names once, as ordinary imports under ``if TYPE_CHECKING:``, so
IDEs and type checkers see them; :func:`lazy_exports` reads that block from the package's own
source and imports each name the first time it is asked for.

Why: every Ray Data read task, tokenizer actor and the pass-ledger actor imports
`raytune_chat.datasets`, `raytune_chat.data` and `raytune_chat.models.llama3` (to unpickle a
tokenizer); importing the model builders and collate code there as well costs each of those
processes about 1.3 CPU s and 130 MB for torch (benchmarks/RESULTS.md, "Importing the
package"), and made the first step of the tiny config about 6 s later on 2 cores.

Example:
    >>> import pathlib, tempfile
    >>> init = pathlib.Path(tempfile.mkdtemp()) / "__init__.py"
    >>> _ = init.write_text("from typing import TYPE_CHECKING\\n"
    ...                     "if TYPE_CHECKING:\\n    from math import sqrt\\n")
    >>> __getattr__ = lazy_exports("demo", str(init))
    >>> __getattr__("sqrt")(4.0)
    2.0
"""

from __future__ import annotations

import ast
import importlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["lazy_exports", "type_checking_imports"]


def type_checking_imports(source: str) -> dict[str, str]:
    """Map each name imported under a top-level ``if TYPE_CHECKING:`` of `source` to its module.

    Example:
        >>> type_checking_imports("if TYPE_CHECKING:\\n    from math import sqrt, pi as PI\\n")
        {'sqrt': 'math', 'PI': 'math'}
    """
    table: dict[str, str] = {}
    for node in ast.parse(source).body:
        if isinstance(node, ast.If) and getattr(node.test, "id", None) == "TYPE_CHECKING":
            for stmt in node.body:
                if isinstance(stmt, ast.ImportFrom) and stmt.module:
                    for alias in stmt.names:
                        table[alias.asname or alias.name] = stmt.module
    return table


def lazy_exports(package: str, init_file: str) -> Callable[[str], Any]:
    """Build the module ``__getattr__`` of `package` from its ``if TYPE_CHECKING:`` imports.

    Args:
        package: the re-exporting module's ``__name__``, for error messages.
        init_file: that module's ``__file__`` (its source is read once, here).
    """
    table = type_checking_imports(Path(init_file).read_text(encoding="utf-8"))

    def __getattr__(name: str) -> Any:
        if name not in table:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(table[name]), name)

    return __getattr__
