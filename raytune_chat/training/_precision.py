"""Config dtype names to torch dtypes."""

from __future__ import annotations

import torch

__all__ = ["get_dtype"]

_DTYPES = {"bf16": torch.bfloat16, "fp32": torch.float32, "fp16": torch.float16}


def get_dtype(name: str) -> torch.dtype:
    """Map `bf16` / `fp32` / `fp16` to a torch dtype.

    Raises:
        ValueError: for any other name.

    Example:
        >>> get_dtype("bf16")
        torch.bfloat16
    """
    if name not in _DTYPES:
        raise ValueError(f"dtype must be one of {sorted(_DTYPES)}, got {name!r}")
    return _DTYPES[name]
