"""Command-line overrides with torchtune's syntax, applied to a plain-dict config.

`a.b=value` sets (creating sections as needed), `~a.b` removes, and `model=<dotpath>` on a
section that has a `_component_` swaps the component while keeping the section's other keys.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

from raytune_chat.config._errors import ConfigError
from raytune_chat.config._yaml import parse_value

__all__ = ["apply_overrides"]


def _parent(cfg: dict[str, Any], dotted: str, *, create: bool) -> tuple[dict[str, Any], str]:
    parts = dotted.split(".")
    node = cfg
    for i, part in enumerate(parts[:-1]):
        child = node.get(part)
        if child is None and create:
            child = node[part] = {}
        if not isinstance(child, dict):
            raise ConfigError(
                ".".join(parts[: i + 1]), "is not a section; cannot set keys under it"
            )
        node = child
    return node, parts[-1]


def _remove(cfg: dict[str, Any], dotted: str) -> None:
    try:
        node, leaf = _parent(cfg, dotted, create=False)
    except ConfigError as exc:
        raise ConfigError(dotted, "cannot remove: no such key") from exc
    if leaf not in node:
        raise ConfigError(dotted, "cannot remove: no such key")
    del node[leaf]


def _set(cfg: dict[str, Any], dotted: str, text: str) -> None:
    node, leaf = _parent(cfg, dotted, create=True)
    current = node.get(leaf)
    if isinstance(current, dict) and "_component_" in current:
        node[leaf]["_component_"] = text.strip()
        return
    node[leaf] = parse_value(text)


def apply_overrides(cfg: dict[str, Any], overrides: Sequence[str]) -> dict[str, Any]:
    """Return a copy of `cfg` with command-line overrides applied in order.

    Args:
        cfg: the loaded config.
        overrides: items like ``"epochs=15"``, ``"~profiler"``, ``"model=<dotpath>"``.

    Raises:
        ConfigError: naming the key for a malformed item or a removal of a missing key.

    Example:
        >>> cfg = {"epochs": 1, "model": {"_component_": "a.b", "lora_rank": 8}, "x": {"y": 1}}
        >>> apply_overrides(cfg, ["epochs=15", "model=c.d", "~x.y", "ray.num_workers=2"])
        {'epochs': 15, 'model': {'_component_': 'c.d', 'lora_rank': 8}, 'x': {}, 'ray': {'num_workers': 2}}
    """  # noqa: E501
    out = copy.deepcopy(cfg)
    for item in overrides:
        if item.startswith("~"):
            _remove(out, item[1:])
            continue
        key, sep, value = item.partition("=")
        if not sep or not key or key.startswith("."):
            raise ConfigError(item, "an override is `key=value` or `~key`")
        _set(out, key.strip(), value)
    return out
