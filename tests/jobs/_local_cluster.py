"""A private `ray start --head` cluster on 127.0.0.1 for job-submission tests.

It never touches clusters it did not start: its own temp dir (so `ray.init(address="local")` in
other tests and `/tmp/ray/session_latest` are untouched), its own free ports, its own auth token
file (RAY_AUTH_TOKEN_PATH, so ~/.ray/auth_token is neither read nor written), and `stop()` ends
only the processes whose command line names that temp dir plus their descendants, instead of
`ray stop` (which kills every Ray process on the machine).
"""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import sys
import time
from pathlib import Path

import psutil

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
    """

    def __init__(self, root: Path, *, num_cpus: int = 2, env: dict[str, str] | None = None):
        self.root = Path(root)
        self.temp_dir = self.root / "ray"
        self.token_path = self.root / "auth_token"
        self.num_cpus = num_cpus
        self.extra_env = dict(env or {})
        self.ports: dict[str, int] = {}

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

    def _ray_start(self, timeout: float) -> tuple[int, str]:
        ports = free_ports(len(_PORT_FLAGS) + 1)
        self.ports = dict(zip(_PORT_FLAGS, ports, strict=False))
        worker_lo = 20000 + (ports[-1] % 20000)
        # Ray maps 127.0.0.1 to this machine's address for the GCS/raylet (resolve_ip_for_localhost)
        # so that other nodes could join; the dashboard / job API listen on 127.0.0.1 only.
        cmd = [str(_BIN / "ray"), "start", "--head"]
        cmd += [f"{flag}={port}" for flag, port in self.ports.items()]
        cmd += [
            f"--min-worker-port={worker_lo}",
            f"--max-worker-port={worker_lo + 200}",
            "--dashboard-host=127.0.0.1",
            "--include-dashboard=true",
            f"--num-cpus={self.num_cpus}",
            "--num-gpus=0",
            f"--temp-dir={self.temp_dir}",
            "--disable-usage-stats",
        ]
        env = self.client_env()
        env.update(self.extra_env)
        # Ray processes that look their cluster up without an address (Ray Train's placement
        # group cleaner uses the state API) would otherwise see every GCS on this machine and
        # fail with "Found multiple active Ray instances"; `ray start` itself ignores it.
        env["RAY_ADDRESS"] = f"{node_ip_address()}:{self.ports['--port']}"
        log = self.root / "ray_start.log"
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

    def _own_processes(self) -> list[psutil.Process]:
        """Processes started for this cluster: temp dir on the command line, plus descendants."""
        me = os.getpid()
        marker = str(self.temp_dir)
        found: dict[int, psutil.Process] = {}
        for proc in psutil.process_iter(["cmdline"]):
            try:
                if proc.pid != me and any(marker in arg for arg in proc.info["cmdline"] or ()):
                    found[proc.pid] = proc
                    found.update((c.pid, c) for c in proc.children(recursive=True))
            except psutil.Error:
                continue
        found.pop(me, None)
        return list(found.values())

    def stop(self, grace: float = 15) -> None:
        """Terminate this cluster's processes (SIGTERM, then SIGKILL after `grace` s)."""
        procs = self._own_processes()
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
