"""A run's outputs in `ray.storage_path`, beside its checkpoints: `<storage_path>/<name>/outputs/`.

`output_dir` is a folder on the disk of the node a process runs on, and on a cluster the
driver (summary, loss plot) and rank 0 (metrics, final adapter) may run on different nodes,
neither of them the one a user looks at. So when `ray.storage_path` is set (a shared folder
or ``s3://…``), rank 0 copies what it wrote to `outputs/`, and the driver reads the metrics
back from there and adds the summary and the loss plot. Plain pyarrow filesystems, as Ray
Train uses for its checkpoints (same URIs, same credentials); no Ray.

Example:
    >>> import tempfile
    >>> from pathlib import Path
    >>> from raytune_chat.training.recipe_config import RaySettings, RecipeSettings
    >>> root = Path(tempfile.mkdtemp())
    >>> settings = RecipeSettings(output_dir=str(root / "out"),
    ...                           ray=RaySettings(storage_path=str(root / "store"), name="run"))
    >>> (root / "out").mkdir(); _ = (root / "out" / "metrics.jsonl").write_text("{}")
    >>> copy_outputs_to_storage(settings) == f"{root}/store/run/outputs"
    True
    >>> fetch_output(settings, "metrics.jsonl", root / "back.jsonl")
    True
    >>> (root / "back.jsonl").read_text(), output_in_storage(settings, root / "out" / "loss.png")
    ('{}', None)
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import pyarrow.fs

from raytune_chat.training.recipe_config import RecipeSettings

__all__ = ["copy_outputs_to_storage", "fetch_output", "output_in_storage", "outputs_uri"]

# Not outputs: they live in `ray.storage_path` already when it is set (or were left by an
# earlier run that had none).
_NOT_COPIED = ("ray_results", "token_cache")


def outputs_uri(settings: RecipeSettings) -> str | None:
    """`<ray.storage_path>/<ray.name>/outputs`, or None when the run has no storage_path."""
    if settings.ray.storage_path is None:
        return None
    return f"{settings.ray.storage_path.rstrip('/')}/{settings.ray.name}/outputs"


def _filesystem(uri: str) -> tuple[pyarrow.fs.FileSystem, str]:
    if "://" not in uri:  # a plain path, as Ray Train accepts for storage_path
        return pyarrow.fs.LocalFileSystem(), str(Path(uri).resolve())
    return pyarrow.fs.FileSystem.from_uri(uri)


def _storage_name(path: Path, output_dir: Path) -> str:
    """Where a local output goes below `outputs/`: its path inside `output_dir`, or (a
    checkpointer folder elsewhere) its own name."""
    path = path.resolve()
    return path.relative_to(output_dir).as_posix() if path.is_relative_to(output_dir) else path.name


def _upload(local: Path, fs: pyarrow.fs.FileSystem, dest: str) -> None:
    fs.create_dir(dest.rsplit("/", 1)[0], recursive=True)
    pyarrow.fs.copy_files(
        str(local.resolve()),
        dest,
        source_filesystem=pyarrow.fs.LocalFileSystem(),
        destination_filesystem=fs,
    )


def copy_outputs_to_storage(
    settings: RecipeSettings, extra: Iterable[Path] = (), *, only: Iterable[Path] | None = None
) -> str | None:
    """Copy `output_dir` (and `extra` folders outside it) to `outputs_uri`; return that URI.

    Args:
        settings: the run's settings (`output_dir`, `ray.storage_path`, `ray.name`).
        extra: more folders to copy, e.g. the checkpointer's final `epoch_<n>` folder.
        only: copy just these files (the driver's summary and plot) instead of everything.

    Returns:
        The URI, or None (nothing copied) when the run has no `ray.storage_path`.
    """
    uri = outputs_uri(settings)
    if uri is None:
        return None
    fs, root = _filesystem(uri)
    output_dir = Path(settings.output_dir).resolve()
    if only is not None:
        files = {_storage_name(Path(p), output_dir): Path(p) for p in only}
    else:
        files = {
            f.relative_to(output_dir).as_posix(): f
            for f in sorted(output_dir.rglob("*"))
            if f.relative_to(output_dir).parts[0] not in _NOT_COPIED
        }
        for folder in map(Path, extra):
            top = _storage_name(folder, output_dir)
            for f in sorted(folder.rglob("*")):
                files[f"{top}/{f.relative_to(folder).as_posix()}"] = f
    for name, file in files.items():
        if file.is_file():
            _upload(file, fs, f"{root}/{name}")
    return uri


def output_in_storage(settings: RecipeSettings, local: Path) -> str | None:
    """The URI of a local output's copy in storage (file or folder), if it is there."""
    uri = outputs_uri(settings)
    if uri is None:
        return None
    fs, root = _filesystem(uri)
    name = _storage_name(Path(local), Path(settings.output_dir).resolve())
    suffix = "" if name == "." else f"/{name}"  # "." is output_dir itself
    if fs.get_file_info(f"{root}{suffix}").type == pyarrow.fs.FileType.NotFound:
        return None
    return f"{uri}{suffix}"


def fetch_output(settings: RecipeSettings, name: str, local: Path) -> bool:
    """Copy `outputs/<name>` from storage to `local`; False when it is not there."""
    uri = outputs_uri(settings)
    if uri is None:
        return False
    fs, root = _filesystem(uri)
    if fs.get_file_info(f"{root}/{name}").type != pyarrow.fs.FileType.File:
        return False
    Path(local).parent.mkdir(parents=True, exist_ok=True)
    pyarrow.fs.copy_files(
        f"{root}/{name}",
        str(Path(local).resolve()),
        source_filesystem=fs,
        destination_filesystem=pyarrow.fs.LocalFileSystem(),
    )
    return True
