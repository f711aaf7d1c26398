"""Two Ray nodes on this machine, one training worker on each, submitted with `ray job submit`.

The cluster (a `ray start --head` plus a `ray start --address` node, with moto's S3) is
private to this module (own temp dirs, ports, token file) and stopped by its own process
list, never with `ray stop`. It has token auth on, as every Ray 2.60 cluster should: the
first test checks that requests without the token are refused.

The head (`ray start --head`, labelled ``rtc-node=head``) runs the job's driver; a second node
(`ray start --address`, labelled ``rtc-node=b``, its own temp dir and ports) joins it, token
auth on for both. `ray.label_selector: [{rtc-node: b}, {rtc-node: head}]` puts rank 0 on node b
and rank 1 on the head: rank 0 (metrics, final adapter) runs on another node than the driver
(summary, loss plot). `output_dir` is relative, so each process resolves it against its own
working directory, which Ray keeps under its node's temp dir: as node-local as on machines of
their own. Data and `ray.storage_path` are in moto's S3; every output must be found there.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import psutil
import pytest

from raytune_chat import _jobs
from tests.jobs._local_cluster import LocalRayCluster, runtime_env_without_pip
from tests.recipes._tiny import fast_overrides, sample_conversations
from tests.s3 import moto_s3_server, upload_files

REPO = Path(__file__).resolve().parents[2]
BUCKET = "raytune-chat-two-nodes"
NAME = "two_nodes"

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def s3():
    with moto_s3_server() as server:
        yield server


@pytest.fixture(scope="module")
def two_nodes(s3):
    # Each node holds the S3 endpoint and credentials, as machines of their own would.
    node_env = {
        "AWS_ENDPOINT_URL": s3.endpoint_url,
        "AWS_ACCESS_KEY_ID": s3.key,
        "AWS_SECRET_ACCESS_KEY": s3.secret,
        "AWS_DEFAULT_REGION": s3.region,
        "AWS_EC2_METADATA_DISABLED": "true",
    }
    # A short root: pytest's tmp paths make Ray's Unix socket paths exceed 107 bytes.
    root = Path(tempfile.mkdtemp(prefix="rtc-2n-"))
    cluster = LocalRayCluster(root, num_cpus=2, env=node_env, labels={"rtc-node": "head"})
    try:
        cluster.start()
        cluster.add_node("b", num_cpus=1, labels={"rtc-node": "b"})
        yield cluster
    finally:
        cluster.stop(grace=5)  # what is left after 5 s is killed: the cluster is ours alone
        gone = cluster.wait_gone()
        shutil.rmtree(root, ignore_errors=True)
    assert gone, "processes of the test cluster survived stop()"


def _training_workers(cluster: LocalRayCluster, seen: dict[str, set[int]]) -> None:
    """Note the pids of Ray Train's worker processes on each node."""
    for node in ("head", "b"):
        for proc in cluster.node_processes(node):
            try:
                if "RayTrainWorker" in " ".join(proc.cmdline()):
                    seen.setdefault(node, set()).add(proc.pid)
            except psutil.Error:
                continue


def _keys(s3) -> list[str]:
    pages = s3.client().get_paginator("list_objects_v2").paginate(Bucket=BUCKET)
    return [obj["Key"] for page in pages for obj in page.get("Contents", [])]


def _read(s3, key: str) -> bytes:
    return s3.client().get_object(Bucket=BUCKET, Key=key)["Body"].read()


def test_cluster_rejects_requests_without_the_token(two_nodes):
    ray = str(Path(sys.executable).parent / "ray")
    cmd = [ray, "job", "list", "--address", two_nodes.dashboard_address]
    env = two_nodes.client_env()
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
            f"{two_nodes.dashboard_address}/api/jobs/",
            headers={"Authorization": f"Bearer {token}"} if token else {},
        )
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(request, timeout=30)
        assert err.value.code == code


