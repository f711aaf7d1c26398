"""Metric loggers named by configs (`torchtune.training.metric_logging.*`).

All loggers share torchtune's small protocol: `log(name, value, step)`,
`log_dict(payload, step)`, `close()`. `DiskLogger` writes one JSON object per line
(`{"step": 3, "loss": 2.1, ...}`) so runs can be read back and plotted.

The experiment trackers (`WandBLogger`, `TensorBoardLogger`, `MLFlowLogger`, `CometLogger`)
take torchtune 0.6.1's arguments. Each needs its library, an optional extra
(`pip install 'raytune_chat[wandb]'` ...), imported only when the logger is built. They act on
rank 0 only: the recipe builds them on rank 0 alone, and a logger built on another rank of a
`torch.distributed` group stays silent, as torchtune's do.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TextIO

__all__ = [
    "CometLogger",
    "DiskLogger",
    "MLFlowLogger",
    "StdoutLogger",
    "TensorBoardLogger",
    "WandBLogger",
    "read_metrics",
]


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


def _import_extra(module: str, logger: str, extra: str) -> Any:
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ImportError(
            f"{logger} needs {module.split('.')[0]}: pip install 'raytune_chat[{extra}]'"
        ) from exc


def _rank() -> int:
    """This process's rank in a `torch.distributed` group (0 outside one)."""
    import torch.distributed as dist

    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def _numbers(payload: Mapping[str, Any]) -> dict[str, float]:
    """The numeric entries of a record (trackers take scalars only), as floats."""
    out = {}
    for key, value in payload.items():
        value = _scalar(value)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            out[key] = float(value)
    return out


class WandBLogger:
    """Log to Weights & Biases (torchtune's arguments; ``WANDB_MODE=offline`` works offline).

    .. code-block:: yaml

        metric_logger:
          _component_: raytune_chat.training.metric_logging.WandBLogger
          project: my-project
          log_dir: ${output_dir}/wandb

    Args:
        project: W&B project.
        entity: W&B entity (user or team); default the API key's.
        group: Group runs together.
        log_dir: Where W&B keeps its local files (``dir`` of ``wandb.init``).
        **kwargs: Passed to ``wandb.init`` (``name``, ``mode``, ``tags``, ...).

    Raises:
        ImportError: Naming the ``wandb`` extra when the library is missing.
    """

    def __init__(
        self,
        project: str = "torchtune",
        entity: str | None = None,
        group: str | None = None,
        log_dir: str | None = None,
        **kwargs: Any,
    ) -> None:
        self._wandb = _import_extra("wandb", "WandBLogger", "wandb")
        self.log_dir = kwargs.pop("dir", log_dir)
        if self.log_dir is not None:
            Path(self.log_dir).mkdir(parents=True, exist_ok=True)
        self._run = None
        if _rank() == 0:
            self._run = self._wandb.run or self._wandb.init(
                project=project, entity=entity, group=group, dir=self.log_dir, **kwargs
            )
            # Plot against our optimizer step, not W&B's own call counter.
            self._run.define_metric("global_step")
            self._run.define_metric("*", step_metric="global_step", step_sync=True)

    def log(self, name: str, data: Any, step: int) -> None:
        self.log_dict({name: data}, step)

    def log_dict(self, payload: dict[str, Any], step: int) -> None:
        if self._run is not None:
            self._run.log({**_numbers(payload), "global_step": step})

    def close(self) -> None:
        if self._run is not None:
            self._run.finish()
            self._run = None


class TensorBoardLogger:
    """Write TensorBoard event files with ``torch.utils.tensorboard`` (the ``tensorboard`` extra).

    .. code-block:: yaml

        metric_logger:
          _component_: raytune_chat.training.metric_logging.TensorBoardLogger
          log_dir: ${output_dir}/tensorboard

    Args:
        log_dir: Folder for the event files.
        organize_logs: Write into a fresh ``run_<rank>_<unix time>`` subfolder of ``log_dir``
            (torchtune's default), so reruns appear as separate runs.
        **kwargs: Accepted and ignored, as torchtune does.

    Raises:
        ImportError: Naming the ``tensorboard`` extra when the library is missing.
    """

    def __init__(self, log_dir: str, organize_logs: bool = True, **kwargs: Any) -> None:
        del kwargs
        _import_extra("tensorboard", "TensorBoardLogger", "tensorboard")
        summary = importlib.import_module("torch.utils.tensorboard")
        rank = _rank()
        self.log_dir = (
            os.path.join(log_dir, f"run_{rank}_{time.time()}") if organize_logs else log_dir
        )
        self._writer = summary.SummaryWriter(log_dir=self.log_dir) if rank == 0 else None

    def log(self, name: str, data: Any, step: int) -> None:
        self.log_dict({name: data}, step)

    def log_dict(self, payload: dict[str, Any], step: int) -> None:
        if self._writer is None:
            return
        for name, value in _numbers(payload).items():
            self._writer.add_scalar(name, value, global_step=step, new_style=True)
        self._writer.flush()

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None


