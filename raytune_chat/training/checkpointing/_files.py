"""Read and write one weights file, one tensor in memory at a time beyond what is kept.

Safetensors files go through the ``safetensors`` library: ``safe_open(backend="pread")``
reads each tensor with ``pread(2)`` into its own buffer when asked for it (the default
``mmap`` backend would keep every page it touched mapped, and counted in the process's
memory, until the whole file is closed), and ``save_file`` writes straight from the
tensors' memory, without serialising a shard to bytes first. Pickle-based files go through
``torch.load(weights_only=True)``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import safetensors.torch
import torch
from safetensors import safe_open

__all__ = [
    "iter_safetensor_slices",
    "iter_safetensors",
    "iter_weights",
    "read_safetensors",
    "read_weights",
    "write_safetensors",
    "write_weights",
]


def iter_safetensors(path: str | Path) -> Iterator[tuple[str, torch.Tensor]]:
    """Yield the tensors of a ``.safetensors`` file one at a time, each in fresh CPU memory.

    Tensors come in file order. Only the tensor being yielded is read, so a consumer that
    converts and drops each one (QLoRA's NF4 load) never holds the shard.

    Example:
        >>> import tempfile, os
        >>> p = os.path.join(tempfile.mkdtemp(), "w.safetensors")
        >>> write_safetensors({"x": torch.arange(3.0), "y": torch.ones(1)}, p)
        >>> [name for name, _ in iter_safetensors(p)]
        ['x', 'y']
    """
    with safe_open(path, framework="pt", backend="pread") as f:
        for name in f.offset_keys():
            yield name, f.get_tensor(name)


def iter_safetensor_slices(
    path: str | Path,
) -> Iterator[tuple[str, tuple[int, ...], Callable[[int, int], torch.Tensor]]]:
    """Yield ``(name, shape, read_rows)`` for each tensor of a ``.safetensors`` file.

    ``read_rows(start, stop)`` reads only those rows from disk (``get_slice``, with
    ``pread``), into fresh CPU memory; it is valid until the next item. A tensor whose
    rows are not asked for is not read at all. This is how each FSDP rank reads only its
    own shard of the base weights.

    Example:
        >>> import tempfile, os
        >>> p = os.path.join(tempfile.mkdtemp(), "w.safetensors")
        >>> write_safetensors({"x": torch.arange(6.0).view(3, 2)}, p)
        >>> [(n, shape, read(1, 3).tolist()) for n, shape, read in iter_safetensor_slices(p)]
        [('x', (3, 2), [[2.0, 3.0], [4.0, 5.0]])]
    """
    with safe_open(path, framework="pt", backend="pread") as f:
        for name in f.offset_keys():
            part = f.get_slice(name)
            yield name, tuple(part.get_shape()), lambda start, stop, part=part: part[start:stop]


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

    Unlike ``safetensors.torch.save_file``, this accepts views: a non-contiguous tensor is
    made contiguous, and tensors sharing memory (tied weights) are each written in full.

    Example:
        >>> import tempfile, os, safetensors.torch
        >>> p = os.path.join(tempfile.mkdtemp(), "w.safetensors")
        >>> write_safetensors({"x": torch.ones(2, dtype=torch.bfloat16)}, p)
        >>> safetensors.torch.load_file(p)["x"].dtype
        torch.bfloat16
    """
    storages: set[int] = set()
    flat: dict[str, torch.Tensor] = {}
    for name, tensor in tensors.items():
        tensor = tensor.detach().to("cpu").contiguous()
        if tensor.numel():
            storage = tensor.untyped_storage().data_ptr()
            if storage in storages:  # save_file refuses tensors that share memory
                tensor = tensor.clone()
                storage = tensor.untyped_storage().data_ptr()
            storages.add(storage)
        flat[name] = tensor
    safetensors.torch.save_file(flat, path, metadata=dict(metadata or {"format": "pt"}))


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
