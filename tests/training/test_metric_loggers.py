"""The experiment trackers torchtune configs name, with their real libraries, offline."""

from __future__ import annotations

import importlib.util
import json
import struct
import time

import pytest
import torch

from raytune_chat.config import check_section
from raytune_chat.training import metric_logging
from raytune_chat.training.metric_logging import (
    CometLogger,
    MLFlowLogger,
    TensorBoardLogger,
    WandBLogger,
)

RECORDS = [(1, {"loss": 2.5, "lr": 1e-4, "epoch": 0}), (2, {"loss": torch.tensor(2.0), "lr": 2e-4})]


def _log_all(logger) -> None:
    for step, payload in RECORDS:
        logger.log_dict({**payload, "run": "not a number"}, step=step)
    logger.log("tokens_per_second", 1234, step=2)
    logger.close()


def test_tensorboard_event_files_read_back(tmp_path):
    event_accumulator = pytest.importorskip(
        "tensorboard.backend.event_processing.event_accumulator"
    )
    logger = TensorBoardLogger(log_dir=str(tmp_path), organize_logs=True)
    assert logger.log_dir.startswith(str(tmp_path / "run_0_"))
    _log_all(logger)
    events = event_accumulator.EventAccumulator(logger.log_dir)
    events.Reload()
    scalars = {tag: [(e.step, e.tensor_proto.float_val[0]) for e in events.Tensors(tag)]
               for tag in events.Tags()["tensors"]}  # fmt: skip
    assert scalars["loss"] == [(1, 2.5), (2, 2.0)]
    assert scalars["lr"] == [(1, pytest.approx(1e-4)), (2, pytest.approx(2e-4))]
    assert scalars["tokens_per_second"] == [(2, 1234.0)]
    assert "run" not in scalars  # strings are not scalars


def test_mlflow_local_file_store_reads_back(tmp_path, monkeypatch):
    mlflow = pytest.importorskip("mlflow")
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # MLflow 3 asks to opt in
    uri = (tmp_path / "mlruns").as_uri()
    logger = MLFlowLogger(experiment_name="chat-lora", tracking_uri=uri, run_name="tiny")
    run_id = logger.run_id
    _log_all(logger)
    client = mlflow.tracking.MlflowClient(tracking_uri=uri)
    run = client.get_run(run_id)
    assert run.info.run_name == "tiny"
    assert client.get_experiment(run.info.experiment_id).name == "chat-lora"
    history = [(m.step, m.value) for m in client.get_metric_history(run_id, "loss")]
    assert sorted(history) == [(1, 2.5), (2, 2.0)]
    assert run.data.metrics["tokens_per_second"] == 1234.0
    assert "run" not in run.data.metrics
    assert run.info.status == "FINISHED"


def _wandb_history(path) -> list[dict]:
    """The history rows of an offline run's ``run-*.wandb`` file (W&B's LevelDB-style log of
    protobuf records: 7-byte file header, 32 KiB blocks, records split into pieces)."""
    from wandb.proto import wandb_internal_pb2

    data = path.read_bytes()
    assert struct.unpack("<4sHB", data[:7]) == (b":W&B", 0xBEE1, 0)
    rows, pos, pending, block = [], 7, b"", 32768
    while pos + 7 <= len(data):
        if block - pos % block < 7:  # a block's tail too short for a header is padding
            pos += block - pos % block
            continue
        _, length, kind = struct.unpack("<IHB", data[pos : pos + 7])
        pending += data[pos + 7 : pos + 7 + length]
        pos += 7 + length
        if kind in (1, 4) and pending:  # a FULL record, or the LAST piece of one
            record = wandb_internal_pb2.Record.FromString(pending)
            pending = b""
            if record.WhichOneof("record_type") == "history":
                items = record.history.item
                rows.append(
                    {i.key or ".".join(i.nested_key): json.loads(i.value_json) for i in items}
                )
    return rows


@pytest.mark.slow
def test_wandb_offline_run_log_reads_back(tmp_path, monkeypatch):
    pytest.importorskip("wandb")
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    logger = WandBLogger(project="chat-lora", log_dir=str(tmp_path / "wandb"), name="tiny")
    _log_all(logger)
    (log,) = (tmp_path / "wandb" / "wandb").glob("offline-run-*/run-*.wandb")
    # W&B's service process writes the log on its own; on a loaded machine it may still be
    # writing when finish() returns.
    deadline = time.monotonic() + 60
    while len(_wandb_history(log)) < 3 and time.monotonic() < deadline:
        time.sleep(0.2)
    rows = [{k: v for k, v in r.items() if not k.startswith("_")} for r in _wandb_history(log)]
    assert rows == [
        {"loss": 2.5, "lr": 1e-4, "epoch": 0, "global_step": 1},
        {"loss": 2.0, "lr": 2e-4, "global_step": 2},
        {"tokens_per_second": 1234, "global_step": 2},
    ]


def test_comet_logger_is_importable_and_checked_like_torchtune():
    section = {
        "_component_": "torchtune.training.metric_logging.CometLogger",
        "api_key": "k",
        "workspace": "w",
        "project": "p",
        "experiment_key": None,
        "mode": "get_or_create",
        "online": False,
        "experiment_name": "e",
        "tags": ["a"],
        "log_code": False,
    }
    assert check_section(section, key="metric_logger") is CometLogger
    if importlib.util.find_spec("comet_ml") is None:
        with pytest.raises(ImportError, match=r"pip install 'raytune_chat\[comet\]'"):
            CometLogger(project="p")


@pytest.mark.parametrize(
    ("logger", "module", "extra"),
    [
        (lambda: WandBLogger(), "wandb", "wandb"),
        (lambda: TensorBoardLogger(log_dir="/tmp/x"), "tensorboard", "tensorboard"),
        (lambda: MLFlowLogger(), "mlflow", "mlflow"),
    ],
)
def test_a_missing_library_names_its_extra(monkeypatch, logger, module, extra):
    real = metric_logging.importlib.import_module

    def fake_import(name, *args):
        if name.split(".")[0] == module:
            raise ImportError(f"No module named {module!r}")
        return real(name, *args)

    monkeypatch.setattr(metric_logging.importlib, "import_module", fake_import)
    with pytest.raises(
        ImportError, match=rf"needs {module}: pip install 'raytune_chat\[{extra}\]'"
    ):
        logger()


def test_trackers_stay_silent_off_rank_0(tmp_path, monkeypatch):
    pytest.importorskip("tensorboard")
    pytest.importorskip("mlflow")
    monkeypatch.setattr(metric_logging, "_rank", lambda: 1)
    tensorboard = TensorBoardLogger(log_dir=str(tmp_path / "tb"), organize_logs=False)
    mlflow_logger = MLFlowLogger(tracking_uri=(tmp_path / "mlruns").as_uri())
    assert mlflow_logger.run_id is None
    _log_all(tensorboard)
    _log_all(mlflow_logger)
    assert not (tmp_path / "tb").exists() and not (tmp_path / "mlruns").exists()
