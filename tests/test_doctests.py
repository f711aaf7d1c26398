"""Every module of the package imports, and every docstring example in it runs.

The modules are found by walking the package folder, not listed by hand, so a new module's
examples run without anyone remembering to add it. Every module must import without the
optional extras (they are imported where they are used). An example that needs an extra
(`pip install 'raytune_chat[qlora]'`, ...) is skipped with that reason when the extra is
absent; any other failure fails the test. Examples that use Ray (`ray.`, `chat_dataset(`) run
on the session's local Ray cluster, as a user's would on the one Ray starts for them.
"""

from __future__ import annotations

import doctest
import importlib
import importlib.metadata
import re
import sys
from pathlib import Path

import pytest

import raytune_chat

PACKAGE_DIR = Path(raytune_chat.__file__).parent
_USES_RAY = re.compile(r"\bray\.|chat_dataset\(")

# Top-level import name -> the optional extra that installs it (pyproject.toml).
EXTRA_OF_IMPORT = {
    "torchao": "qlora",
    "wandb": "wandb",
    "tensorboard": "tensorboard",
    "mlflow": "mlflow",
    "comet_ml": "comet",
}


def _module_names() -> list[str]:
    names = []
    for path in sorted(PACKAGE_DIR.rglob("*.py")):
        parts = path.relative_to(PACKAGE_DIR.parent).with_suffix("").parts
        if parts[-1] == "__main__":  # importing it runs the command line
            continue
        names.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return names


class _Runner(doctest.DocTestRunner):
    """A runner that remembers the exceptions examples raised, to tell a missing extra."""

    def __init__(self) -> None:
        super().__init__(optionflags=doctest.ELLIPSIS, verbose=False)
        self.raised: list[BaseException] = []

    def report_unexpected_exception(self, out, test, example, exc_info) -> None:
        self.raised.append(exc_info[1])
        super().report_unexpected_exception(out, test, example, exc_info)


def _missing_extra(exc: BaseException | None) -> str | None:
    """The extra whose absence raised `exc` (or the error it was raised from), if any."""
    while exc is not None:
        if isinstance(exc, ModuleNotFoundError) and exc.name:
            return EXTRA_OF_IMPORT.get(exc.name.partition(".")[0])
        exc = exc.__cause__ or exc.__context__
    return None


def test_the_walk_finds_the_package():
    names = _module_names()
    assert "raytune_chat.data._sample" in names and "raytune_chat.models.llama3" in names
    assert not any(name.endswith("__main__") for name in names)


def test_extras_table_matches_the_package_metadata():
    declared = set(importlib.metadata.metadata("raytune_chat").get_all("Provides-Extra"))
    assert declared - {"test"} == set(EXTRA_OF_IMPORT.values())


def test_only_a_missing_extra_is_a_reason_to_skip():
    assert _missing_extra(ModuleNotFoundError(name="torchao.dtypes")) == "qlora"
    assert _missing_extra(ModuleNotFoundError(name="comet_ml")) == "comet"
    assert _missing_extra(ModuleNotFoundError(name="yaml")) is None
    assert _missing_extra(ImportError("cannot import name 'x'")) is None
    wrapped = ImportError("QLoRA needs torchao: pip install 'raytune_chat[qlora]'")
    wrapped.__cause__ = ModuleNotFoundError(name="torchao.dtypes")
    assert _missing_extra(wrapped) == "qlora"


@pytest.mark.parametrize("name", _module_names())
def test_module_imports_and_its_examples_run(name, request):
    module = importlib.import_module(name)  # every module imports, extras or not
    tests = doctest.DocTestFinder().find(module, name)
    if any(_USES_RAY.search(example.source) for t in tests for example in t.examples):
        request.getfixturevalue("ray_cluster")
    runner = _Runner()
    failed = []
    for test in tests:
        runner.raised.clear()
        if runner.run(test, out=failed.append).failed and runner.raised:
            # the examples after the failed import fail for want of its names: judge the first
            if extra := _missing_extra(runner.raised[0]):
                pytest.skip(f"{test.name} needs the optional extra ['{extra}']")
    if failed:
        pytest.fail("".join(failed), pytrace=False)


def test_an_example_needing_a_missing_extra_is_skipped_naming_it(monkeypatch):
    for name in ["torchao", *[m for m in sys.modules if m.startswith("torchao.")]]:
        monkeypatch.setitem(sys.modules, name, None)  # as if [qlora] were not installed
    with pytest.raises(pytest.skip.Exception, match=r"\['qlora'\]"):
        test_module_imports_and_its_examples_run("raytune_chat.modules.low_precision._nf4", None)
