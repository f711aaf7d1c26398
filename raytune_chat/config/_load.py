"""Read, override and interpolate configs with OmegaConf, as torchtune's `tune run` does.

- `load_yaml` is `OmegaConf.load`: its YAML reader takes `3e-4` as a float (YAML 1.2's rule)
  and refuses duplicate keys.
- `apply_overrides` follows torchtune's `_merge_yaml_and_cli_args`: every `~key` is removed
  from the file's config first (a section left empty goes too); then each `key=value` has its
  value read as YAML by `OmegaConf.from_dotlist` (`15`, `3e-4`, `[q_proj,v_proj]`,
  `{CPU: 0.5}`; `None` means null; a `max_filename` stays a string to keep leading zeros) and
  is merged over it, creating keys as needed and merging a `{...}` into the section it names.
  `model=<dotpath>` on a section with a `_component_` swaps the component, keeping the other
  keys. Where torchtune fails or silently breaks the config, we either do the useful thing or
  stop with a `ConfigError`: a `_component_` swap also works on nested sections, a whole
  component section may be removed (`~profiler`), a value may contain `=`, and `a.b=1` where
  `a` is a plain value is an error instead of replacing it.
- `resolve_interpolations` resolves `${output_dir}`, `${a.b}`, `${oc.env:HOME}`,
  `${oc.env:VAR,default}` and our `${asset:NAME}` (see `_assets.py`), keeping the
  referenced value's type.

Every YAML or OmegaConf error leaves as a one-line `ConfigError` naming the key, or the file
and line.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import GrammarParseError, OmegaConfBaseException

from raytune_chat.config._assets import asset_path
from raytune_chat.config._errors import ConfigError

__all__ = ["apply_overrides", "load_yaml", "resolve_interpolations"]

_ASSET_RESOLVER = "asset"


def _asset(name: str) -> str:
    return str(asset_path(name))


if not OmegaConf.has_resolver(_ASSET_RESOLVER):
    OmegaConf.register_new_resolver(_ASSET_RESOLVER, _asset)


# How OmegaConf words an error raised in a resolver (`oc.env`'s missing variable, an unknown asset).
_WRAPPED = re.compile(r"^(\w+) raised while resolving interpolation: (.*)$")


def _one_line(exc: OmegaConfBaseException) -> str:
    """OmegaConf's message without its `full_key:`/`object_type=` trailer lines."""
    message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    wrapped = _WRAPPED.match(message)
    if "Recursive interpolation detected" in message or (
        wrapped and wrapped.group(1) == "RecursionError"  # a cycle through a section or list
    ):
        return "interpolation cycle"
    if isinstance(exc, GrammarParseError):
        return f"not a valid `${{...}}` interpolation ({message})"
    if wrapped is None:
        return message
    inner = wrapped.group(2)
    if wrapped.group(1) == "KeyError" and len(inner) > 1 and inner[0] == inner[-1] in "'\"":
        inner = inner[1:-1]  # str(KeyError) quotes its message
    return inner


def _yaml_error(path: str | Path, exc: yaml.YAMLError) -> ConfigError:
    mark = getattr(exc, "problem_mark", None)
    where = f"{path}, line {mark.line + 1}" if mark is not None else str(path)
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    return ConfigError("", f"{where}: not valid YAML: {problem}")


def load_yaml(path: str | Path) -> dict[str, Any]:
    """Load a YAML config file as plain dicts, `${...}` left unresolved.

    Raises:
        ConfigError: naming the file (and line) when it is not valid YAML or not a mapping.

    Example:
        >>> import tempfile, os
        >>> p = os.path.join(tempfile.mkdtemp(), "c.yaml")
        >>> _ = open(p, "w").write("lr: 3e-4\\nlog_dir: ${output_dir}/logs\\n")
        >>> load_yaml(p)
        {'lr': 0.0003, 'log_dir': '${output_dir}/logs'}
    """
    try:
        conf = OmegaConf.load(path)
    except yaml.YAMLError as exc:
        raise _yaml_error(path, exc) from None
    except (OSError, UnicodeDecodeError) as exc:
        if str(exc).startswith("Invalid loaded object type"):  # OmegaConf on a lone number
            raise ConfigError("", f"{path}: a config must be a YAML mapping") from None
        raise ConfigError("", f"{path}: cannot read the config: {exc}") from None
    except OmegaConfBaseException as exc:
        raise ConfigError("", f"{path}: {_one_line(exc)}") from None
    if not isinstance(conf, DictConfig):
        raise ConfigError("", f"{path}: a config must be a YAML mapping, got a list")
    return OmegaConf.to_container(conf, resolve=False)


