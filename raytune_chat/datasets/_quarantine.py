"""Quarantine of bad rows: JSON Lines records under ``rejected_path``, and their summary.

Plain Python, no Ray. Every rejected row becomes one record::

    {"source": "s3://b/x.jsonl", "line": 12, "row": null, "reason": "invalid_json",
     "message": "Expecting ',' delimiter: line 1 column 9 (char 8)", "raw": "{\\"a\\": 1 2}"}

``line`` is the 1-based line of a JSON Lines file, ``row`` the 0-based item of a JSON array
or Parquet file; ``raw`` is the row's text cut to ``MAX_RAW_BYTES``. Each map-stage batch
with rejects writes its own file, named after the batch's first record, so any fsspec
filesystem (no appends on S3) works and a batch processed twice overwrites its own file;
readers also deduplicate on (source, line, row).
"""

from __future__ import annotations

import json
import uuid
from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any

import fsspec

from raytune_chat.datasets._files import storage_options_for

__all__ = [
    "MAX_RAW_BYTES",
    "QuarantineWriter",
    "TooManyRejectedRows",
    "make_reject",
    "read_rejects",
    "summarize_reasons",
]

MAX_RAW_BYTES = 4096


class TooManyRejectedRows(RuntimeError):
    """More rows than ``max_rejected_fraction`` were rejected; the message lists the reasons."""


def make_reject(
    *, source: str, line: int, row: int, reason: str, message: str, raw: bytes
) -> dict[str, Any]:
    """One quarantine record (``line`` / ``row`` of -1 become null).

    Example:
        >>> make_reject(source="a.jsonl", line=3, row=-1, reason="invalid_json",
        ...             message="bad", raw=b"{x")["line"]
        3
    """
    text = raw[:MAX_RAW_BYTES].decode("utf-8", errors="replace")
    return {
        "source": source,
        "line": line if line >= 0 else None,
        "row": row if row >= 0 else None,
        "reason": reason,
        "message": message,
        "raw": text,
        "raw_truncated": len(raw) > MAX_RAW_BYTES,
    }


class QuarantineWriter:
    """Writes batches of reject records as new JSONL files under ``rejected_path``."""

    def __init__(self, rejected_path: str, storage_options: Mapping[str, Any] | None = None):
        self.rejected_path = rejected_path.rstrip("/")
        self._options = storage_options_for(rejected_path, storage_options)
        self._prefix = f"rejected-{uuid.uuid4().hex[:12]}"
        self._count = 0
        self._made_dir = False

    def write(self, records: list[dict[str, Any]], name: str | None = None) -> str | None:
        """Write ``records`` to the file ``name`` (``rejected-*.jsonl``; default: a new name).

        Returns its path, or None when there is nothing to write.
        """
        if not records:
            return None
        fs, root = fsspec.core.url_to_fs(self.rejected_path, **self._options)
        if not self._made_dir:
            fs.makedirs(root, exist_ok=True)
            self._made_dir = True
        self._count += 1
        path = f"{root}/{name or f'{self._prefix}-{self._count:06d}.jsonl'}"
        with fs.open(path, "w", encoding="utf-8") as f:
            f.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in records)
        return path


def read_rejects(
    rejected_path: str, storage_options: Mapping[str, Any] | None = None
) -> list[dict[str, Any]]:
    """All reject records under ``rejected_path``, deduplicated on (source, line, row)."""
    fs, root = fsspec.core.url_to_fs(
        rejected_path, **storage_options_for(rejected_path, storage_options)
    )
    if not fs.exists(root):
        return []
    seen: dict[tuple, dict[str, Any]] = {}
    for path in sorted(fs.glob(f"{root.rstrip('/')}/rejected-*.jsonl")):
        with fs.open(path, "r", encoding="utf-8") as f:
            for text in f:
                record = json.loads(text)
                seen.setdefault((record["source"], record["line"], record["row"]), record)
    return list(seen.values())


def summarize_reasons(reasons: Iterable[str] | Mapping[str, int], *, total: int) -> str:
    """A one-line summary such as ``"12 of 1000 rows rejected (1.20%): invalid_json 10, ..."``.

    Example:
        >>> summarize_reasons(["invalid_json", "unknown_role", "invalid_json"], total=10)
        '3 of 10 rows rejected (30.00%): invalid_json 2, unknown_role 1'
    """
    counts = Counter(reasons) if not isinstance(reasons, Mapping) else Counter(dict(reasons))
    rejected = sum(counts.values())
    share = 100.0 * rejected / total if total else 0.0
    parts = ", ".join(f"{reason} {n}" for reason, n in counts.most_common())
    return f"{rejected} of {total} rows rejected ({share:.2f}%): {parts}"
