"""Each mistake a user can make ends in one line on stderr naming what to fix, no traceback.

The mistakes met when the data is opened go through the real recipe on the local Ray cluster;
two go through the installed console script in a subprocess, to see the real stderr.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from raytune_chat._cli import main
from tests.recipes._tiny import fast_overrides, sample_conversations, write_chat_file

RUN = ["run", "lora_finetune_single_device", "--config", "tiny/llama3_lora_cpu"]


def _one_line(capsys) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = err.splitlines()
    assert len(lines) == 1, err
    return lines[0]


def _script(*argv: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "raytune_chat._cli", *argv],
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_unknown_recipe_through_the_console_script():
    proc = _script("run", "lora_finetune_single_devise", "--config", "tiny/llama3_lora_cpu")
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert proc.stderr.splitlines() == [
        "raytune-chat: config error: recipe: unknown recipe 'lora_finetune_single_devise'; "
        "known: lora_finetune_single_device, lora_finetune_distributed, generate, generate_batch"
    ]


def test_missing_recipe_file(tmp_path, capsys):
    missing = tmp_path / "my_recipe.py"
    assert main(["run", str(missing), "--config", "tiny/llama3_lora_cpu"]) == 2
    assert _one_line(capsys) == (
        f"raytune-chat: config error: recipe: recipe file not found: {missing}"
    )


def test_broken_yaml_through_the_console_script(tmp_path):
    config = tmp_path / "custom.yaml"
    config.write_text("epochs: 1\nmodel: [unclosed\n")
    proc = _script("validate", str(config))
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    (line,) = proc.stderr.splitlines()
    assert line.startswith("raytune-chat: config error: ") and str(config) in line


def test_missing_config_file(tmp_path, capsys):
    missing = tmp_path / "custom.yaml"
    assert main(["validate", str(missing)]) == 2
    line = _one_line(capsys)
    assert line.startswith("raytune-chat: config error: ")
    assert f"'{missing}' is neither a file nor a built-in config" in line


def test_override_without_equals(capsys):
    assert main(["validate", "tiny/llama3_lora_cpu", "epochs", "3"]) == 2
    assert _one_line(capsys) == (
        "raytune-chat: override 'epochs' has no '=': write key=value, or ~key to drop a key"
    )


@pytest.mark.slow
def test_missing_data_file(ray_cluster, tmp_path, capsys):
    missing = tmp_path / "chat.json"
    assert main([*RUN, *fast_overrides(tmp_path / "out", missing)]) == 1
    line = _one_line(capsys)
    assert line.startswith(f"raytune-chat: data error: data_files '{missing}': cannot list it: ")
    assert "FileNotFoundError" in line


@pytest.mark.slow
def test_unreachable_url(ray_cluster, tmp_path, capsys):
    url = "http://127.0.0.1:9/chat.json"  # the discard port: nothing listens
    assert main([*RUN, *fast_overrides(tmp_path / "out", url)]) == 1
    line = _one_line(capsys)
    assert line.startswith(f"raytune-chat: data error: data_files '{url}': cannot list it: ")


@pytest.mark.slow
def test_wrong_conversation_column(ray_cluster, tmp_path, capsys):
    data = write_chat_file(tmp_path / "chat.json", sample_conversations(3))
    overrides = [*fast_overrides(tmp_path / "out", data), "dataset.conversation_column=dialog"]
    assert main([*RUN, *overrides]) == 2
    assert _one_line(capsys) == (
        f"raytune-chat: config error: conversation_column: 'dialog' is not a column of "
        f"{data}; its rows have columns ['dialogue']"
    )