def _remove(cfg: dict[str, Any], dotted: str) -> None:
    """Delete `dotted`, then every section the deletion left empty (torchtune does the same)."""
    parts = dotted.split(".")
    if "_component_" in parts:
        raise ConfigError(dotted, "cannot remove a `_component_`; remove or swap its section")
    chain = [cfg]
    for part in parts[:-1]:
        child = chain[-1].get(part)
        if not isinstance(child, dict):
            raise ConfigError(dotted, "cannot remove: no such key")
        chain.append(child)
    if parts[-1] not in chain[-1]:
        raise ConfigError(dotted, "cannot remove: no such key")
    del chain[-1][parts[-1]]
    for parent, part in zip(reversed(chain[:-1]), reversed(parts[:-1]), strict=True):
        if parent[part]:
            break
        del parent[part]


def _current(cfg: dict[str, Any], dotted: str) -> Any:
    """The value at `dotted` (None when absent); a plain value on the way is an error."""
    parts = dotted.split(".")
    node: Any = cfg
    for i, part in enumerate(parts):
        if node is None:
            return None
        if not isinstance(node, dict):
            raise ConfigError(".".join(parts[:i]), "is not a section; cannot set keys under it")
        node = node.get(part)
    return node


def _dotlist_item(cfg: dict[str, Any], item: str) -> tuple[str, str]:
    key, sep, value = item.partition("=")
    key = key.strip()
    if not sep or not key or key.startswith("."):
        raise ConfigError(item, "an override is `key=value` or `~key`")
    current = _current(cfg, key)
    if isinstance(current, dict) and "_component_" in current:
        key, value = f"{key}._component_", value.strip()
    if value.strip() == "None":  # Python's spelling, as torchtune accepts it
        value = "!!null"
    if "max_filename" in key:  # e.g. "00005": torchtune keeps leading zeros
        value = f"!!str {value}"
    return key, f"{key}={value}"


def apply_overrides(cfg: dict[str, Any], overrides: Sequence[str]) -> dict[str, Any]:
    """Return a copy of `cfg` with command-line overrides applied (torchtune's syntax).

    Args:
        cfg: the loaded config.
        overrides: items like ``"epochs=15"``, ``"~profiler"``, ``"model=<dotpath>"``,
            ``"model.lora_attn_modules=[q_proj,v_proj]"``.

    Raises:
        ConfigError: naming the item or key for a malformed item, a value that is not YAML,
            a key set under a plain value, or the removal of a missing key.

    Example:
        >>> cfg = {"epochs": 1, "model": {"_component_": "a.b", "lora_rank": 8}, "x": {"y": 1}}
        >>> apply_overrides(cfg, ["epochs=15", "model=c.d", "~x.y", "ray.num_workers=2"])
        {'epochs': 15, 'model': {'_component_': 'c.d', 'lora_rank': 8}, 'ray': {'num_workers': 2}}
    """
    out = copy.deepcopy(cfg)
    for item in overrides:
        if item.startswith("~"):
            _remove(out, item[1:].partition("=")[0].strip())
    layers = []
    for item in overrides:
        if item.startswith("~"):
            continue
        key, entry = _dotlist_item(out, item)
        try:
            layers.append(OmegaConf.from_dotlist([entry]))
        except yaml.YAMLError as exc:
            problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
            raise ConfigError(key, f"{item!r} is not valid YAML ({problem}); quote it") from None
        except OmegaConfBaseException as exc:
            raise ConfigError(key, _one_line(exc)) from None
    try:
        merged = OmegaConf.merge(OmegaConf.create(out), *layers)
    except OmegaConfBaseException as exc:
        raise ConfigError(exc.full_key or "", _one_line(exc)) from None
    return OmegaConf.to_container(merged, resolve=False)


def resolve_interpolations(cfg: dict[str, Any]) -> dict[str, Any]:
    """Return a copy of `cfg` with every `${...}` resolved, as plain dicts.

    Raises:
        ConfigError: naming the key whose reference is missing, cyclic or fails to resolve.

    Example:
        >>> resolve_interpolations({"output_dir": "/o", "log": {"dir": "${output_dir}/logs"},
        ...                         "n": 2, "m": "${n}", "home": "${oc.env:NO_SUCH_VAR,/h}"})
        {'output_dir': '/o', 'log': {'dir': '/o/logs'}, 'n': 2, 'm': 2, 'home': '/h'}
    """
    try:
        return OmegaConf.to_container(OmegaConf.create(cfg), resolve=True)
    except OmegaConfBaseException as exc:
        raise ConfigError(exc.full_key or "", _one_line(exc)) from None
