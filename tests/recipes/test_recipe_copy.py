"""torchtune's habit: `cp` a recipe, edit the copy, run `./my_recipe.py`: the workers run it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from raytune_chat._cli import main
from raytune_chat.config import ConfigError
from raytune_chat.recipes import RECIPES, get_recipe, recipe_file
from raytune_chat.training.metric_logging import read_metrics
from tests.recipes._tiny import fast_overrides, sample_conversations, write_chat_file

# The edit a user might make: one more field in every metrics record. The worker writes
# metrics.jsonl, so the field shows that the Ray worker ran the copy's loop, not ours.
LOG_CALL = (
    "    for logger in parts.loggers:\n        logger.log_dict(record, step=position.global_step)\n"
)
EDITED_LOG_CALL = '    record["edited_copy"] = "yes"\n' + LOG_CALL


@pytest.mark.parametrize("name", sorted(RECIPES))
def test_cp_copies_the_recipe_file_and_refuses_to_overwrite(tmp_path, capsys, name):
    dest = tmp_path / "my_recipe.py"
    assert main(["cp", name, str(dest)]) == 0
    assert dest.read_text() == recipe_file(name).read_text()
    assert capsys.readouterr().out.strip() == str(dest)
    assert main(["cp", name, str(dest)]) == 2
    assert "already exists" in capsys.readouterr().err


def test_a_recipe_file_is_loaded_from_its_path_and_pickled_by_value(tmp_path):
    """The copy is not importable anywhere; cloudpickle must ship its code to the workers."""
    import ray.cloudpickle

    copy = tmp_path / "my_recipe.py"
    copy.write_text(recipe_file("lora_finetune_single_device").read_text())
    recipe_main = get_recipe(str(copy))
    assert recipe_main.__code__.co_filename == str(copy)
    loop = recipe_main.__globals__["train_loop_per_worker"]
    payload = ray.cloudpickle.dumps(loop)
    # A fresh interpreter in another folder, where `my_recipe` cannot be imported.
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            "import pickle, sys; f = pickle.loads(sys.stdin.buffer.read()); "
            "print(f.__name__, f.__code__.co_filename)",
        ],
        input=payload,
        capture_output=True,
        cwd=Path(__file__).parents[2],
        timeout=300,
        check=True,
    )
    assert out.stdout.decode().split() == ["train_loop_per_worker", str(copy)]


def test_missing_recipe_file_is_named(tmp_path):
    with pytest.raises(ConfigError, match="recipe file not found: .*my_recipe.py"):
        get_recipe(str(tmp_path / "my_recipe.py"))


@pytest.mark.slow
def test_an_edited_copy_runs_on_the_ray_workers(ray_cluster, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["cp", "lora_finetune_single_device", "my_recipe.py"]) == 0
    text = Path("my_recipe.py").read_text()
    assert text.count(LOG_CALL) == 1
    Path("my_recipe.py").write_text(text.replace(LOG_CALL, EDITED_LOG_CALL))
    data = write_chat_file(tmp_path / "chat.json", sample_conversations(8))
    out = tmp_path / "out"
    args = [*fast_overrides(out, data), "max_steps=2", "ray.name=copy"]
    assert main(["run", "./my_recipe.py", "--config", "tiny/llama3_lora_cpu", *args]) == 0
    records = read_metrics(out / "metrics.jsonl")
    assert [r["step"] for r in records] == [1, 2]
    assert all(r["edited_copy"] == "yes" for r in records)
