"""End to end: `ray start --head` cluster + moto S3, the tiny config through `ray job submit`.

The chat data is read from s3://, Ray Train's storage_path is s3://, and the run's checkpoints
and adapter are looked up in the bucket afterwards. The cluster has token auth on (as every
Ray 2.60 cluster should); it is private to this module (own temp dir, ports, token file) and
stopped by its own process list, never with `ray stop`.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest

from raytune_chat import _jobs
from tests.jobs._local_cluster import LocalRayCluster, runtime_env_without_pip
from tests.s3 import moto_s3_server, upload_files

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "raytune_chat" / "_sample_data" / "sample_chat.json"
BUCKET = "raytune-chat-e2e"

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def s3():
    with moto_s3_server() as server:
        yield server


@pytest.fixture(scope="module")
def cluster(s3):
    # The nodes hold the S3 endpoint and credentials (as a Kubernetes Secret would provide);
    # nothing secret travels in the job's runtime_env.
    node_env = {
        "AWS_ENDPOINT_URL": s3.endpoint_url,
        "AWS_ACCESS_KEY_ID": s3.key,
        "AWS_SECRET_ACCESS_KEY": s3.secret,
        "AWS_DEFAULT_REGION": s3.region,
        "AWS_EC2_METADATA_DISABLED": "true",
    }
    # A short root: pytest's tmp paths make Ray's Unix socket paths exceed 107 bytes.
    root = Path(tempfile.mkdtemp(prefix="rtc-e2e-"))
    c = LocalRayCluster(root, num_cpus=2, env=node_env)
    try:
        c.start()
        yield c
    finally:
        c.stop()
        gone = c.wait_gone()
        shutil.rmtree(root, ignore_errors=True)
    assert gone, "processes of the test cluster survived stop()"


def test_cluster_rejects_requests_without_the_token(cluster):
    ray = str(Path(sys.executable).parent / "ray")
    cmd = [ray, "job", "list", "--address", cluster.dashboard_address]
    env = cluster.client_env()
    good = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert good.returncode == 0, good.stderr
    bad = subprocess.run(
        cmd, env={**env, "RAY_AUTH_TOKEN": "0" * 64}, capture_output=True, text=True, timeout=120
    )
    assert bad.returncode != 0
    # Without RAY_AUTH_MODE=token the CLI sends no token at all (the mode is not inferred).
    no_mode = {k: v for k, v in env.items() if k != "RAY_AUTH_MODE"}
    plain = subprocess.run(cmd, env=no_mode, capture_output=True, text=True, timeout=120)
    assert plain.returncode != 0 and "Unauthorized" in plain.stderr
    for token, code in (("", 401), ("0" * 64, 403)):
        request = urllib.request.Request(
            f"{cluster.dashboard_address}/api/jobs/",
            headers={"Authorization": f"Bearer {token}"} if token else {},
        )
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(request, timeout=30)
        assert err.value.code == code


def test_tiny_config_runs_from_s3_to_s3_via_ray_job_submit(cluster, s3, tmp_path):
    # The bundled sample, cut to 64 conversations: 4 steps of batch 8 need 32.
    subset = tmp_path / "sample_chat.json"
    subset.write_text(json.dumps(json.loads(SAMPLE.read_text())[:64]))
    (data_uri,) = upload_files(s3, BUCKET, "data", [subset])
    storage = f"s3://{BUCKET}/ray_results"
    job_id = f"raytune-chat-e2e-{uuid.uuid4().hex[:8]}"
    run_args = [
        "run", "lora_finetune_single_device", "--config", "tiny/llama3_lora_cpu",
        f"output_dir={tmp_path / 'out'}",
        f"dataset.data_files={data_uri}",
        f"ray.storage_path={storage}",
        "ray.resources_per_worker.CPU=0.5",  # fractional: the head has 2 CPUs for everything
        "max_steps_per_epoch=4", "save_every_n_steps=2", "log_every_n_steps=1",
    ]  # fmt: skip
    rc = _jobs.submit(
        run_args,
        address=cluster.dashboard_address,
        runtime_env=runtime_env_without_pip(REPO, tmp_path),
        working_dir=REPO,
        submission_id=job_id,
        no_wait=True,
        program=f"{sys.executable} -m raytune_chat._cli",
        environ={k: v for k, v in cluster.client_env().items() if not k.startswith("AWS_")},
    )
    assert rc == 0
    status = cluster.wait_for_job(job_id, timeout=900)
    logs = cluster.ray_job("logs", job_id).stdout
    assert status == "SUCCEEDED", logs[-6000:]
    # The 64 conversations of the bucket were trained on, not the bundled local sample.
    assert re.search(r"rows_read\s+64\b", logs), logs[-3000:]
    # Ray processes found their own cluster, not the other Ray instances on this machine.
    assert "Found multiple active Ray instances" not in logs

    keys = [
        obj["Key"]
        for page in s3.client().get_paginator("list_objects_v2").paginate(Bucket=BUCKET)
        for obj in page.get("Contents", [])
    ]
    # Ray Train checkpoints (adapter + optimizer + data position) landed in the bucket ...
    assert any(k.startswith("ray_results/") and k.endswith("train_state.pt") for k in keys), keys
    # ... and so did the PEFT adapter of the run.
    adapters = [k for k in keys if k.endswith("adapter_model.safetensors")]
    assert adapters, f"no adapter_model.safetensors in s3://{BUCKET}: {keys}"
    # ... and the run summary tells the user where, as a URI they can paste.
    assert re.search(rf"adapter_in_storage\s+s3://{BUCKET}/ray_results/\S+/adapter", logs), logs[
        -3000:
    ]
