"""Bind `_component_` sections to their callables: check every key first, then call.

A section is a dict with a `_component_` name and keyword arguments. `check_section` binds the
keys to the callable's signature without calling anything, so `raytune-chat validate` and the
recipe's start-up fail on a typo before a cluster or a model is built.
"""

from __future__ import annotations

import inspect
import typing
from collections.abc import Callable, Iterable
from typing import Any

from raytune_chat.config._errors import ConfigError
from raytune_chat.config._registry import resolve_component, translate_alias

__all__ = ["check_section", "instantiate"]

_SIMPLE = {bool: (bool,), int: (int,), float: (int, float), str: (str,)}


def _signature(fn: Callable[..., Any], key: str) -> inspect.Signature:
    try:
        return inspect.signature(fn)
    except (TypeError, ValueError) as exc:
        raise ConfigError(key, f"cannot read the signature of {fn!r}: {exc}") from exc


_VAR = (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)


def _parameters(fn: Callable[..., Any], key: str) -> dict[str, inspect.Parameter]:
    """Signature parameters; a class forwarding `*args, **kwargs` gets its bases' too."""
    params = dict(_signature(fn, key).parameters)
    if not inspect.isclass(fn):
        return params
    for base in fn.__mro__[1:]:
        if not any(p.kind in _VAR for p in params.values()):
            break
        if base is object or "__init__" not in vars(base):
            continue
        params = {n: p for n, p in params.items() if p.kind not in _VAR}
        inherited = list(_signature(base.__init__, key).parameters.values())[1:]
        params.update({p.name: p for p in inherited if p.name not in params})
    return params


def _hints(fn: Callable[..., Any]) -> dict[str, Any]:
    target = fn.__init__ if inspect.isclass(fn) else fn
    try:
        return typing.get_type_hints(target)
    except Exception:  # noqa: BLE001 - unresolvable annotations just skip type checks
        return {}


def _check_type(name: str, value: Any, hint: Any, key: str) -> None:
    allowed = _SIMPLE.get(hint)
    if allowed is None or value is None:
        return
    if isinstance(value, bool) and hint is not bool:
        allowed = ()
    if not isinstance(value, allowed):
        raise ConfigError(
            f"{key}.{name}", f"expects {hint.__name__}, got {type(value).__name__} {value!r}"
        )


def check_section(section: Any, *, key: str, provided: Iterable[str] = ()) -> Callable[..., Any]:
    """Check a `_component_` section against its callable's signature; call nothing.

    Args:
        section: the config dict, e.g. ``{"_component_": "torch.optim.AdamW", "lr": 3e-4}``.
        key: its dotted key (``"optimizer"``), used in error messages.
        provided: argument names the recipe passes itself (``params`` for an optimizer).

    Returns:
        The resolved callable.

    Raises:
        ConfigError: naming the key: not a section, unknown component, unknown argument,
            missing required argument, or a plainly wrong scalar type.

    Example:
        >>> check_section({"_component_": "torch.optim.AdamW", "lr": 3e-4}, key="optimizer",
        ...               provided=["params"]).__name__
        'AdamW'
    """
    if not isinstance(section, dict) or "_component_" not in section:
        raise ConfigError(key, "must be a section with a `_component_` key")
    fn = resolve_component(str(section["_component_"]), key=f"{key}._component_")
    params = _parameters(fn, key)
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    hints = _hints(fn)
    provided = set(provided)
    for name, value in section.items():
        if name == "_component_":
            continue
        if name in provided:
            raise ConfigError(f"{key}.{name}", "is set by the recipe; remove it from the config")
        if name not in params and not takes_any:
            known = sorted(n for n, p in params.items() if p.kind not in _VAR and n not in provided)
            raise ConfigError(
                f"{key}.{name}",
                f"unknown argument of {section['_component_']}; it accepts {', '.join(known)}",
            )
        if isinstance(value, dict) and "_component_" in value:
            check_section(value, key=f"{key}.{name}")
        elif name in hints:
            _check_type(name, value, hints[name], key)
    for name, p in params.items():
        required = p.default is inspect.Parameter.empty and p.kind in (
            p.POSITIONAL_OR_KEYWORD,
            p.KEYWORD_ONLY,
        )
        if required and name not in section and name not in provided:
            raise ConfigError(f"{key}.{name}", f"required by {section['_component_']} but not set")
    return fn


def _arg(value: Any, key: str) -> Any:
    if isinstance(value, dict) and "_component_" in value:
        return instantiate(value, key=key)
    if isinstance(value, str):
        return translate_alias(value)
    return value


def instantiate(section: dict[str, Any], *args: Any, key: str, **kwargs: Any) -> Any:
    """Check `section` then call its component with its keys plus the recipe's arguments.

    Args:
        section: a `_component_` section.
        *args: positional arguments from the recipe (torchtune passes e.g. params first).
        key: the section's dotted key for error messages.
        **kwargs: keyword arguments the recipe supplies (``tokenizer=...``).

    Example:
        >>> import torch
        >>> opt = instantiate({"_component_": "torch.optim.SGD", "lr": 0.1},
        ...                   params=[torch.nn.Parameter(torch.zeros(1))], key="optimizer")
        >>> type(opt).__name__
        'SGD'
    """
    fn = check_section(section, key=key, provided=kwargs)
    call = {k: _arg(v, f"{key}.{k}") for k, v in section.items() if k != "_component_"}
    return fn(*args, **call, **kwargs)
