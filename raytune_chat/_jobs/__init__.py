"""Submit a ``raytune-chat`` run to a Ray cluster through ``ray job submit``.

The job CLI does the work; this module only builds its command line: the runtime environment
comes from a YAML template (``runtime_env.yaml`` shipped beside this module, also reachable as
``jobs/runtime_env.yaml`` in a checkout) plus selected variables of the submitting
shell (S3 endpoint and region by default, credentials only when asked), and token
authentication stays on (``RAY_AUTH_MODE=token`` unless the caller set the mode explicitly).
No ``ray`` import: the job CLI runs as a subprocess.

Example:
    >>> cmd = build_submit_command(
    ...     ["run", "lora_finetune_single_device", "--config", "tiny/llama3_lora_cpu"],
    ...     address="http://127.0.0.1:8265",
    ...     runtime_env_path="/tmp/env.yaml",
    ... )
    >>> cmd[1:4]
    ['job', 'submit', '--address']
    >>> cmd[cmd.index("--") :]
    ['--', 'raytune-chat', 'run', 'lora_finetune_single_device', '--config', 'tiny/llama3_lora_cpu']
"""

from __future__ import annotations

import argparse
import importlib.resources
import os
import shlex
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

import yaml

__all__ = [
    "CREDENTIAL_ENV",
    "ENDPOINT_ENV",
    "build_runtime_env",
    "build_submit_command",
    "is_project_checkout",
    "main",
    "submit",
    "without_working_dir_install",
]

# Forwarded by default when set in the submitting shell: where the object store is.
ENDPOINT_ENV = ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_REGION", "AWS_DEFAULT_REGION")
# Forwarded only with --forward-s3-credentials: runtime_env values are stored with the job and
# shown to anyone holding the cluster token, so prefer credentials already on the nodes.
CREDENTIAL_ENV = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN")
DEFAULT_RUNTIME_ENV = Path(str(importlib.resources.files(__name__) / "runtime_env.yaml"))
# The template installs the uploaded working dir when it is a raytune_chat source tree.
WORKING_DIR_PACKAGE = "${RAY_RUNTIME_ENV_CREATE_WORKING_DIR}"
_TOKEN_FILE = Path.home() / ".ray" / "auth_token"


def build_runtime_env(
    template: Mapping, *, forward: Sequence[str], environ: Mapping[str, str]
) -> dict:
    """Return the runtime_env dict: the template plus forwarded variables that are set.

    Args:
        template: The parsed runtime_env YAML (``pip``, ``env_vars``, ...).
        forward: Names of variables to copy from ``environ`` into ``env_vars``; unset or
            empty ones are skipped so the cluster nodes' own values apply.
        environ: The submitting process's environment.

    Returns:
        A new dict; ``template`` is not modified.

    Example:
        >>> build_runtime_env({"env_vars": {"A": "1"}}, forward=["B", "C"], environ={"B": "2"})
        {'env_vars': {'A': '1', 'B': '2'}}
    """
    env = dict(template)
    env_vars = {str(k): str(v) for k, v in (template.get("env_vars") or {}).items()}
    env_vars.update({name: environ[name] for name in forward if environ.get(name)})
    env["env_vars"] = env_vars
    return env


def is_project_checkout(folder: str | os.PathLike) -> bool:
    """Whether ``folder`` holds raytune_chat's own ``pyproject.toml`` (pip can install it).

    Example:
        >>> is_project_checkout("/")
        False
    """
    pyproject = Path(folder) / "pyproject.toml"
    if not pyproject.is_file():
        return False
    return 'name = "raytune_chat"' in pyproject.read_text(encoding="utf-8", errors="replace")


def without_working_dir_install(runtime_env: Mapping) -> dict:
    """``runtime_env`` minus the ``pip`` entry that installs the uploaded working dir.

    Used when the working dir is not a raytune_chat checkout (a user who installed the package
    submits from their own folder): the nodes must then already have raytune_chat installed.

    Example:
        >>> without_working_dir_install(
        ...     {"pip": {"packages": ["${RAY_RUNTIME_ENV_CREATE_WORKING_DIR}"]}, "env_vars": {}})
        {'env_vars': {}}
    """
    env = dict(runtime_env)
    pip = env.get("pip")
    packages = pip.get("packages", []) if isinstance(pip, Mapping) else pip
    if isinstance(packages, list) and WORKING_DIR_PACKAGE in packages:
        rest = [p for p in packages if p != WORKING_DIR_PACKAGE]
        if not rest:
            env.pop("pip")
        elif isinstance(pip, Mapping):
            env["pip"] = {**pip, "packages": rest}
        else:
            env["pip"] = rest
    return env


