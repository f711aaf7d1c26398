"""Resolve ``source`` / ``data_files`` into a sorted list of files on any fsspec filesystem.

Plain Python, no Ray. ``data_files`` may be a path, a glob, a directory or a list of them,
on local disk or behind any fsspec/pyarrow URI (``s3://``, ``gs://``, ``az://``,
``https://``). ``s3://`` honours ``AWS_ENDPOINT_URL_S3`` / ``AWS_ENDPOINT_URL`` (MinIO, moto,
GCS interop) and the usual credentials chain.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import fsspec

__all__ = ["DataFile", "resolve_data_files", "storage_options_for"]

COMPRESSION_SUFFIXES = {".gz": "gzip", ".zst": "zstd", ".zstd": "zstd", ".bz2": "bz2"}
FORMAT_SUFFIXES = {".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "json", ".parquet": "parquet"}
SOURCES = ("json", "jsonl", "parquet")
_GLOB_CHARS = set("*?[")


@dataclass(frozen=True)
class DataFile:
    """One input file: its URI (or local path), format and compression; ``size`` is its
    length in storage (compressed, for a compressed file) and ``version`` what tells a
    changed file apart (ETag, generation or modification time), when the filesystem says."""

    path: str
    format: str
    compression: str | None
    size: int | None
    version: str | None = None


def storage_options_for(path: str, storage_options: Mapping[str, Any] | None) -> dict[str, Any]:
    """fsspec options for ``path``; for ``s3://`` add the endpoint from the environment.

    Example:
        >>> os.environ["AWS_ENDPOINT_URL_S3"] = "http://127.0.0.1:5000"
        >>> storage_options_for("s3://bucket/x.jsonl", None)
        {'endpoint_url': 'http://127.0.0.1:5000'}
        >>> del os.environ["AWS_ENDPOINT_URL_S3"]
    """
    options = dict(storage_options or {})
    if path.startswith(("s3://", "s3a://")) and "endpoint_url" not in options:
        endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
        if endpoint and "endpoint_url" not in options.get("client_kwargs", {}):
            options["endpoint_url"] = endpoint
    return options


def _split_suffixes(path: str) -> tuple[str | None, str | None]:
    """(format from the extension or None, compression or None)."""
    name = path.rsplit("/", 1)[-1].lower()
    compression = None
    for suffix, codec in COMPRESSION_SUFFIXES.items():
        if name.endswith(suffix):
            compression, name = codec, name[: -len(suffix)]
            break
    fmt = next((f for s, f in FORMAT_SUFFIXES.items() if name.endswith(s)), None)
    return fmt, compression


def _hidden(path: str) -> bool:
    """Hidden files and markers such as ``_SUCCESS`` are skipped by globs and folders."""
    return path.rsplit("/", 1)[-1].startswith((".", "_"))


_VERSION_KEYS = ("ETag", "etag", "generation", "mtime", "LastModified", "last_modified")


def _expand(
    pattern: str, storage_options: Mapping[str, Any] | None
) -> list[tuple[str, dict[str, Any]]]:
    """(uri, listing info) of every file ``pattern`` names; one listing call, no per-file HEAD."""
    fs, path = fsspec.core.url_to_fs(pattern, **storage_options_for(pattern, storage_options))
    if _GLOB_CHARS & set(path):
        found = {p: i for p, i in fs.glob(path, detail=True).items() if not _hidden(p)}
    else:
        info = fs.info(path)
        found = {path: info}
        if info.get("type") == "directory":
            found = {
                p: i
                for p, i in fs.find(path, detail=True).items()
                if not _hidden(p) and _split_suffixes(p)[0]
            }
    found = {p: i for p, i in found.items() if i.get("type", "file") != "directory"}
    if not found:
        raise FileNotFoundError(f"data_files {pattern!r} matches no file")
    keep_protocol = "://" in pattern
    return [(fs.unstrip_protocol(p) if keep_protocol else p, found[p]) for p in sorted(found)]


def _size_and_version(info: Mapping[str, Any]) -> tuple[int | None, str | None]:
    size = info.get("size")
    version = next((str(info[k]) for k in _VERSION_KEYS if info.get(k) is not None), None)
    return (int(size) if isinstance(size, int | float) else None), version


def resolve_data_files(
    source: str,
    data_files: str | Sequence[str] | Mapping[str, Any] | None,
    *,
    split: str = "train",
    storage_options: Mapping[str, Any] | None = None,
) -> list[DataFile]:
    """List the input files of ``split`` with their format.

    Args:
        source: ``"json"`` (JSON array or JSON Lines, detected per file), ``"jsonl"``,
            ``"parquet"``, or a path/URI (then ``data_files`` must be None and the format comes
            from the extension).
        data_files: a path, glob, directory or list of them, or ``{split: files}``.
        split: the split to read; with a plain ``data_files`` everything is ``"train"``, as in
            Hugging Face ``load_dataset``.
        storage_options: extra fsspec options (credentials, endpoint, ...).

    Returns:
        Files in sorted order.

    Raises:
        ValueError: unknown source, unknown split or an unsupported extension.
        FileNotFoundError: a pattern that matches nothing.

    Example:
        >>> import tempfile, pathlib
        >>> d = pathlib.Path(tempfile.mkdtemp())
        >>> _ = (d / "b.jsonl.gz").write_bytes(b""); _ = (d / "a.json").write_text("[]")
        >>> [(f.path.rsplit("/", 1)[-1], f.format, f.compression)
        ...  for f in resolve_data_files("json", str(d))]
        [('a.json', 'json', None), ('b.jsonl.gz', 'json', 'gzip')]
    """
    if source not in SOURCES:
        if data_files is not None:
            raise ValueError(
                f"source must be one of {SOURCES} when data_files is given, got {source!r}"
            )
        data_files, source = source, ""
    if isinstance(data_files, Mapping):
        if split not in data_files:
            raise ValueError(f"split {split!r} not in data_files (splits: {sorted(data_files)})")
        data_files = data_files[split]
    elif split != "train":
        raise ValueError(f"split {split!r}: plain data_files only hold the 'train' split")
    if data_files is None:
        raise ValueError(f"source={source!r} needs data_files")
    patterns = [data_files] if isinstance(data_files, str | os.PathLike) else list(data_files)
    files = []
    for pattern in patterns:
        for uri, info in _expand(os.fspath(pattern), storage_options):
            fmt, compression = _split_suffixes(uri)
            fmt = source or fmt
            if fmt is None:
                raise ValueError(f"{uri}: cannot tell the format; pass source='json'/'parquet'")
            # JSON Lines and JSON arrays are one format, told apart by their first byte.
            fmt = "parquet" if fmt == "parquet" else "json"
            size, version = _size_and_version(info)
            files.append(DataFile(uri, fmt, compression, size, version))
    return files
