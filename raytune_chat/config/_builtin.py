"""Find the built-in configs shipped inside the package (`raytune_chat/_builtin_configs/`).

They are real files in the package (the repository's top-level `configs/` is a symlink to
them, for browsing), so a wheel, an editable install and a checkout without symlinks all see
the same configs.
"""

from __future__ import annotations

import importlib.resources
import shutil
from pathlib import Path

from raytune_chat.config._errors import ConfigError

__all__ = [
    "builtin_config_dir",
    "copy_builtin_config",
    "find_config",
    "list_builtin_configs",
]


def builtin_config_dir() -> Path:
    """The folder holding the built-in configs (`<name>.yaml` under family folders)."""
    return Path(str(importlib.resources.files("raytune_chat") / "_builtin_configs"))


def list_builtin_configs(root: str | Path | None = None) -> list[str]:
    """Names of the built-in configs, e.g. ``llama3/8B_lora_single_device``.

    Args:
        root: the folder to list (default: :func:`builtin_config_dir`).

    Raises:
        ConfigError: when the folder holds no config (a broken install), rather than
            listing nothing.

    Example:
        >>> "tiny/llama3_lora_cpu" in list_builtin_configs()
        True
    """
    root = Path(root) if root is not None else builtin_config_dir()
    names = sorted(str(p.relative_to(root).with_suffix("")) for p in root.rglob("*.yaml"))
    if not names:
        raise ConfigError(
            "",
            f"no built-in config found in {root}: the raytune_chat install is incomplete; "
            "reinstall it (`pip install --force-reinstall raytune_chat`)",
        )
    return names


def find_config(name: str) -> Path:
    """Resolve a built-in name or a file path to a config file.

    A path to an existing file wins; otherwise `name` (with or without `.yaml`) is looked up
    among the built-in configs.

    Raises:
        ConfigError: when neither exists.

    Example:
        >>> find_config("tiny/llama3_lora_cpu").name
        'llama3_lora_cpu.yaml'
    """
    path = Path(name)
    if path.is_file():
        return path
    builtin = builtin_config_dir() / (name if name.endswith(".yaml") else f"{name}.yaml")
    if builtin.is_file():
        return builtin
    raise ConfigError(
        "--config", f"{name!r} is neither a file nor a built-in config (see `raytune-chat ls`)"
    )


def copy_builtin_config(name: str, dest: str | Path) -> Path:
    """Copy a built-in config to `dest` (a file, or a folder to copy into); return the new path.

    Raises:
        ConfigError: for an unknown name, or when `dest` exists (nothing is overwritten).

    Example:
        >>> import tempfile, os
        >>> dest = os.path.join(tempfile.mkdtemp(), "c.yaml")
        >>> copy_builtin_config("tiny/llama3_lora_cpu", dest).name
        'c.yaml'
    """
    source = builtin_config_dir() / (name if name.endswith(".yaml") else f"{name}.yaml")
    if not source.is_file():
        raise ConfigError("name", f"{name!r} is not a built-in config (see `raytune-chat ls`)")
    target = Path(dest)
    if target.is_dir():
        target = target / source.name
    if target.exists():
        raise ConfigError("dest", f"{target} already exists; not overwriting it")
    shutil.copyfile(source, target)
    return target