def build_submit_command(
    run_args: Sequence[str],
    *,
    address: str | None,
    runtime_env_path: str | os.PathLike,
    working_dir: str | os.PathLike = ".",
    submission_id: str | None = None,
    no_wait: bool = False,
    program: str = "raytune-chat",
    ray: str | None = None,
) -> list[str]:
    """Return the ``ray job submit`` argv that runs ``<program> <run_args>`` on the cluster.

    Args:
        run_args: Arguments of the entrypoint, e.g. ``["run", "<recipe>", "--config", ...]``.
        address: Dashboard address (``http://head:8265``); None lets the job CLI use
            ``RAY_API_SERVER_ADDRESS``/``RAY_ADDRESS`` or its default.
        runtime_env_path: The rendered runtime_env YAML file.
        working_dir: Directory uploaded as the job's working dir (filtered by ``.rayignore``).
        submission_id: Optional job id (makes resubmission idempotent).
        no_wait: Return after submission instead of following the logs.
        program: Entrypoint program; may hold several words (``"python -m raytune_chat._cli"``).
        ray: The ``ray`` executable; default: the one next to this Python, else ``ray``.

    Returns:
        The argv list.
    """
    cmd = [ray or _ray_executable(), "job", "submit"]
    if address:
        cmd += ["--address", address]
    cmd += ["--working-dir", str(working_dir), "--runtime-env", str(runtime_env_path)]
    if submission_id:
        cmd += ["--submission-id", submission_id]
    if no_wait:
        cmd.append("--no-wait")
    return cmd + ["--", *shlex.split(program), *run_args]


def _ray_executable() -> str:
    """The `ray` CLI of this environment (works without an activated venv), else PATH's."""
    sibling = Path(sys.executable).with_name("ray")
    return str(sibling) if sibling.exists() else "ray"


def _auth_env(environ: Mapping[str, str]) -> dict[str, str]:
    """The job CLI's environment: token auth on unless the caller chose a mode."""
    env = dict(environ)
    env.setdefault("RAY_AUTH_MODE", "token")
    return env


def _has_token(environ: Mapping[str, str]) -> bool:
    """Whether Ray's token loader will find a token (env var, env path, default file)."""
    if environ.get("RAY_AUTH_TOKEN"):
        return True
    path = environ.get("RAY_AUTH_TOKEN_PATH")
    return Path(path).is_file() if path else _TOKEN_FILE.is_file()


