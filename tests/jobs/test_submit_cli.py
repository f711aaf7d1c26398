"""The submit wrapper's pieces: runtime env template, command line, auth, .rayignore."""

from __future__ import annotations

import fnmatch
from pathlib import Path

import pytest
import yaml

from raytune_chat import _jobs

REPO = Path(__file__).resolve().parents[2]
TEMPLATE = REPO / "jobs" / "runtime_env.yaml"


def test_template_is_a_valid_ray_runtime_env():
    from ray.runtime_env import RuntimeEnv

    template = yaml.safe_load(TEMPLATE.read_text())
    env = RuntimeEnv(**template)  # Ray's own validation of every field
    assert env["env_vars"]["RAY_TQDM"] == "0"
    assert int(env["env_vars"]["RAY_DATA_NON_TTY_PROGRESS_LOG_INTERVAL"]) >= 10
    # The uploaded project installs itself (deps + console script) on the nodes.
    assert template["pip"]["packages"] == ["${RAY_RUNTIME_ENV_CREATE_WORKING_DIR}"]


def test_runtime_env_forwards_only_set_variables_and_keeps_template():
    template = {"pip": ["x"], "env_vars": {"RAY_TQDM": "0"}}
    environ = {"AWS_ENDPOINT_URL": "http://127.0.0.1:9000", "AWS_REGION": "", "OTHER": "1"}
    out = _jobs.build_runtime_env(template, forward=_jobs.ENDPOINT_ENV, environ=environ)
    assert out == {
        "pip": ["x"],
        "env_vars": {"RAY_TQDM": "0", "AWS_ENDPOINT_URL": "http://127.0.0.1:9000"},
    }
    assert template == {"pip": ["x"], "env_vars": {"RAY_TQDM": "0"}}


def test_submit_command_wraps_ray_job_submit():
    cmd = _jobs.build_submit_command(
        ["run", "lora_finetune_single_device", "--config", "tiny/llama3_lora_cpu", "epochs=2"],
        address="http://10.0.0.1:8265",
        runtime_env_path="/tmp/env.yaml",
        working_dir="/repo",
        submission_id="job-1",
        no_wait=True,
        program="python -m raytune_chat._cli",
        ray="ray",
    )
    assert cmd == [
        "ray", "job", "submit", "--address", "http://10.0.0.1:8265",
        "--working-dir", "/repo", "--runtime-env", "/tmp/env.yaml",
        "--submission-id", "job-1", "--no-wait", "--",
        "python", "-m", "raytune_chat._cli",
        "run", "lora_finetune_single_device", "--config", "tiny/llama3_lora_cpu", "epochs=2",
    ]  # fmt: skip


def test_dry_run_renders_credentials_only_when_asked(capsys):
    environ = {"AWS_ENDPOINT_URL": "http://s3.local", "AWS_SECRET_ACCESS_KEY": "s3cr3t"}
    args = ["run", "r", "--config", "c"]
    assert _jobs.submit(args, runtime_env=TEMPLATE, dry_run=True, environ=environ) == 0
    out = capsys.readouterr().out
    assert "AWS_ENDPOINT_URL: http://s3.local" in out and "s3cr3t" not in out
    assert out.splitlines()[0].endswith("-- raytune-chat run r --config c")
    _jobs.submit(
        args, runtime_env=TEMPLATE, dry_run=True, environ=environ, forward_s3_credentials=True
    )
    assert "AWS_SECRET_ACCESS_KEY: s3cr3t" in capsys.readouterr().out


def test_missing_token_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setattr(_jobs, "_TOKEN_FILE", tmp_path / "no_token")
    with pytest.raises(RuntimeError, match="ray get-auth-token"):
        _jobs.submit(["run", "r", "--config", "c"], runtime_env=TEMPLATE, environ={})
    assert _jobs.main(["--runtime-env", str(TEMPLATE), "--", "run", "r", "--config", "c"]) == 2


def test_ray_cli_defaults_to_this_environments():
    cmd = _jobs.build_submit_command(["run"], address=None, runtime_env_path="e.yaml")
    assert Path(cmd[0]).name == "ray" and Path(cmd[0]).exists()
    assert "--address" not in cmd  # the job CLI then uses RAY_API_SERVER_ADDRESS / RAY_ADDRESS


def test_auth_stays_on_unless_mode_is_set():
    assert _jobs._auth_env({})["RAY_AUTH_MODE"] == "token"
    assert _jobs._auth_env({"RAY_AUTH_MODE": "token", "X": "1"})["X"] == "1"


def test_token_sources_follow_rays_order(tmp_path, monkeypatch):
    monkeypatch.setattr(_jobs, "_TOKEN_FILE", tmp_path / "auth_token")
    assert not _jobs._has_token({})
    assert _jobs._has_token({"RAY_AUTH_TOKEN": "abc"})
    assert not _jobs._has_token({"RAY_AUTH_TOKEN_PATH": str(tmp_path / "missing")})
    (tmp_path / "auth_token").write_text("abc")
    assert _jobs._has_token({})


def test_rayignore_keeps_the_upload_to_source():
    patterns = [
        line.strip().rstrip("/")
        for line in (REPO / ".rayignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]

    def ignored(path: str) -> bool:
        return any(
            fnmatch.fnmatch(part, pat) or fnmatch.fnmatch(path, pat)
            for pat in patterns
            for part in path.split("/")
        )

    for path in [".venv", "outputs", "raytune_chat/__pycache__", ".git", "x/adapter.safetensors"]:
        assert ignored(path), path
    for path in ["raytune_chat/_jobs.py", "configs/tiny/llama3_lora_cpu.yaml", "pyproject.toml"]:
        assert not ignored(path), path


def test_default_runtime_env_is_shipped_in_the_package():
    import raytune_chat

    package = Path(raytune_chat.__file__).parent
    assert _jobs.DEFAULT_RUNTIME_ENV == package / "_jobs" / "runtime_env.yaml"
    assert _jobs.DEFAULT_RUNTIME_ENV.read_text() == TEMPLATE.read_text()  # jobs/ links to it


def test_submit_from_any_folder_uses_the_shipped_template(tmp_path, capsys, monkeypatch):
    """No --runtime-env and a folder that is not a checkout: the installed raytune_chat is used."""
    monkeypatch.chdir(tmp_path)
    args = ["run", "r", "--config", "c"]
    assert _jobs.main(["--dry-run", "--", *args]) == 0
    captured = capsys.readouterr()
    rendered = yaml.safe_load(captured.out.split("\n", 1)[1])
    assert rendered["env_vars"]["RAY_TQDM"] == "0" and "pip" not in rendered
    assert "not a raytune_chat checkout" in captured.err
    # From the checkout the template installs the uploaded project, and an explicit
    # --runtime-env still wins.
    custom = tmp_path / "env.yaml"
    custom.write_text("env_vars: {MINE: '1'}\n")
    assert _jobs.main(["--dry-run", "--runtime-env", str(custom), "--working-dir", str(REPO),
                       "--", *args]) == 0  # fmt: skip
    rendered = yaml.safe_load(capsys.readouterr().out.split("\n", 1)[1])
    assert rendered["env_vars"] == {"MINE": "1"}
    assert _jobs.submit(args, working_dir=REPO, dry_run=True, environ={}) == 0
    rendered = yaml.safe_load(capsys.readouterr().out.split("\n", 1)[1])
    assert rendered["pip"]["packages"] == [_jobs.WORKING_DIR_PACKAGE]
