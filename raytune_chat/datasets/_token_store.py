"""Token stores: tokenized rows in Parquet, written during the one pass that tokenizes them.

Plain Python (fsspec, pyarrow), no Ray. A store is a folder, local or any fsspec URI::

    <folder>/part-00000000000000000000.parquet   one file per tokenized batch, named by the
    <folder>/part-00000000000000000512.parquet   batch's first record id (so sorted names are
    ...                                          the pipeline's order, and a batch written
    <folder>/manifest.json                       twice overwrites itself)

The tokenize stage writes each part as it goes; the pass ledger writes ``manifest.json``
last, once every record of the pass has been counted. A store without its manifest is
incomplete and never read as a cache. The manifest holds the format, the key of what was
tokenized (:func:`store_key`), the parts in order with their row and token counts, and the
pass's statistics, so a run reading it knows its exact row count without reading any part.
A folder of Parquet files with the tokenized columns but no manifest (written by another
tool) can still be read as ``source="tokenized"``; its row counts come from the footers.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import fsspec
import pyarrow as pa
import pyarrow.parquet as pq

from raytune_chat.datasets._files import storage_options_for

__all__ = [
    "FORMAT",
    "MANIFEST",
    "StorePart",
    "TokenStore",
    "find_store",
    "store_key",
    "tokenizer_fingerprint",
]

FORMAT = "raytune_chat.tokenized/1"
MANIFEST = "manifest.json"


def store_key(inputs: Mapping[str, Any]) -> str:
    """A short hash of everything that decides the tokens of a store (see the README).

    Example:
        >>> store_key({"b": 1, "a": [2]}) == store_key({"a": [2], "b": 1})
        True
    """
    text = json.dumps({"format": FORMAT, **inputs}, sort_keys=True, default=repr)
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def _canonical(value: Any, depth: int = 0) -> Any:
    """A JSON-able digest of an object's configuration: public attributes, and the bytes
    (model files) among its private ones; private caches that fill as it runs are left out."""
    if value is None or isinstance(value, str | int | float | bool):
        return value
    if isinstance(value, bytes | bytearray):
        return "sha256:" + hashlib.sha256(value).hexdigest()
    if depth > 6:
        return "..."
    if isinstance(value, list | tuple):
        return [_canonical(v, depth + 1) for v in value]
    if isinstance(value, set | frozenset):
        return sorted((_canonical(v, depth + 1) for v in value), key=repr)
    if isinstance(value, Mapping):
        return {str(k): _canonical(v, depth + 1) for k, v in value.items()}
    name = f"{type(value).__module__}.{type(value).__qualname__}"
    state = getattr(value, "__dict__", None)
    if state is None:
        return name
    kept = {
        k: _canonical(v, depth + 1)
        for k, v in state.items()
        if not k.startswith("_") or isinstance(v, bytes | bytearray)
    }
    return {"__class__": name, **kept}


def _probe_messages() -> list[list[Any]]:
    from raytune_chat.data import Message

    long = " ".join(f"word{i}" for i in range(3000))
    return [
        [
            Message(role="system", content="Be brief.  ", masked=True),
            Message(role="user", content=" Hi <|eot_id|> [INST] there\n\n", masked=True),
            Message(role="assistant", content="Hello!\tcafé 東京 🙂"),
        ],
        [Message(role="user", content=long, masked=True), Message(role="assistant", content=long)],
        [
            Message(role="user", content="2+2?", masked=True),
            Message(role="assistant", content="call()", ipython=True, eot=False),
            Message(role="ipython", content="4", masked=True),
            Message(role="assistant", content="4"),
        ],
    ]


def tokenizer_fingerprint(tokenizer: Any) -> str:
    """A hash that changes when the tokens a tokenizer produces can change.

    It covers the tokenizer's configuration (model file bytes, special tokens, template,
    ``max_seq_len``, truncation: :func:`_canonical`) and, for what that may miss, the
    tokens and masks of a few probe conversations (special-token text, whitespace,
    truncation, tool turns).
    """
    probes = []
    for messages in _probe_messages():
        try:
            tokens, mask = tokenizer.tokenize_messages(messages)
            probes.append([list(map(int, tokens)), list(map(bool, mask))])
        except Exception as exc:  # noqa: BLE001 - a refusal is also part of its behaviour
            probes.append(type(exc).__name__)
    text = json.dumps({"state": _canonical(tokenizer), "probes": probes}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True)
class StorePart:
    """One Parquet file of a store, with its row and token counts (tokens may be unknown)."""

    path: str
    rows: int
    tokens: int | None = None


@dataclass(frozen=True)
class TokenStore:
    """A token store folder; see the module docstring.

    Args:
        path: the folder (local path or URI).
        storage_options: fsspec options for it.
        key: the key a complete store must carry to be used (None: any).
        inputs: what the key was computed from, recorded in the manifest for people.
        part_paths: explicit Parquet files instead of a folder's parts (read only).
    """

    path: str
    storage_options: Mapping[str, Any] = field(default_factory=dict)
    key: str | None = None
    inputs: Mapping[str, Any] = field(default_factory=dict, compare=False)
    part_paths: tuple[str, ...] = ()

    def _fs(self) -> tuple[Any, str]:
        fs, root = fsspec.core.url_to_fs(
            self.path, **storage_options_for(self.path, self.storage_options)
        )
        return fs, root.rstrip("/")

    def _uri(self, fs: Any, path: str) -> str:
        return fs.unstrip_protocol(path) if "://" in self.path else path

    @staticmethod
    def part_name(key: int) -> str:
        return f"part-{key:020d}.parquet"

    def write_part(self, key: int, table: pa.Table) -> None:
        """Write one batch's rows (idempotent: the same batch always lands in the same file)."""
        fs, root = self._fs()
        fs.makedirs(root, exist_ok=True)
        with fs.open(f"{root}/{self.part_name(key)}", "wb") as f:
            pq.write_table(table, f)

    def manifest(self) -> dict[str, Any] | None:
        """The manifest if the store is complete (and has the expected key), else None."""
        fs, root = self._fs()
        try:
            with fs.open(f"{root}/{MANIFEST}", "rb") as f:
                manifest = json.loads(f.read())
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            raise OSError(f"cannot read the token store manifest {root}/{MANIFEST}: {exc}") from exc
        if manifest.get("format") != FORMAT:
            return None
        if self.key is not None and manifest.get("key") != self.key:
            return None
        return manifest

    def complete(self) -> bool:
        return self.manifest() is not None

    def write_manifest(
        self, parts: Sequence[tuple[int, int, int]], stats: Mapping[str, Any]
    ) -> None:
        """Mark the store complete: ``parts`` are (batch key, rows, tokens) in order."""
        fs, root = self._fs()
        fs.makedirs(root, exist_ok=True)
        manifest = {
            "format": FORMAT,
            "key": self.key,
            "inputs": dict(self.inputs),
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "parts": [
                {"name": self.part_name(k), "rows": rows, "tokens": tokens}
                for k, rows, tokens in parts
            ],
            "stats": dict(stats),
        }
        text = json.dumps(manifest, indent=1, default=repr).encode()
        # Written under another name, then moved: a reader never sees half a manifest.
        tmp = f"{root}/.{MANIFEST}.{time.time_ns()}"
        fs.pipe_file(tmp, text)
        fs.mv(tmp, f"{root}/{MANIFEST}")

    def parts(self) -> list[StorePart]:
        """The store's Parquet files in order, with their counts.

        Raises:
            FileNotFoundError: a keyed store without its manifest (not complete yet), or a
                folder with neither a manifest nor Parquet files.
        """
        fs, root = self._fs()
        manifest = None if self.part_paths else self.manifest()
        if manifest is None and self.key is not None:
            raise FileNotFoundError(f"the token store {self.path} is not complete")
        if manifest is not None:
            return [
                StorePart(self._uri(fs, f"{root}/{p['name']}"), p["rows"], p.get("tokens"))
                for p in manifest["parts"]
            ]
        if self.part_paths:
            paths = list(self.part_paths)
        else:
            paths = [self._uri(fs, p) for p in sorted(fs.glob(f"{root}/*.parquet"))]
        if not paths:
            raise FileNotFoundError(f"{self.path} holds no manifest.json and no .parquet files")
        out = []
        for path in paths:
            pfs, ppath = fsspec.core.url_to_fs(
                path, **storage_options_for(path, self.storage_options)
            )
            with pfs.open(ppath, "rb") as f:
                out.append(StorePart(path, pq.ParquetFile(f).metadata.num_rows))
        return out


def find_store(folder: str, storage_options: Mapping[str, Any] | None = None) -> TokenStore:
    """The store at ``folder``, or the one complete store in a subfolder of it.

    ``raytune-chat prepare --out <dir>`` writes its store to ``<dir>/<key>/``; pointing
    ``data_files`` at ``<dir>`` finds it.

    Raises:
        ValueError: ``folder`` holds several complete stores (name the one to use).
    """
    store = TokenStore(folder, dict(storage_options or {}))
    fs, root = store._fs()
    if fs.exists(f"{root}/{MANIFEST}") or fs.glob(f"{root}/*.parquet"):
        return store
    found = sorted(p.rsplit("/", 2)[-2] for p in fs.glob(f"{root}/*/{MANIFEST}"))
    if len(found) > 1:
        raise ValueError(
            f"{folder} holds {len(found)} prepared datasets ({', '.join(found)}); "
            f"set data_files to one of them"
        )
    if found:
        return TokenStore(f"{folder.rstrip('/')}/{found[0]}", store.storage_options)
    return store
