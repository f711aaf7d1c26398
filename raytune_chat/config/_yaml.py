"""Read a YAML config into plain dicts, with `3e-4` read as a float as torchtune users expect."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from raytune_chat.config._errors import ConfigError

__all__ = ["load_yaml", "parse_value"]


class _Loader(yaml.SafeLoader):
    """SafeLoader that also reads `1e-4` (no dot) as a float, like YAML 1.2."""


_FLOAT = re.compile(
    r"^[-+]?(?:[0-9][0-9_]*\.[0-9_]*(?:[eE][-+]?[0-9]+)?|\.[0-9_]+(?:[eE][-+]?[0-9]+)?"
    r"|[0-9][0-9_]*[eE][-+]?[0-9]+|\.inf|\.Inf|\.INF|\.nan|\.NaN|\.NAN)$"
)
_Loader.yaml_implicit_resolvers = {
    ch: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:float"]
    for ch, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver("tag:yaml.org,2002:float", _FLOAT, list("-+0123456789."))


def load_yaml(path: str | Path) -> dict[str, Any]:
    """Load a YAML config file as a dict.

    Raises:
        ConfigError: when the file is not a YAML mapping.

    Example:
        >>> import tempfile, os
        >>> p = os.path.join(tempfile.mkdtemp(), "c.yaml")
        >>> _ = open(p, "w").write("lr: 3e-4\\n")
        >>> load_yaml(p)
        {'lr': 0.0003}
    """
    try:
        data = yaml.load(Path(path).read_text(), Loader=_Loader)  # noqa: S506 - SafeLoader subclass
    except yaml.YAMLError as exc:
        raise ConfigError("", f"{path}: not valid YAML: {exc}") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError("", f"{path}: a config must be a YAML mapping, got {type(data).__name__}")
    return data


def parse_value(text: str) -> Any:
    """Parse a command-line value as a YAML scalar/list (`15` -> 15, `[q,v]` -> ['q', 'v']).

    Example:
        >>> parse_value("15"), parse_value("null"), parse_value("3e-4"), parse_value("fp32")
        (15, None, 0.0003, 'fp32')
    """
    try:
        return yaml.load(text, Loader=_Loader)  # noqa: S506
    except yaml.YAMLError:
        return text
