"""A real S3 endpoint for tests: moto's server in a subprocess on 127.0.0.1.

Reusable by any test::

    from tests.s3 import moto_s3_server, upload_files

    def test_x(tmp_path):
        with moto_s3_server() as server:
            upload_files(server, "bucket", "prefix", [tmp_path / "a.jsonl"])
            ...  # s3://bucket/prefix/a.jsonl, endpoint server.endpoint_url

or take the session fixture ``moto_s3`` (import it into a conftest or test module).
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

__all__ = ["S3Server", "moto_s3", "moto_s3_server", "upload_files"]


@dataclass(frozen=True)
class S3Server:
    """A running endpoint and the (fake) credentials it accepts."""

    endpoint_url: str
    key: str = "testing"
    secret: str = "testing"
    region: str = "us-east-1"

    @property
    def storage_options(self) -> dict[str, str]:
        """s3fs options with the credentials (the endpoint is left to AWS_ENDPOINT_URL)."""
        return {"key": self.key, "secret": self.secret}

    def client(self):
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint_url,
            aws_access_key_id=self.key,
            aws_secret_access_key=self.secret,
            region_name=self.region,
        )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_ready(url: str, proc: subprocess.Popen, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"moto_server exited with code {proc.returncode}")
        try:
            urllib.request.urlopen(url, timeout=1).close()
            return
        except urllib.error.HTTPError:
            return  # it answers: ready
        except OSError:
            time.sleep(0.1)
    raise TimeoutError(f"moto_server did not answer on {url} within {timeout}s")


@contextlib.contextmanager
def moto_s3_server() -> Iterator[S3Server]:
    """Start ``moto.server`` on a free 127.0.0.1 port; stop it on exit."""
    port = _free_port()
    cmd = [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        url = f"http://127.0.0.1:{port}"
        _wait_ready(url, proc)
        yield S3Server(endpoint_url=url)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


def upload_files(server: S3Server, bucket: str, prefix: str, paths: Iterable[Path]) -> list[str]:
    """Create ``bucket`` if needed and upload ``paths`` under ``prefix``; returns the URIs."""
    client = server.client()
    with contextlib.suppress(client.exceptions.BucketAlreadyOwnedByYou):
        client.create_bucket(Bucket=bucket)
    uris = []
    for path in paths:
        key = f"{prefix.strip('/')}/{Path(path).name}"
        client.upload_file(str(path), bucket, key)
        uris.append(f"s3://{bucket}/{key}")
    return uris


@pytest.fixture(scope="session")
def moto_s3() -> Iterator[S3Server]:
    """Session-wide moto S3 server (import this fixture where it is needed)."""
    with moto_s3_server() as server:
        yield server


# Keep botocore from looking for real credentials files when a test forgets to pass some.
os.environ.setdefault("AWS_EC2_METADATA_DISABLED", "true")