class MLFlowLogger:
    """Log metrics to an MLflow run (the ``mlflow`` extra: ``mlflow-skinny`` suffices).

    .. code-block:: yaml

        metric_logger:
          _component_: raytune_chat.training.metric_logging.MLFlowLogger
          experiment_name: chat-lora
          tracking_uri: sqlite:///${output_dir}/mlflow.db

    A ``file://`` store also works; MLflow 3 then wants ``MLFLOW_ALLOW_FILE_STORE=true``.

    Args:
        experiment_name: Experiment to log under (created if missing); default
            ``MLFLOW_EXPERIMENT_NAME`` or MLflow's default experiment.
        tracking_uri: Where runs are stored; default ``MLFLOW_TRACKING_URI`` or MLflow's.
        run_id: Resume logging into this run; default ``MLFLOW_RUN_ID`` or a new run.
        run_name: Name of a new run.

    Raises:
        ImportError: Naming the ``mlflow`` extra when the library is missing.
    """

    def __init__(
        self,
        experiment_name: str | None = None,
        tracking_uri: str | None = None,
        run_id: str | None = None,
        run_name: str | None = None,
    ) -> None:
        self._mlflow = _import_extra("mlflow", "MLFlowLogger", "mlflow")
        self.run_id: str | None = None
        if _rank() != 0:
            return
        tracking_uri = tracking_uri or os.getenv("MLFLOW_TRACKING_URI")
        experiment_name = experiment_name or os.getenv("MLFLOW_EXPERIMENT_NAME")
        if tracking_uri:
            self._mlflow.set_tracking_uri(tracking_uri)
        if experiment_name:
            self._mlflow.set_experiment(experiment_name)
        run = self._mlflow.start_run(run_id=run_id or os.getenv("MLFLOW_RUN_ID"), run_name=run_name)
        self.run_id = run.info.run_id

    def log(self, name: str, data: Any, step: int) -> None:
        self.log_dict({name: data}, step)

    def log_dict(self, payload: dict[str, Any], step: int) -> None:
        if self.run_id is not None:
            self._mlflow.log_metrics(_numbers(payload), step=step, run_id=self.run_id)

    def close(self) -> None:
        if self.run_id is not None:
            self._mlflow.end_run()
            self.run_id = None


class CometLogger:
    """Log to Comet (the ``comet`` extra), with torchtune 0.6.1's arguments.

    .. code-block:: yaml

        metric_logger:
          _component_: raytune_chat.training.metric_logging.CometLogger
          project: chat-lora

    Args:
        api_key: Comet API key (better: ``comet login`` or ``COMET_API_KEY``).
        workspace: Comet workspace; default the account's.
        project: Comet project; default "Uncategorized".
        experiment_key: Continue this experiment instead of starting one.
        mode: ``"create"``, ``"get"`` or ``"get_or_create"`` (see ``comet_ml.start``).
        online: False logs offline to a local archive.
        experiment_name: Name of the experiment.
        tags: Tags of the experiment.
        log_code: Log the calling script's source.
        **kwargs: More ``comet_ml.ExperimentConfig`` settings.

    Raises:
        ImportError: Naming the ``comet`` extra when the library is missing.
    """

    def __init__(
        self,
        api_key: str | None = None,
        workspace: str | None = None,
        project: str | None = None,
        experiment_key: str | None = None,
        mode: str | None = None,
        online: bool | None = None,
        experiment_name: str | None = None,
        tags: list[str] | None = None,
        log_code: bool = True,
        **kwargs: Any,
    ) -> None:
        comet_ml = _import_extra("comet_ml", "CometLogger", "comet")
        self._experiment = None
        if _rank() != 0:
            return
        config = comet_ml.ExperimentConfig(
            name=experiment_name, tags=tags, log_code=log_code, **kwargs
        )
        self._experiment = comet_ml.start(
            api_key=api_key,
            workspace=workspace,
            project=project,
            experiment_key=experiment_key,
            mode=mode,
            online=online,
            experiment_config=config,
        )

    def log(self, name: str, data: Any, step: int) -> None:
        self.log_dict({name: data}, step)

    def log_dict(self, payload: dict[str, Any], step: int) -> None:
        if self._experiment is not None:
            self._experiment.log_metrics(_numbers(payload), step=step)

    def close(self) -> None:
        if self._experiment is not None:
            self._experiment.end()
            self._experiment = None


def read_metrics(path: str | Path) -> list[dict[str, Any]]:
    """Read a JSON-lines metrics file written by `DiskLogger`."""
    lines = Path(path).read_text().splitlines()
    return [json.loads(line) for line in lines if line.strip()]
