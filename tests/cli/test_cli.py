"""The `raytune-chat` command line: each subcommand through `main(argv)`."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from raytune_chat._cli import main
from raytune_chat.config import find_config
from tests.recipes._tiny import sample_conversations, write_chat_file

REPO = Path(__file__).resolve().parents[2]


def test_ls_lists_recipes_and_builtin_configs(capsys):
    assert main(["ls"]) == 0
    out = capsys.readouterr().out
    for name in (
        "lora_finetune_single_device",
        "lora_finetune_distributed",
        "llama3/8B_lora_single_device",
        "tiny/llama3_lora_cpu",
        "llama2/7B_lora_single_device",
    ):
        assert name in out


def test_cp_copies_and_refuses_to_overwrite(tmp_path, capsys):
    dest = tmp_path / "custom.yaml"
    assert main(["cp", "llama3/8B_lora_single_device", str(dest)]) == 0
    assert dest.read_text() == find_config("llama3/8B_lora_single_device").read_text()
    assert main(["cp", "llama3/8B_lora_single_device", str(dest)]) == 2
    assert "already exists" in capsys.readouterr().err


def test_validate_ok_and_errors_name_the_key(capsys):
    assert main(["validate", "tiny/llama3_lora_cpu"]) == 0
    assert "OK" in capsys.readouterr().out
    assert main(["validate", "tiny/llama3_lora_cpu", "model.lora_rnak=4"]) == 2
    assert "model.lora_rnak" in capsys.readouterr().err
    assert main(["validate", "tiny/llama3_lora_cpu", "~tokenizer"]) == 2
    assert "tokenizer" in capsys.readouterr().err


def test_run_checks_the_config_before_starting_anything(capsys):
    assert (
        main(
            [
                "run",
                "lora_finetune_single_device",
                "--config",
                "tiny/llama3_lora_cpu",
                "optimizer._component_=torchtune.optim.Lion",
            ]
        )
        == 2
    )
    assert "optimizer._component_" in capsys.readouterr().err
    assert main(["run", "lora_finetune_single_device", "--config", "nope/missing"]) == 2
    assert (
        main(["run", "lora_finetune_single_device", "--config", "tiny/llama3_lora_cpu", "stray"])
        == 2
    )


def test_console_script_module_runs():
    proc = subprocess.run(
        [sys.executable, "-m", "raytune_chat._cli", "ls"],
        capture_output=True,
        text=True,
        check=True,
        cwd=REPO,
    )
    assert "tiny/llama3_lora_cpu" in proc.stdout


@pytest.mark.slow
def test_preview_highlights_trained_tokens(ray_cluster, tmp_path, capsys):
    data = write_chat_file(tmp_path / "chat.json", sample_conversations(3))
    assert (
        main(
            [
                "preview",
                "tiny/llama3_lora_cpu",
                "-n",
                "2",
                f"dataset.data_files={data}",
                f"output_dir={tmp_path}",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert out.count("--- sample") == 2
    first_answer = sample_conversations(1)[0]["dialogue"][1]["value"]
    assert "decoded:" in out and first_answer in out
    # the assistant header and reply are trained ([[...]]), the user turn is not
    assert "[[assistant]]" in out and "[[<|eot_id|>]]" in out
    assert "[[user]]" not in out


@pytest.mark.slow
def test_prepare_tokenizes_once_into_a_store_that_reads_back(ray_cluster, tmp_path, capsys):
    import pyarrow.parquet as pq

    data = write_chat_file(tmp_path / "chat.json", sample_conversations(5))
    out = tmp_path / "tokenized"
    argv = [
        "prepare",
        "tiny/llama3_lora_cpu",
        "--out",
        str(out),
        f"dataset.data_files={data}",
        f"output_dir={tmp_path}",
    ]
    assert main(argv) == 0
    (store,) = [p.parent for p in out.glob("*/manifest.json")]
    manifest = json.loads((store / "manifest.json").read_text())
    assert manifest["stats"]["rows_kept"] == 5 and manifest["stats"]["rows_tokenized"] == 5
    table = pq.read_table([store / p["name"] for p in manifest["parts"]])
    assert table.num_rows == 5
    assert {"tokens", "labels", "num_trained_tokens", "row_id"} <= set(table.column_names)
    assert f"wrote 5 tokenized conversations in {store}" in capsys.readouterr().out
    assert main(argv) == 0  # the same config again: the complete store is found, not redone
    assert f"found 5 tokenized conversations in {store}" in capsys.readouterr().out
