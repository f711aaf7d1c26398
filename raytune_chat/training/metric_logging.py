"""Metric loggers named by configs (`torchtune.training.metric_logging.*`).

All loggers share torchtune's small protocol: `log(name, value, step)`,
`log_dict(payload, step)`, `close()`. `DiskLogger` writes one JSON object per line
(`{"step": 3, "loss": 2.1, ...}`) so runs can be read back and plotted.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any, TextIO

__all__ = ["DiskLogger", "StdoutLogger", "read_metrics"]


def _scalar(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value


class DiskLogger:
    """Append metrics as JSON lines to `<log_dir>/<filename>`.

    .. code-block:: yaml

        metric_logger:
          _component_: raytune_chat.training.metric_logging.DiskLogger
          log_dir: ${output_dir}/logs

    Args:
        log_dir: folder for the log (created).
        filename: file name inside `log_dir`; default ``log_<unix time>.jsonl`` as torchtune.

    Example:
        >>> import tempfile
        >>> logger = DiskLogger(log_dir=tempfile.mkdtemp())
        >>> logger.log_dict({"loss": 1.5}, step=1); logger.close()
        >>> read_metrics(logger.path)
        [{'step': 1, 'loss': 1.5}]
    """

    def __init__(self, log_dir: str, filename: str | None = None) -> None:
        self.path = Path(log_dir) / (filename or f"log_{int(time.time())}.jsonl")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file: TextIO | None = None

    def _out(self) -> TextIO:
        if self._file is None:
            self._file = self.path.open("a")
        return self._file

    def truncate_after(self, step: int) -> None:
        """Drop records past `step` (a resumed run re-logs them)."""
        self.close()
        if self.path.exists():
            kept = [r for r in read_metrics(self.path) if r.get("step", 0) <= step]
            self.path.write_text("".join(json.dumps(r) + "\n" for r in kept))

    def log(self, name: str, data: Any, step: int) -> None:
        self.log_dict({name: data}, step)

    def log_dict(self, payload: dict[str, Any], step: int) -> None:
        record = {"step": step, **{k: _scalar(v) for k, v in payload.items()}}
        self._out().write(json.dumps(record) + "\n")
        self._out().flush()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


class StdoutLogger:
    """Print metrics as one `Step N | key: value ...` line each.

    Example:
        >>> StdoutLogger().log_dict({"loss": 1.25}, step=2)
        Step 2 | loss:1.2500
    """

    def __init__(self, stream: TextIO | None = None) -> None:
        self._stream = stream

    def log(self, name: str, data: Any, step: int) -> None:
        self.log_dict({name: data}, step)

    def log_dict(self, payload: dict[str, Any], step: int) -> None:
        parts = []
        for key, value in payload.items():
            value = _scalar(value)
            parts.append(f"{key}:{value:.4f}" if isinstance(value, float) else f"{key}:{value}")
        print(f"Step {step} | " + " ".join(parts), file=self._stream or sys.stdout, flush=True)

    def close(self) -> None:
        pass


def read_metrics(path: str | Path) -> list[dict[str, Any]]:
    """Read a JSON-lines metrics file written by `DiskLogger`."""
    lines = Path(path).read_text().splitlines()
    return [json.loads(line) for line in lines if line.strip()]