def submit(
    run_args: Sequence[str],
    *,
    address: str | None = None,
    runtime_env: str | os.PathLike = DEFAULT_RUNTIME_ENV,
    working_dir: str | os.PathLike = ".",
    forward_env: Sequence[str] = (),
    forward_s3_credentials: bool = False,
    submission_id: str | None = None,
    no_wait: bool = False,
    program: str = "raytune-chat",
    dry_run: bool = False,
    environ: Mapping[str, str] | None = None,
) -> int:
    """Render the runtime env, then run ``ray job submit`` and return its exit status.

    Args:
        run_args: Entrypoint arguments (``run <recipe> --config <cfg> [key=value ...]``).
        address: Dashboard address of the cluster (``http://127.0.0.1:8265``).
        runtime_env: runtime_env YAML template (default: the one shipped with the package).
        working_dir: Directory to upload. When it is not a raytune_chat checkout, the
            template's install of the working dir is left out (the nodes must have
            raytune_chat installed).
        forward_env: Extra variable names to forward besides :data:`ENDPOINT_ENV`.
        forward_s3_credentials: Also forward :data:`CREDENTIAL_ENV` (stored with the job).
        submission_id: Optional job id.
        no_wait: Do not follow the job's logs.
        program: Entrypoint program.
        dry_run: Print the command and the rendered runtime env instead of running.
        environ: Environment to read and pass on (defaults to ``os.environ``).

    Returns:
        The job CLI's exit status (0 when the job succeeded, or was submitted with no_wait).

    Raises:
        FileNotFoundError: ``runtime_env`` does not exist.
        RuntimeError: Token auth is on and no token can be found.
    """
    environ = dict(os.environ if environ is None else environ)
    template = yaml.safe_load(Path(runtime_env).read_text()) or {}
    names = [*ENDPOINT_ENV, *forward_env, *(CREDENTIAL_ENV if forward_s3_credentials else ())]
    rendered = build_runtime_env(template, forward=names, environ=environ)
    if not is_project_checkout(working_dir):
        rendered = without_working_dir_install(rendered)
        print(
            f"raytune-chat submit: {Path(working_dir).resolve()} is not a raytune_chat checkout, "
            "so the job uses the raytune_chat installed on the cluster's nodes",
            file=sys.stderr,
        )
    env = _auth_env(environ)
    if not dry_run and env["RAY_AUTH_MODE"] == "token" and not _has_token(env):
        raise RuntimeError(
            "Ray token authentication is on but no token was found: copy the output of "
            "`ray get-auth-token` on the head node into ~/.ray/auth_token, or set "
            "RAY_AUTH_TOKEN_PATH / RAY_AUTH_TOKEN."
        )
    with tempfile.TemporaryDirectory(prefix="raytune-chat-submit-") as tmp:
        env_path = Path(tmp) / "runtime_env.yaml"
        env_path.write_text(yaml.safe_dump(rendered, sort_keys=False))
        cmd = build_submit_command(
            run_args,
            address=address,
            runtime_env_path=env_path,
            working_dir=working_dir,
            submission_id=submission_id,
            no_wait=no_wait,
            program=program,
        )
        if dry_run:
            print(shlex.join(cmd))
            print(env_path.read_text(), end="")
            return 0
        return subprocess.call(cmd, env=env)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="raytune-chat submit",
        description="Submit a raytune-chat command to a Ray cluster with `ray job submit`.",
        epilog="example: raytune-chat submit --address http://127.0.0.1:8265 -- "
        "run lora_finetune_single_device --config tiny/llama3_lora_cpu",
    )
    p.add_argument("--address", help="dashboard address, e.g. http://127.0.0.1:8265")
    p.add_argument(
        "--runtime-env",
        default=str(DEFAULT_RUNTIME_ENV),
        help="runtime_env YAML template (default: the one shipped with raytune_chat)",
    )
    p.add_argument("--working-dir", default=".", help="directory uploaded with the job")
    p.add_argument(
        "--forward-env",
        action="append",
        default=[],
        metavar="NAME",
        help="also copy this variable of your shell into the job (repeatable)",
    )
    p.add_argument(
        "--forward-s3-credentials",
        action="store_true",
        help="also copy AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY/AWS_SESSION_TOKEN "
        "(stored with the job; prefer credentials on the nodes)",
    )
    p.add_argument("--submission-id", help="job id (default: generated by Ray)")
    p.add_argument("--no-wait", action="store_true", help="return after submitting")
    p.add_argument("--program", default="raytune-chat", help="entrypoint program")
    p.add_argument("--dry-run", action="store_true", help="print the command, run nothing")
    p.add_argument("run_args", nargs=argparse.REMAINDER, help="-- run <recipe> --config ...")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry: ``raytune-chat submit [options] -- run <recipe> --config <cfg>``."""
    args = _parser().parse_args(argv)
    run_args = args.run_args[1:] if args.run_args[:1] == ["--"] else args.run_args
    if not run_args:
        _parser().error("nothing to run: give the raytune-chat command after --")
    try:
        return submit(
            run_args,
            address=args.address,
            runtime_env=args.runtime_env,
            working_dir=args.working_dir,
            forward_env=args.forward_env,
            forward_s3_credentials=args.forward_s3_credentials,
            submission_id=args.submission_id,
            no_wait=args.no_wait,
            program=args.program,
            dry_run=args.dry_run,
        )
    except (RuntimeError, FileNotFoundError) as exc:
        print(f"raytune-chat submit: {exc}", file=sys.stderr)
        return 2
