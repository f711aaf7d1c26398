"""Recipes: `lora_finetune_single_device` and `lora_finetune_distributed` on Ray Train;
`generate` (plain torch) and `generate_batch` (Ray Data) to try the result.

Each recipe is one file that reads top to bottom (dataset -> trainer -> worker loop -> step ->
report -> outputs); the pieces they share live in `raytune_chat.training`. A recipe is named
(`RECIPES`) or is a Python file, typically a copy made with ``raytune-chat cp <recipe> <file>``
and edited, that defines ``recipe_main(cfg)`` like the built-in ones.
"""

from __future__ import annotations

import importlib
import importlib.util
import shutil
import sys
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from raytune_chat.config import ConfigError
from raytune_chat.training.recipe_config import validate_config

__all__ = ["RECIPES", "copy_recipe", "get_recipe", "recipe_file", "validate_config"]

RECIPES: dict[str, str] = {
    "lora_finetune_single_device": "raytune_chat.recipes.lora_finetune_single_device",
    "lora_finetune_distributed": "raytune_chat.recipes.lora_finetune_distributed",
    "generate": "raytune_chat.recipes.generate",
    "generate_batch": "raytune_chat.recipes.generate_batch",
}


def _module(name: str) -> str:
    if name not in RECIPES:
        raise ConfigError("recipe", f"unknown recipe {name!r}; known: {', '.join(RECIPES)}")
    return RECIPES[name]


def _is_path(name: str) -> bool:
    return name.endswith(".py") or Path(name).is_file()


def _load_file(path: Path) -> Any:
    """Import the recipe file at `path` as a module of its own.

    The module is registered under a fresh name only while it runs its top level (dataclasses
    look their module up); it is then removed from `sys.modules`, so cloudpickle, finding no
    importable module, sends its functions to the Ray workers by value: the workers run the
    file's own loop without being able to import it.
    """
    if not path.is_file():
        raise ConfigError("recipe", f"recipe file not found: {path}")
    name = f"raytune_chat_user_recipe_{uuid.uuid4().hex[:8]}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ConfigError("recipe", f"cannot load a recipe from {path}: not a Python file")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    finally:
        del sys.modules[name]
    if not callable(getattr(module, "recipe_main", None)):
        raise ConfigError("recipe", f"{path} defines no recipe_main(cfg)")
    return module


def get_recipe(name: str) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """The `recipe_main(cfg)` of a recipe by name, or of the recipe file at path `name`.

    A path is anything ending in ``.py`` or naming an existing file.

    Raises:
        ConfigError: on ``recipe`` for an unknown recipe name (listing the known ones), a
            recipe path that does not exist, or a recipe file without `recipe_main`.

    Example:
        >>> get_recipe("lora_finetune_single_device").__name__
        'recipe_main'
    """
    if _is_path(name):
        return _load_file(Path(name)).recipe_main
    return importlib.import_module(_module(name)).recipe_main


def recipe_file(name: str) -> Path:
    """The source file of the named recipe.

    Example:
        >>> recipe_file("lora_finetune_distributed").name
        'lora_finetune_distributed.py'
    """
    return Path(importlib.util.find_spec(_module(name)).origin)


def copy_recipe(name: str, dest: str | Path) -> Path:
    """Copy the named recipe's file to `dest` (a file, or a folder to put it in); return it.

    Raises:
        ConfigError: on ``recipe`` for an unknown recipe name, on ``dest`` when it already
            exists (nothing is overwritten).

    Example:
        >>> import tempfile, os
        >>> dest = os.path.join(tempfile.mkdtemp(), "my_recipe.py")
        >>> copy_recipe("lora_finetune_single_device", dest).name
        'my_recipe.py'
    """
    source = recipe_file(name)
    target = Path(dest)
    if target.is_dir():
        target = target / source.name
    if target.exists():
        raise ConfigError("dest", f"{target} already exists; not overwriting it")
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, target)
    return target
