"""The one error type of the config system; it always names the offending key."""

from __future__ import annotations

__all__ = ["ConfigError"]


class ConfigError(ValueError):
    """A config problem found before anything runs.

    Attributes:
        key: dotted path of the offending key (``"model.lora_rank"``), or ``""`` for the file.

    Example:
        >>> str(ConfigError("model.lora_rnak", "unknown key"))
        'model.lora_rnak: unknown key'
    """

    def __init__(self, key: str, message: str) -> None:
        self.key = key
        super().__init__(f"{key}: {message}" if key else message)
