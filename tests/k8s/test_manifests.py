"""Every manifest under k8s/ validates against the KubeRay CRDs (ray.io/v1) and hangs together.

The CRD schemas are the real KubeRay ones, kept in tests/assets/kuberay_crds/ (source, version,
licence and checksums in its README), so the check runs on any clone, offline. Their
`openAPIV3Schema` is used as JSON Schema with the Kubernetes-only `x-kubernetes-*` keys
dropped and, like `kubectl apply --validate=strict`, unknown fields rejected (objects that
declare `properties` get `additionalProperties: false` unless they preserve unknown fields).
"""

from __future__ import annotations

import copy
import hashlib
import re
from pathlib import Path

import jsonschema
import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
K8S = REPO / "k8s"
CRDS = REPO / "tests" / "assets" / "kuberay_crds"
CRD_FILES = {"RayCluster": "ray.io_rayclusters.yaml", "RayJob": "ray.io_rayjobs.yaml"}
CRD_SHA256 = {
    "ray.io_rayclusters.yaml": "c44704442eef0c6721ad40c1d66782c8bd3fdab9d3344306a5820910a679baa1",
    "ray.io_rayjobs.yaml": "01a5cf3b17c1769fda44af7e82debcd98722f0c27b9ab84d084681c6649121f5",
}
RAY_IMAGE_VERSION = re.compile(r"ray(\d+\.\d+\.\d+)")
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # the CRDs are 2 MiB of YAML


def _strict(node):
    """Drop x-kubernetes-* keys; reject unknown fields where the schema lists properties."""
    if isinstance(node, list):
        return [_strict(n) for n in node]
    if not isinstance(node, dict):
        return node
    out = {k: _strict(v) for k, v in node.items() if not k.startswith("x-kubernetes-")}
    preserve = node.get("x-kubernetes-preserve-unknown-fields", False)
    if "properties" in out and "additionalProperties" not in out and not preserve:
        out["additionalProperties"] = False
    return out


@pytest.fixture(scope="module")
def validators() -> dict[str, jsonschema.protocols.Validator]:
    out = {}
    for kind, name in CRD_FILES.items():
        text = (CRDS / name).read_bytes()
        assert hashlib.sha256(text).hexdigest() == CRD_SHA256[name], f"{name} changed"
        crd = yaml.load(text, Loader=_LOADER)
        assert crd["spec"]["names"]["kind"] == kind
        (v1,) = [v for v in crd["spec"]["versions"] if v["name"] == "v1"]
        schema = _strict(v1["schema"]["openAPIV3Schema"])
        cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft7Validator)
        cls.check_schema(schema)
        out[kind] = cls(schema)
    return out


