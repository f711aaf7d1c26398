"""Read and write one weights file with peak memory near the tensors' own size.

``safetensors.torch.load_file`` memory-maps a whole shard while copying it out, and
``save_file`` serialises a shard to bytes before writing, so each briefly holds a shard twice.
Here safetensors files are read and written tensor by tensor with plain file I/O; the
format (an 8-byte little-endian header length, a JSON header, then raw bytes) is stable
and small. Pickle-based files go through ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Iterator, Mapping
from pathlib import Path

import torch

__all__ = [
    "iter_safetensors",
    "iter_weights",
    "read_safetensors",
    "read_weights",
    "write_safetensors",
    "write_weights",
]

_DTYPES: dict[str, torch.dtype] = {
    "F64": torch.float64,
    "F32": torch.float32,
    "F16": torch.float16,
    "BF16": torch.bfloat16,
    "I64": torch.int64,
    "I32": torch.int32,
    "I16": torch.int16,
    "I8": torch.int8,
    "U8": torch.uint8,
    "BOOL": torch.bool,
    "F8_E4M3": torch.float8_e4m3fn,
    "F8_E5M2": torch.float8_e5m2,
}
_NAMES = {v: k for k, v in _DTYPES.items()}


def iter_safetensors(path: str | Path) -> Iterator[tuple[str, torch.Tensor]]:
    """Yield the tensors of a ``.safetensors`` file one at a time, each in fresh CPU memory.

    Only the tensor being yielded is in memory, so a consumer that converts and drops each
    one (QLoRA's NF4 load) never holds the shard.

    Example:
        >>> import tempfile, os
        >>> p = os.path.join(tempfile.mkdtemp(), "w.safetensors")
        >>> write_safetensors({"x": torch.arange(3.0), "y": torch.ones(1)}, p)
        >>> [name for name, _ in iter_safetensors(p)]
        ['x', 'y']
    """
    with open(path, "rb") as f:
        (header_len,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(header_len))
        data_start = 8 + header_len
        header.pop("__metadata__", None)
        for name, info in header.items():
            start, end = info["data_offsets"]
            raw = torch.empty(end - start, dtype=torch.uint8)
            f.seek(data_start + start)
            if end > start and f.readinto(memoryview(raw.numpy())) != end - start:
                raise ValueError(f"{path}: truncated data for tensor {name!r}")
            yield name, raw.view(_DTYPES[info["dtype"]]).reshape(info["shape"])


def read_safetensors(path: str | Path) -> dict[str, torch.Tensor]:
    """Load every tensor of a ``.safetensors`` file into fresh CPU memory.

    Example:
        >>> import tempfile, os
        >>> p = os.path.join(tempfile.mkdtemp(), "w.safetensors")
        >>> write_safetensors({"x": torch.arange(3.0)}, p)
        >>> read_safetensors(p)["x"].tolist()
        [0.0, 1.0, 2.0]
    """
    return dict(iter_safetensors(path))


def write_safetensors(
    tensors: Mapping[str, torch.Tensor],
    path: str | Path,
    metadata: Mapping[str, str] | None = None,
) -> None:
    """Write tensors as a ``.safetensors`` file readable by ``safetensors`` and transformers.

    Example:
        >>> import tempfile, os, safetensors.torch
        >>> p = os.path.join(tempfile.mkdtemp(), "w.safetensors")
        >>> write_safetensors({"x": torch.ones(2, dtype=torch.bfloat16)}, p)
        >>> safetensors.torch.load_file(p)["x"].dtype
        torch.bfloat16
    """
    header: dict[str, object] = {"__metadata__": dict(metadata or {"format": "pt"})}
    offset = 0
    for name, tensor in tensors.items():
        nbytes = tensor.numel() * tensor.element_size()
        header[name] = {
            "dtype": _NAMES[tensor.dtype],
            "shape": list(tensor.shape),
            "data_offsets": [offset, offset + nbytes],
        }
        offset += nbytes
    encoded = json.dumps(header, separators=(",", ":")).encode()
    encoded += b" " * (-len(encoded) % 8)  # safetensors aligns the data section to 8 bytes
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(encoded)))
        f.write(encoded)
        for tensor in tensors.values():
            flat = tensor.detach().to("cpu").contiguous().reshape(-1)
            if flat.numel():
                f.write(memoryview(flat.view(torch.uint8).numpy()))


def _load_pickled(path: Path, *, mmap: bool) -> dict[str, torch.Tensor]:
    state_dict = torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
    if not isinstance(state_dict, Mapping) or not all(
        isinstance(v, torch.Tensor) for v in state_dict.values()
    ):
        raise ValueError(f"{path} does not hold a flat mapping of names to tensors")
    return dict(state_dict)


def read_weights(path: str | Path) -> dict[str, torch.Tensor]:
    """Load one weights file: ``.safetensors`` directly, anything else via ``torch.load``.

    Pickle files are read with ``weights_only=True`` (no arbitrary code runs) onto the CPU.

    Raises:
        ValueError: If the file does not hold a flat mapping of names to tensors.
    """
    path = Path(path)
    if path.suffix == ".safetensors":
        return read_safetensors(path)
    return _load_pickled(path, mmap=False)


def iter_weights(path: str | Path) -> Iterator[tuple[str, torch.Tensor]]:
    """Yield one weights file's tensors one at a time (see :func:`iter_safetensors`).

    Pickle files are memory-mapped (``torch.load(mmap=True)``): a tensor's pages are read
    from disk when it is used, and are file-backed, so the kernel can drop them again.

    Raises:
        ValueError: If the file does not hold a flat mapping of names to tensors.
    """
    path = Path(path)
    if path.suffix == ".safetensors":
        yield from iter_safetensors(path)
        return
    yield from _load_pickled(path, mmap=True).items()


def write_weights(tensors: Mapping[str, torch.Tensor], path: str | Path) -> None:
    """Write ``tensors`` as safetensors or with ``torch.save``, by ``path``'s suffix."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".safetensors":
        write_safetensors(tensors, path)
    else:
        torch.save(dict(tensors), path)