def test_two_nodes_one_worker_each_outputs_land_in_storage(two_nodes, s3, tmp_path):
    # 2 ranks x batch 2 x 4 steps = 16 rows; 24 conversations leave some over.
    data = tmp_path / "chat.json"
    data.write_text(json.dumps(sample_conversations(24, skip=300)))
    (data_uri,) = upload_files(s3, BUCKET, "data", [data])
    storage = f"s3://{BUCKET}/ray_results"
    job_id = f"raytune-chat-2n-{uuid.uuid4().hex[:8]}"
    run_args = [
        "run", "lora_finetune_distributed", "--config", "tiny/llama3_lora_cpu",
        *fast_overrides(Path("out"), data_uri),  # relative: each node's own folder
        "ray.num_workers=2",
        "ray.resources_per_worker={CPU: 0.25}",
        "ray.label_selector=[{rtc-node: b}, {rtc-node: head}]",
        f"ray.storage_path={storage}",
        f"ray.name={NAME}",
        "max_steps_per_epoch=4", "save_every_n_steps=2", "log_peak_memory_stats=False",
    ]  # fmt: skip
    rc = _jobs.submit(
        run_args,
        address=two_nodes.dashboard_address,
        runtime_env=runtime_env_without_pip(REPO, tmp_path),
        working_dir=REPO,
        submission_id=job_id,
        no_wait=True,
        program=f"{sys.executable} -m raytune_chat._cli",
        environ={k: v for k, v in two_nodes.client_env().items() if not k.startswith("AWS_")},
    )
    assert rc == 0
    workers: dict[str, set[int]] = {}
    status = two_nodes.wait_for_job(
        job_id, timeout=900, poll=lambda: _training_workers(two_nodes, workers)
    )
    logs = two_nodes.ray_job("logs", job_id).stdout
    assert status == "SUCCEEDED", logs[-6000:]
    # Ray processes found their own cluster, not the other Ray instances on this machine.
    assert "Found multiple active Ray instances" not in logs
    # One training worker ran on each node (the label selector placed them).
    assert sorted(workers) == ["b", "head"], (workers, logs[-3000:])

    # Rank 0 wrote its outputs on node b, in its own output_dir; none on the head.
    def written(node_dir: Path, name: str) -> list[Path]:
        return [p for p in node_dir.rglob(name) if "out" in p.parts]

    assert written(two_nodes.node_temp_dirs["b"], "adapter_model.safetensors")
    assert not written(two_nodes.temp_dir, "adapter_model.safetensors")

    # Everything rank 0 and the driver wrote is in the bucket, beside the checkpoints.
    outputs = f"ray_results/{NAME}/outputs"
    keys = _keys(s3)
    for name in (
        "epoch_0/adapter_model.safetensors",
        "epoch_0/adapter_config.json",
        "metrics.jsonl",
        "loss.png",
        "summary.json",
    ):
        assert f"{outputs}/{name}" in keys, (name, keys)
    # Ray Train's checkpoints (adapter, optimizer, data position) are in the bucket too.
    checkpoints = f"ray_results/{NAME}/"
    assert any(k.startswith(checkpoints) and k.endswith("train_state.pt") for k in keys), keys
    metrics = [json.loads(line) for line in _read(s3, f"{outputs}/metrics.jsonl").splitlines()]
    assert [r["step"] for r in metrics] == [1, 2, 3, 4]
    summary = json.loads(_read(s3, f"{outputs}/summary.json"))
    # The driver read rank 0's metrics from storage, and points at the adapter there.
    assert summary["steps"] == 4
    assert (summary["first_loss"], summary["last_loss"]) == (
        metrics[0]["loss"],
        metrics[-1]["loss"],
    )
    assert summary["adapter"] == f"s3://{BUCKET}/{outputs}/epoch_0"
    assert summary["outputs_in_storage"] == f"s3://{BUCKET}/{outputs}"
    assert summary["adapter_in_storage"].startswith(f"s3://{BUCKET}/ray_results/{NAME}/")
    # The adapter in storage is a PEFT adapter of the tiny model.
    config = json.loads(_read(s3, f"{outputs}/epoch_0/adapter_config.json"))
    assert config["peft_type"] == "LORA" and config["r"] == 4
