"""A private `ray start --head` cluster on 127.0.0.1 for job-submission tests, with more nodes
on the same machine when asked (`add_node`: `ray start --address`).

It never touches clusters it did not start: its own temp dirs, one per node (so
`ray.init(address="local")` in other tests and `/tmp/ray/session_latest` are untouched), its
own free ports, its own auth token file (RAY_AUTH_TOKEN_PATH, so ~/.ray/auth_token is neither
read nor written), and `stop()` ends only the processes whose command line names one of those
temp dirs plus their descendants, instead of `ray stop` (which kills every Ray process on the
machine).
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import psutil
import yaml

_BIN = Path(sys.executable).parent
_PORT_FLAGS = (
    "--port",
    "--dashboard-port",
    "--ray-client-server-port",
    "--node-manager-port",
    "--object-manager-port",
    "--dashboard-agent-listen-port",
    "--dashboard-agent-grpc-port",
    "--runtime-env-agent-port",
    "--metrics-export-port",
)
# The ports of a node that joins a head (the others are the head's alone).
_NODE_PORT_FLAGS = _PORT_FLAGS[3:]
TERMINAL = ("SUCCEEDED", "FAILED", "STOPPED")


def node_ip_address() -> str:
    """The address Ray registers this node under (it maps 127.0.0.1 to it)."""
    from ray._private.services import get_node_ip_address

    return get_node_ip_address()


def free_ports(n: int) -> list[int]:
    """Return n distinct ports that were free on 127.0.0.1 a moment ago."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