def _documents() -> list[tuple[str, dict]]:
    docs = []
    for path in sorted(K8S.glob("*.y*ml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc is not None:
                docs.append((path.name, doc))
    return docs


DOCS = _documents()
RAY_DOCS = [(f, d) for f, d in DOCS if d.get("kind") in CRD_FILES]


def _ids(docs):
    return [f"{f}:{d.get('kind')}/{d.get('metadata', {}).get('name')}" for f, d in docs]


def _cluster_spec(doc: dict) -> dict:
    return doc["spec"]["rayClusterSpec"] if doc["kind"] == "RayJob" else doc["spec"]


def _pod_templates(doc: dict) -> list[dict]:
    spec = _cluster_spec(doc)
    groups = [spec["headGroupSpec"], *spec.get("workerGroupSpecs", [])]
    return [g["template"]["spec"] for g in groups]


def _errors(validator, doc) -> list[str]:
    return [
        f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(doc)
    ]


def test_k8s_folder_has_the_promised_manifests():
    kinds = sorted(d["kind"] for _, d in DOCS)
    assert kinds.count("RayJob") >= 2 and "RayCluster" in kinds
    assert "ConfigMap" in kinds and "Secret" in kinds
    assert {d["apiVersion"] for _, d in RAY_DOCS} == {"ray.io/v1"}


@pytest.mark.parametrize(("fname", "doc"), RAY_DOCS, ids=_ids(RAY_DOCS))
def test_ray_manifest_matches_crd_schema(validators, fname, doc):
    assert _errors(validators[doc["kind"]], doc) == []


@pytest.mark.parametrize(("fname", "doc"), RAY_DOCS, ids=_ids(RAY_DOCS))
def test_ray_version_matches_every_image(fname, doc):
    spec = _cluster_spec(doc)
    for pod in _pod_templates(doc):
        for container in pod["containers"]:
            found = RAY_IMAGE_VERSION.findall(container["image"])
            assert found == [spec["rayVersion"]], (container["image"], spec["rayVersion"])
    dockerfile = (K8S / "Dockerfile").read_text()
    assert f"FROM rayproject/ray:{spec['rayVersion']}-" in dockerfile


@pytest.mark.parametrize(("fname", "doc"), RAY_DOCS, ids=_ids(RAY_DOCS))
def test_token_auth_is_on(fname, doc):
    assert _cluster_spec(doc)["authOptions"]["mode"] == "token"


@pytest.mark.parametrize(
    ("fname", "doc"),
    [x for x in RAY_DOCS if x[1]["kind"] == "RayJob"],
    ids=_ids([x for x in RAY_DOCS if x[1]["kind"] == "RayJob"]),
)
def test_rayjob_cleans_up_and_uses_gpus(fname, doc):
    spec = doc["spec"]
    # ttlSecondsAfterFinished is ignored unless the cluster is shut down after the job.
    assert spec["shutdownAfterJobFinishes"] is True and spec["ttlSecondsAfterFinished"] > 0
    workers = spec["rayClusterSpec"]["workerGroupSpecs"]
    gpus = sum(
        int(c["resources"]["limits"]["nvidia.com/gpu"]) * g["replicas"]
        for g in workers
        for c in g["template"]["spec"]["containers"]
    )
    assert gpus >= 1
    assert spec["entrypoint"].startswith("raytune-chat run ")


def test_single_and_multi_gpu_jobs_differ_in_gpu_count():
    per_job = {}
    for _, doc in RAY_DOCS:
        if doc["kind"] != "RayJob":
            continue
        groups = doc["spec"]["rayClusterSpec"]["workerGroupSpecs"]
        per_job[doc["metadata"]["name"]] = sum(
            int(c["resources"]["limits"]["nvidia.com/gpu"]) * g["replicas"]
            for g in groups
            for c in g["template"]["spec"]["containers"]
        )
    assert sorted(per_job.values())[0] == 1 and max(per_job.values()) > 1, per_job


@pytest.mark.parametrize(("fname", "doc"), RAY_DOCS, ids=_ids(RAY_DOCS))
def test_references_resolve_to_manifests_in_k8s(fname, doc):
    defined = {(d["kind"], d["metadata"]["name"]) for _, d in DOCS}
    for pod in _pod_templates(doc):
        for c in pod["containers"]:
            for src in c.get("envFrom", []):
                assert ("Secret", src["secretRef"]["name"]) in defined
            mounts = {m["name"] for m in c.get("volumeMounts", [])}
            assert mounts <= {v["name"] for v in pod.get("volumes", [])}
        for vol in pod.get("volumes", []):
            if "configMap" in vol:
                assert ("ConfigMap", vol["configMap"]["name"]) in defined


@pytest.mark.parametrize(
    ("fname", "doc"),
    [x for x in DOCS if x[1].get("kind") in ("ConfigMap", "Secret")],
    ids=_ids([x for x in DOCS if x[1].get("kind") in ("ConfigMap", "Secret")]),
)
def test_configmap_and_secret_shape(fname, doc):
    assert doc["apiVersion"] == "v1"
    assert re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", doc["metadata"]["name"])
    payload = {**doc.get("data", {}), **doc.get("stringData", {})}
    assert payload and all(isinstance(k, str) and isinstance(v, str) for k, v in payload.items())
    assert set(doc) <= {"apiVersion", "kind", "metadata", "data", "stringData", "type"}
    if doc["kind"] == "Secret":
        assert {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"} <= set(payload)


@pytest.mark.slow  # imports the recipe (torch, ray)
def test_configmap_config_is_a_valid_raytune_chat_config(tmp_path):
    from raytune_chat.config import load_config
    from raytune_chat.recipes import validate_config

    (cm,) = [d for _, d in DOCS if d["kind"] == "ConfigMap"]
    ((key, text),) = cm["data"].items()
    path = tmp_path / key
    path.write_text(text)
    # Exactly what the RayJobs run: the file plus each entrypoint's overrides.
    for _, doc in RAY_DOCS:
        if doc["kind"] != "RayJob":
            continue
        words = doc["spec"]["entrypoint"].split()
        overrides = [w for w in words if "=" in w]
        settings = validate_config(load_config(str(path), overrides))
        assert settings.ray.storage_path.startswith("s3://")
    cfg = yaml.safe_load(text)
    assert cfg["dataset"]["data_files"].startswith("s3://")
    # The entrypoints read exactly the key the ConfigMap provides.
    for _, doc in RAY_DOCS:
        if doc["kind"] == "RayJob":
            assert f"--config /etc/raytune-chat/{next(iter(cm['data']))}" in doc["spec"][
                "entrypoint"
            ].replace("\n", " ")


def _break(doc: dict, how: str) -> dict:
    bad = copy.deepcopy(doc)
    spec = _cluster_spec(bad)
    if how == "unknown_field":
        spec["headGroupSpec"]["rayStartParam"] = {}  # typo of rayStartParams
    elif how == "wrong_type":
        spec["workerGroupSpecs"][0]["replicas"] = "one"
    elif how == "missing_required":
        del spec["workerGroupSpecs"][0]["groupName"]
    elif how == "bad_enum":
        spec["authOptions"]["mode"] = "password"
    return bad


@pytest.mark.parametrize("how", ["unknown_field", "wrong_type", "missing_required", "bad_enum"])
@pytest.mark.parametrize("kind", ["RayJob", "RayCluster"])
def test_broken_manifest_is_rejected(validators, kind, how):
    doc = next(d for _, d in RAY_DOCS if d["kind"] == kind)
    assert _errors(validators[kind], doc) == []
    errors = _errors(validators[kind], _break(doc, how))
    assert errors, f"{how} was accepted"