class LocalRayCluster:
    """One head node started with the `ray` CLI, token auth on, stopped by temp dir.

    Args:
        root: Empty folder for the cluster's temp dir and token. Keep its path short: Ray's
            Unix sockets live below it and a socket path may not exceed 107 bytes.
        num_cpus: Logical CPUs of the head node.
        env: Extra environment for the Ray processes (inherited by jobs' drivers and workers).
        labels: Ray node labels of the head (`ray start --labels`).
    """

    def __init__(
        self,
        root: Path,
        *,
        num_cpus: int = 2,
        env: dict[str, str] | None = None,
        labels: dict[str, str] | None = None,
    ):
        self.root = Path(root)
        self.temp_dir = self.root / "ray"
        self.token_path = self.root / "auth_token"
        self.num_cpus = num_cpus
        self.extra_env = dict(env or {})
        self.labels = dict(labels or {})
        self.ports: dict[str, int] = {}
        self.node_temp_dirs: dict[str, Path] = {}  # nodes added with add_node, by name

    @property
    def dashboard_address(self) -> str:
        return f"http://127.0.0.1:{self.ports['--dashboard-port']}"

    def client_env(self) -> dict[str, str]:
        """Environment for `ray job ...` commands aimed at this cluster (token auth on)."""
        env = dict(os.environ)
        env.update(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN_PATH=str(self.token_path))
        env["PATH"] = f"{_BIN}{os.pathsep}{env.get('PATH', '')}"
        env.pop("RAY_ADDRESS", None)
        env.pop("RAY_AUTH_TOKEN", None)  # it would take precedence over RAY_AUTH_TOKEN_PATH
        return env

    def start(self, timeout: float = 120, attempts: int = 2) -> None:
        """Start the head node; returns when `ray start` has returned successfully.

        `ray start` gives the raylet a fixed 30 s to register with the GCS; on a machine
        overloaded by other work that can run out, so a failed start is cleaned up and retried
        on fresh ports.
        """
        self.temp_dir.mkdir(parents=True, exist_ok=True)
        self.token_path.write_text(secrets.token_hex(32))
        self.token_path.chmod(0o600)
        for attempt in range(1, attempts + 1):
            rc, log = self._ray_start(timeout)
            if rc == 0:
                return
            self.stop()
            if attempt == attempts:
                raise RuntimeError(f"`ray start` failed ({rc}):\n{log[-4000:]}")

    @property
    def gcs_address(self) -> str:
        return f"{node_ip_address()}:{self.ports['--port']}"

    def add_node(
        self,
        name: str,
        *,
        num_cpus: int = 1,
        labels: dict[str, str] | None = None,
        timeout: float = 120,
        attempts: int = 2,
    ) -> Path:
        """Start another node of this cluster (`ray start --address`) with its own temp dir,
        ports, CPUs and labels; return its temp dir. Call after `start()`."""
        temp_dir = self.root / name
        temp_dir.mkdir(parents=True, exist_ok=True)
        self.node_temp_dirs[name] = temp_dir
        for attempt in range(1, attempts + 1):
            ports = dict(zip(_NODE_PORT_FLAGS, free_ports(len(_NODE_PORT_FLAGS)), strict=True))
            cmd = [f"--address={self.gcs_address}", *_node_flags(ports, num_cpus, labels)]
            rc, log = self._run_ray_start(cmd, temp_dir, timeout, self.root / f"{name}.log")
            if rc == 0:
                return temp_dir
            self._stop_processes(self._own_processes([temp_dir]))
            if attempt == attempts:
                raise RuntimeError(f"`ray start` of node {name} failed ({rc}):\n{log[-4000:]}")
        return temp_dir

    def _ray_start(self, timeout: float) -> tuple[int, str]:
        ports = free_ports(len(_PORT_FLAGS))
        self.ports = dict(zip(_PORT_FLAGS, ports, strict=True))
        # Ray maps 127.0.0.1 to this machine's address for the GCS/raylet (resolve_ip_for_localhost)
        # so that other nodes could join; the dashboard / job API listen on 127.0.0.1 only.
        cmd = ["--head", f"--port={self.ports['--port']}"]
        cmd += [f"{flag}={port}" for flag, port in self.ports.items() if flag != "--port"]
        cmd += ["--dashboard-host=127.0.0.1", "--include-dashboard=true"]
        cmd += _node_flags({}, self.num_cpus, self.labels)
        return self._run_ray_start(cmd, self.temp_dir, timeout, self.root / "ray_start.log")

    def _run_ray_start(
        self, args: list[str], temp_dir: Path, timeout: float, log: Path
    ) -> tuple[int, str]:
        cmd = [str(_BIN / "ray"), "start", *args, f"--temp-dir={temp_dir}"]
        env = self.client_env()
        env.update(self.extra_env)
        # Ray processes that look their cluster up without an address (Ray Train's placement
        # group cleaner uses the state API) would otherwise see every GCS on this machine and
        # fail with "Found multiple active Ray instances"; `ray start` itself ignores it.
        env["RAY_ADDRESS"] = self.gcs_address
        with log.open("w") as out:
            rc = subprocess.call(
                cmd,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                timeout=timeout,
                start_new_session=True,
            )
        return rc, log.read_text()

    def _own_processes(self, temp_dirs: list[Path] | None = None) -> list[psutil.Process]:
        """Processes started for this cluster (or for the nodes of `temp_dirs`): a node's temp
        dir on the command line, plus descendants."""
        me = os.getpid()
        if temp_dirs is None:
            temp_dirs = [self.temp_dir, *self.node_temp_dirs.values()]
        markers = [str(d) for d in temp_dirs]
        found: dict[int, psutil.Process] = {}
        for proc in psutil.process_iter(["cmdline"]):
            try:
                args = proc.info["cmdline"] or ()
                if proc.pid != me and any(m in arg for arg in args for m in markers):
                    found[proc.pid] = proc
                    found.update((c.pid, c) for c in proc.children(recursive=True))
            except psutil.Error:
                continue
        found.pop(me, None)
        return list(found.values())

    def node_processes(self, name: str) -> list[psutil.Process]:
        """The processes of one node: "head", or a name given to `add_node`."""
        return self._own_processes([self.node_temp_dirs.get(name, self.temp_dir)])

    def stop(self, grace: float = 15) -> None:
        """Terminate this cluster's processes (SIGTERM, then SIGKILL after `grace` s)."""
        self._stop_processes(self._own_processes(), grace)

    @staticmethod
    def _stop_processes(procs: list[psutil.Process], grace: float = 15) -> None:
        for proc in procs:
            try:
                proc.terminate()
            except psutil.Error:
                pass
        _, alive = psutil.wait_procs(procs, timeout=grace)
        for proc in alive:
            try:
                proc.kill()
            except psutil.Error:
                pass
        psutil.wait_procs(alive, timeout=5)

    def is_running(self) -> bool:
        return any(p.is_running() for p in self._own_processes())

    def wait_gone(self, timeout: float = 10) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self._own_processes():
                return True
            time.sleep(0.2)
        return False

    # --- jobs on this cluster ---------------------------------------------------------------

    def ray_job(self, *args: str) -> subprocess.CompletedProcess:
        """`ray job <args> --address <dashboard>` with the token."""
        cmd = [str(_BIN / "ray"), "job", *args, "--address", self.dashboard_address]
        return subprocess.run(
            cmd, env=self.client_env(), capture_output=True, text=True, timeout=120
        )

    def job_status(self, job_id: str, token: str | None = None) -> str:
        """The job's status from the job REST API, authenticated like the CLI (bearer token)."""
        token = self.token_path.read_text().strip() if token is None else token
        request = urllib.request.Request(
            f"{self.dashboard_address}/api/jobs/{job_id}",
            headers={"Authorization": f"Bearer {token}"},
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.load(response)["status"]

    def wait_for_job(self, job_id: str, timeout: float, poll=None) -> str:
        """Wait until the job ends (or `timeout` s); return its last status. `poll()`, when
        given, is called between looks (every second)."""
        deadline = time.monotonic() + timeout
        status, looked = "UNKNOWN", 0.0
        while time.monotonic() < deadline:
            if time.monotonic() - looked >= 5:
                status, looked = self.job_status(job_id), time.monotonic()
                if status in TERMINAL:
                    return status
            if poll is not None:
                poll()
            time.sleep(1)
        return status


def _node_flags(ports: dict[str, int], num_cpus: int, labels: dict[str, str] | None) -> list[str]:
    """The `ray start` flags every node of a test cluster gets: ports, resources, labels."""
    worker_lo = 20000 + (free_ports(1)[0] % 20000)
    flags = [f"{flag}={port}" for flag, port in ports.items()]
    flags += [
        f"--min-worker-port={worker_lo}",
        f"--max-worker-port={worker_lo + 200}",
        f"--num-cpus={num_cpus}",
        "--num-gpus=0",
        "--disable-usage-stats",
    ]
    if labels:
        flags.append("--labels=" + ",".join(f"{k}={v}" for k, v in labels.items()))
    return flags


def runtime_env_without_pip(repo: Path, folder: Path) -> Path:
    """The shipped runtime_env template minus `pip`, written to `folder`: the test nodes run
    from this repo's venv already."""
    env = yaml.safe_load((repo / "jobs" / "runtime_env.yaml").read_text())
    env.pop("pip")
    path = folder / "runtime_env.yaml"
    path.write_text(yaml.safe_dump(env))
    return path
