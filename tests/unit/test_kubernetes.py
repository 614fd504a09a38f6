"""deploy/kubernetes, checked statically: rendered, validated, and scanned, with no cluster.

There is no kustomize binary on our machines, so :func:`render` builds a kustomization itself,
for the small subset of kustomize the manifests use (resources, namespace, configMapGenerator
without name hashes, images, strategic-merge and JSON 6902 patches); a kustomization that uses
anything else fails here. Where ``kubectl`` is installed, the rendering is compared with
``kubectl kustomize``. Every object of the base, the cpu and gpu overlays and the optional
Redis is validated against the Kubernetes JSON schemas (kubernetes-validate, strict: no
unknown fields) and KEDA's ScaledObjects against the CRD schema vendored in
deploy/kubernetes/schemas; then come what the schemas cannot say (probes on real paths and
ports, variables pitchside reads, grace periods that cover each service's drain, GPUs,
security contexts) and checkov on the rendered objects, whose findings must be fixed or
skipped with a reason. kubernetes-validate, jsonschema, checkov, promtool and kubectl are
optional: without one, the tests that need it skip and say what to install.
"""

from __future__ import annotations

import ast
import copy
import json
import re
import shutil
import subprocess
import tomllib
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

from pitchside.metrics import FAMILIES, Kind
from pitchside.settings import Settings
from tests.conftest import require_tool

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "kubernetes"
SCHEMAS = K8S / "schemas"
SECRET_EXAMPLE = K8S / "secret.example.yaml"
NAMESPACE = "pitchside"
OVERLAYS = ("cpu", "gpu")
#: Every directory with a kustomization: the base, the overlays, the optional in-cluster Redis.
BUILDS = {"base": K8S / "base", "redis": K8S / "redis"} | {
    name: K8S / "overlays" / name for name in OVERLAYS
}
#: Kubernetes versions the objects must be valid in: the oldest EKS still supports, EKS's
#: default in deploy/terraform (var.eks_version), and a newer one.
KUBERNETES_VERSIONS = ("1.30", "1.33", "1.35")
#: Custom resources and their vendored schemas (each file's $comment names its source).
CRD_SCHEMAS = {("keda.sh/v1alpha1", "ScaledObject"): "keda.sh_scaledobject_v1alpha1.json"}
#: Metadata the KEDA prometheus scaler reads (kedacore/keda v2.20.2,
#: pkg/scalers/prometheus_scaler.go, prometheusMetadata): anything else is a typo.
KEDA_PROMETHEUS_METADATA = frozenset(
    "serverAddress query queryParameters threshold activationThreshold namespace customHeaders "
    "ignoreNullValues unsafeSsl awsRegion timeout identityOwner".split()
)
#: The containers that run the pitchside image, and the command each runs.
PITCHSIDE = {"gateway": "gateway", "ingest": "ingest", "worker": "worker", "tracker": "tracker"}
#: Variables pitchside reads besides the PITCHSIDE_* ones (pitchside/settings.py).
OTHER_SETTINGS = ("REDIS_URL", "DATABASE_URL", "MLFLOW_TRACKING_URI")
#: monitoring/ files copied under base/ (kustomize reads nothing outside its folder).
_GRAFANA = "monitoring/grafana"
_PROVISIONING = f"{_GRAFANA}/provisioning"
COPIES = {
    "base/monitoring/alerts.yml": "monitoring/alerts.yml",
    "base/monitoring/grafana-datasources.yml": f"{_PROVISIONING}/datasources/prometheus.yml",
    "base/monitoring/grafana-dashboards.yml": f"{_PROVISIONING}/dashboards/pitchside.yml",
    "base/monitoring/dashboards/overview.json": f"{_GRAFANA}/dashboards/overview.json",
    "base/monitoring/dashboards/stream.json": f"{_GRAFANA}/dashboards/stream.json",
}
CHECKOV_SKIP = re.compile(r"^(CKV2?_K8S_\d+)=(.+)$")

Obj = dict[str, Any]


# -- the renderer ---------------------------------------------------------------------------

KUSTOMIZATION_FIELDS = frozenset(
    "apiVersion kind namespace resources patches images configMapGenerator generatorOptions".split()
)
#: Strategic merge: the lists of a pod template merged by a key (Kubernetes' patchMergeKey);
#: every other list is replaced, as for these types' other lists and for custom resources.
MERGE_KEYS = {
    "containers": "name",
    "initContainers": "name",
    "env": "name",
    "volumes": "name",
    "volumeMounts": "mountPath",
    "ports": "containerPort",
    "imagePullSecrets": "name",
}


def render(directory: Path) -> list[Obj]:
    """The objects ``kustomize build directory`` gives, for the subset of kustomize we use.

    Raises:
        AssertionError: the kustomization uses a field or an option outside that subset.
    """
    k = yaml.safe_load((directory / "kustomization.yaml").read_text())
    unsupported = set(k) - KUSTOMIZATION_FIELDS
    assert not unsupported, f"{directory}: kustomize fields the renderer lacks: {unsupported}"
    assert k["kind"] == "Kustomization", directory
    objects: list[Obj] = []
    for entry in k.get("resources", []):
        path = directory / entry
        if path.is_dir():
            objects += render(path)
        else:
            objects += [doc for doc in yaml.safe_load_all(path.read_text()) if doc]
    options = k.get("generatorOptions", {})
    assert set(options) <= {"disableNameSuffixHash", "labels"}, options
    assert not k.get("configMapGenerator") or options.get("disableNameSuffixHash") is True
    for generator in k.get("configMapGenerator", []):
        objects.append(_config_map(directory, generator, options.get("labels", {})))
    for patch in k.get("patches", []):
        assert set(patch) <= {"path", "target"}, patch
        _patch(objects, yaml.safe_load((directory / patch["path"]).read_text()), patch)
    if "namespace" in k:
        for obj in objects:
            obj["metadata"]["namespace"] = k["namespace"]
    for image in k.get("images", []):
        _set_image(objects, image)
    return objects


def _config_map(directory: Path, generator: Obj, labels: dict[str, str]) -> Obj:
    assert set(generator) <= {"name", "files"}, generator
    data = {}
    for entry in generator["files"]:
        key, _, path = entry.rpartition("=")
        data[key or Path(path).name] = (directory / path).read_text()
    metadata: Obj = {"name": generator["name"]}
    if labels:
        metadata["labels"] = dict(labels)
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": metadata, "data": data}


def _patch(objects: list[Obj], body: Any, patch: Obj) -> None:
    if isinstance(body, list):  # JSON 6902, on the target
        target = patch["target"]
        (obj,) = [o for o in objects if _matches(o, target["kind"], target["name"])]
        for op in body:
            _json6902(obj, op)
        return
    assert "target" not in patch, f"{patch['path']}: a strategic merge names its own target"
    (obj,) = [o for o in objects if _matches(o, body["kind"], body["metadata"]["name"])]
    _merge(obj, body)


def _matches(obj: Obj, kind: str, name: str) -> bool:
    return bool(obj["kind"] == kind and obj["metadata"]["name"] == name)


def _merge(into: Obj, patch: Obj) -> None:
    for key, value in patch.items():
        if value is None:
            into.pop(key, None)
        elif isinstance(value, dict) and isinstance(into.get(key), dict):
            _merge(into[key], value)
        elif isinstance(value, list) and key in MERGE_KEYS and isinstance(into.get(key), list):
            merge_key = MERGE_KEYS[key]
            by_key = {item[merge_key]: item for item in into[key]}
            for item in value:
                if item[merge_key] in by_key:
                    _merge(by_key[item[merge_key]], item)
                else:
                    into[key].append(copy.deepcopy(item))
        else:
            into[key] = copy.deepcopy(value)


def _json6902(obj: Obj, op: Obj) -> None:
    *parents, last = [p.replace("~1", "/").replace("~0", "~") for p in op["path"][1:].split("/")]
    node: Any = obj
    for part in parents:
        node = node[int(part)] if isinstance(node, list) else node[part]
    index: Any = int(last) if isinstance(node, list) and last != "-" else last
    match op["op"]:
        case "test":
            assert node[index] == op["value"], f"JSON patch test failed: {op}"
        case "replace":
            assert isinstance(node, list) or index in node, f"nothing to replace: {op}"
            node[index] = copy.deepcopy(op["value"])
        case "add" if isinstance(node, list):
            node.insert(len(node) if index == "-" else index, copy.deepcopy(op["value"]))
        case "add":
            node[index] = copy.deepcopy(op["value"])
        case "remove":
            del node[index]
        case other:
            raise AssertionError(f"JSON patch op the renderer lacks: {other}")


def _set_image(objects: list[Obj], image: Obj) -> None:
    assert set(image) <= {"name", "newName", "newTag", "digest"}, image
    for container in _containers(objects):
        name = re.split(r"[@]|:(?=[^/]*$)", container["image"])[0]
        if name != image["name"]:
            continue
        ref = image.get("newName", name)
        if "digest" in image:
            ref += f"@{image['digest']}"
        elif "newTag" in image:
            ref += f":{image['newTag']}"
        container["image"] = ref


def _containers(objects: list[Obj]) -> Iterator[Obj]:
    for obj in objects:
        if obj["kind"] == "Deployment":
            pod = obj["spec"]["template"]["spec"]
            yield from pod.get("initContainers", [])
            yield from pod["containers"]


@cache
def _rendered(build: str) -> tuple[Obj, ...]:
    return tuple(render(BUILDS[build]))


def rendered(build: str) -> list[Obj]:
    """A fresh copy of ``build``'s objects (tests may change what they get)."""
    return copy.deepcopy(list(_rendered(build)))


def by_kind(objects: list[Obj], kind: str) -> dict[str, Obj]:
    return {o["metadata"]["name"]: o for o in objects if o["kind"] == kind}


def pod_spec(deployment: Obj) -> Obj:
    spec: Obj = deployment["spec"]["template"]["spec"]
    return spec


def key(obj: Obj) -> tuple[str, str, str]:
    return obj["apiVersion"], obj["kind"], obj["metadata"]["name"]


# -- the renderer itself ----------------------------------------------------------------------


@pytest.mark.parametrize("build", sorted(BUILDS))
def test_the_renderer_builds_what_kubectl_kustomize_builds(build: str) -> None:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl is not installed: the rendering is not compared with kustomize's")
    done = subprocess.run(
        [kubectl, "kustomize", str(BUILDS[build])],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    theirs = sorted((o for o in yaml.safe_load_all(done.stdout) if o), key=key)
    ours = sorted(rendered(build), key=key)
    assert [key(o) for o in ours] == [key(o) for o in theirs]
    for mine, kustomize in zip(ours, theirs, strict=True):
        assert mine == kustomize, key(mine)


def test_the_renderer_merges_patches_as_kustomize_does() -> None:
    # given: a Deployment and a strategic-merge patch of one container and the pod
    base: Obj = {
        "kind": "Deployment",
        "metadata": {"name": "w"},
        "spec": {"template": {"spec": {"containers": [
            {"name": "a", "image": "x", "env": [{"name": "A", "value": "1"}]},
            {"name": "b", "image": "y"},
        ], "tolerations": [{"key": "old"}]}}},
    }  # fmt: skip
    patch: Obj = {
        "kind": "Deployment",
        "metadata": {"name": "w"},
        "spec": {"template": {"spec": {
            "containers": [{"name": "a", "env": [{"name": "B", "value": "2"}]}],
            "tolerations": [{"key": "new"}],
        }}},
    }  # fmt: skip
    # when
    objects = [base]
    _patch(objects, patch, {"path": "p.yaml"})
    _set_image(objects, {"name": "x", "newName": "registry/x", "newTag": "1"})
    # then: containers and env merged by name, other lists replaced, the image renamed
    spec = objects[0]["spec"]["template"]["spec"]
    assert spec["containers"][0] == {
        "name": "a",
        "image": "registry/x:1",
        "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}],
    }
    assert spec["containers"][1] == {"name": "b", "image": "y"}
    assert spec["tolerations"] == [{"key": "new"}]


def test_a_kustomization_outside_the_subset_is_refused(tmp_path: Path) -> None:
    (tmp_path / "kustomization.yaml").write_text(
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nnamePrefix: x-\n"
    )
    with pytest.raises(AssertionError, match="namePrefix"):
        render(tmp_path)


# -- schemas --------------------------------------------------------------------------------


def _strict(schema: Any) -> Any:
    """``schema`` with unknown fields refused wherever it lists the fields of an object, as
    the API server's strict field validation (kubectl's default) refuses them."""
    if isinstance(schema, list):
        return [_strict(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: _strict(v) for k, v in schema.items()}
    if (
        "properties" in out
        and "additionalProperties" not in out
        and not out.get("x-kubernetes-preserve-unknown-fields")
    ):
        out["additionalProperties"] = False
    return out


@cache
def crd_validator(api_version: str, kind: str) -> Any:
    jsonschema = pytest.importorskip("jsonschema", reason="jsonschema: pip install jsonschema")
    schema = json.loads((SCHEMAS / CRD_SCHEMAS[api_version, kind]).read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(_strict(schema))


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("build", sorted(BUILDS))
def test_every_object_is_valid_kubernetes(build: str, version: str) -> None:
    kv = pytest.importorskip(
        "kubernetes_validate", reason="kubernetes-validate: pip install kubernetes-validate"
    )
    for obj in rendered(build):
        if (obj["apiVersion"], obj["kind"]) in CRD_SCHEMAS:
            continue  # below
        try:
            kv.validate(obj, version, strict=True)
        except kv.ValidationError as exc:
            pytest.fail(f"{build}: {key(obj)} is not valid Kubernetes {version}: {exc}")


@pytest.mark.parametrize("build", sorted(BUILDS))
def test_every_custom_resource_is_valid_against_its_crd(build: str) -> None:
    builtin = {"v1", "apps/v1", "policy/v1", "networking.k8s.io/v1"}
    for obj in rendered(build):
        if obj["apiVersion"] in builtin:
            continue
        assert (obj["apiVersion"], obj["kind"]) in CRD_SCHEMAS, f"no schema for {key(obj)}"
        errors = list(crd_validator(obj["apiVersion"], obj["kind"]).iter_errors(obj))
        assert not errors, f"{key(obj)}: " + "; ".join(
            f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in errors
        )


def test_the_crd_schema_refuses_what_the_api_server_refuses() -> None:
    validator = crd_validator("keda.sh/v1alpha1", "ScaledObject")
    so = by_kind(rendered("cpu"), "ScaledObject")["worker"]
    assert validator.is_valid(so)
    typo = copy.deepcopy(so)
    typo["spec"]["maxReplicas"] = 3
    assert not validator.is_valid(typo)
    number = copy.deepcopy(so)
    number["spec"]["triggers"][0]["metadata"]["threshold"] = 8  # metadata values are strings
    assert not validator.is_valid(number)


# -- KEDA -----------------------------------------------------------------------------------


@pytest.mark.parametrize("build", OVERLAYS)
def test_the_scaled_objects_scale_real_deployments_on_this_prometheus(build: str) -> None:
    objects = rendered(build)
    deployments = by_kind(objects, "Deployment")
    prometheus = by_kind(objects, "Service")["prometheus"]
    (port,) = [p["port"] for p in prometheus["spec"]["ports"]]
    address = f"http://prometheus.{prometheus['metadata']['namespace']}.svc:{port}"
    scaled = by_kind(objects, "ScaledObject")
    assert set(scaled) == {"worker", "ingest"}
    for name, so in scaled.items():
        assert so["spec"]["scaleTargetRef"]["name"] in deployments
        assert so["spec"]["minReplicaCount"] >= 1, "the gateway is ready only with a worker"
        for trigger in so["spec"]["triggers"]:
            assert trigger["type"] == "prometheus", name
            metadata = trigger["metadata"]
            assert set(metadata) <= KEDA_PROMETHEUS_METADATA, (name, metadata)
            assert metadata["serverAddress"] == address
            assert float(metadata["threshold"]) > 0


def test_workers_scale_on_every_streams_lag_and_on_the_frame_rate() -> None:
    so = by_kind(rendered("cpu"), "ScaledObject")["worker"]
    queries = {t["name"]: t["metadata"]["query"] for t in so["spec"]["triggers"]}
    assert 'pitchside_consumer_group_lag{group="workers"}' in queries["backlog"]
    assert "max by (stream)" in queries["backlog"]  # every gateway reports every group
    assert "pitchside_ingest_frames_published_total" in queries["frames"]
    ingest = by_kind(rendered("cpu"), "ScaledObject")["ingest"]
    assert "pitchside_ingest_streams" in ingest["spec"]["triggers"][0]["metadata"]["query"]
    behavior = ingest["spec"]["advanced"]["horizontalPodAutoscalerConfig"]["behavior"]
    assert behavior["scaleDown"]["selectPolicy"] == "Disabled", "a scale-down ends streams"


def _exported_names() -> set[str]:
    suffixes = {
        Kind.COUNTER: ("_total",),
        Kind.GAUGE: ("",),
        Kind.HISTOGRAM: ("_bucket", "_sum", "_count"),
        Kind.INFO: ("_info",),
    }
    return {f.name + s for f in FAMILIES for s in suffixes[f.kind]} | {"up"}


def test_the_trigger_queries_are_valid_promql_on_real_metrics(tmp_path: Path) -> None:
    queries = [
        t["metadata"]["query"]
        for so in by_kind(rendered("gpu"), "ScaledObject").values()
        for t in so["spec"]["triggers"]
    ]
    for query in queries:
        names = set(re.findall(r"\b(pitchside_[a-z_]+|up)\b(?=\s*[{\[)])", query))
        assert names and names <= _exported_names(), query
    promtool = require_tool("promtool", "apt-get install prometheus")
    rules = {"groups": [{"name": "keda", "rules": [
        {"record": f"keda:query{n}", "expr": q} for n, q in enumerate(queries)
    ]}]}  # fmt: skip
    (tmp_path / "rules.yml").write_text(yaml.safe_dump(rules))
    done = subprocess.run(
        [promtool, "check", "rules", str(tmp_path / "rules.yml")],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr


# -- what the schemas cannot say ------------------------------------------------------------


def _gateway_routes() -> set[str]:
    source = (ROOT / "gateway" / "routes_health.py").read_text()
    return set(re.findall(r"@router\.get\(\s*\"(/[a-z]+)\"", source))


@pytest.mark.parametrize("build", OVERLAYS)
def test_probes_ask_real_paths_on_real_ports(build: str) -> None:
    deployments = by_kind(rendered(build), "Deployment")
    assert set(PITCHSIDE) <= set(deployments)
    routes = _gateway_routes()
    assert {"/healthz", "/readyz"} <= routes
    for name, deployment in deployments.items():
        for container in pod_spec(deployment)["containers"]:
            ports = {p["name"]: p["containerPort"] for p in container.get("ports", [])}
            env = {e["name"]: e.get("value") for e in container.get("env", [])}
            for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
                if probe not in container:
                    assert name in {"grafana", "redis"}, f"{name}: no {probe}"
                    continue
                action = container[probe].get("httpGet") or container[probe]["tcpSocket"]
                assert action["port"] in ports, f"{name} {probe}: port {action['port']}"
                if name == "gateway":
                    assert ports[action["port"]] == int(env["PITCHSIDE_PORT"])
                    path = "/readyz" if probe == "readinessProbe" else "/healthz"
                    assert action["path"] == path, f"{name} {probe}"
                elif name in PITCHSIDE:  # the metrics server: the only port they serve
                    assert ports[action["port"]] == int(env["PITCHSIDE_METRICS_PORT"])
                    assert action["path"] == "/metrics"


@cache
def known_variables() -> frozenset[str]:
    source = (ROOT / "pitchside" / "settings.py").read_text()
    names = set(re.findall(r"\"(PITCHSIDE_[A-Z0-9_]+)\"", source))
    names.update(name for name in OTHER_SETTINGS if f'"{name}"' in source)
    return frozenset(names)


def _pitchside_containers(build: str) -> Iterator[tuple[str, Obj]]:
    for name, deployment in by_kind(rendered(build), "Deployment").items():
        for container in pod_spec(deployment)["containers"]:
            if container["image"].split(":")[0].split("/")[-1].startswith("pitchside"):
                yield name, container


@pytest.mark.parametrize("build", OVERLAYS)
def test_pitchside_containers_run_their_command_and_read_only_known_variables(
    build: str,
) -> None:
    objects = rendered(build)
    config = by_kind(objects, "ConfigMap")["pitchside-config"]["data"]
    assert set(config) <= known_variables(), set(config) - known_variables()
    seen = set()
    for name, container in _pitchside_containers(build):
        seen.add(name)
        assert container["args"] == [PITCHSIDE[name]]
        assert container["envFrom"] == [{"configMapRef": {"name": "pitchside-config"}}]
        names = {e["name"] for e in container.get("env", [])}
        assert names <= known_variables(), f"{name}: {names - known_variables()}"
        # and the values, as this container sees them, are settings pitchside accepts
        env = dict(config) | {
            e["name"]: e["value"] for e in container.get("env", []) if "value" in e
        }
        env = {k: v for k, v in env.items() if not k.endswith("_FILE")}  # the Secret's files
        env.setdefault("PITCHSIDE_METRICS_HOST", "10.0.0.1")  # the pod's IP
        Settings.from_env(env)
    assert seen == set(PITCHSIDE)


def _secret_refs(build: str) -> Iterator[tuple[str, str, bool]]:
    """(deployment, key, optional) for every use of the Secret ``pitchside``."""
    for name, deployment in by_kind(rendered(build), "Deployment").items():
        spec = pod_spec(deployment)
        for volume in spec.get("volumes", []):
            if volume.get("secret", {}).get("secretName") == "pitchside":
                for item in volume["secret"]["items"]:
                    yield name, item["key"], bool(volume["secret"].get("optional"))
        for container in spec["containers"]:
            for env in container.get("env", []):
                ref = env.get("valueFrom", {}).get("secretKeyRef")
                if ref is not None:
                    assert ref["name"] == "pitchside", (name, env)
                    assert ref["key"] == env["name"], "a key is named as its variable"
                    yield name, ref["key"], bool(ref.get("optional"))


@pytest.mark.parametrize("build", [*OVERLAYS, "redis"])
def test_secrets_come_from_the_operators_secret_only(build: str) -> None:
    objects = rendered(build)
    assert "Secret" not in {o["kind"] for o in objects}, "the Secret is the operator's"
    example = yaml.safe_load(SECRET_EXAMPLE.read_text())
    refs = set(_secret_refs(build))
    assert {k for _, k, _ in refs} <= set(example["stringData"])
    if build != "redis":
        required = {(d, k) for d, k, optional in refs if not optional}
        assert {("gateway", "PITCHSIDE_TOKEN"), ("gateway", "DATABASE_URL")} <= required
        assert {("worker", "REDIS_URL"), ("ingest", "REDIS_URL")} <= required
        config = by_kind(objects, "ConfigMap")["pitchside-config"]["data"]
        assert not set(config) & set(example["stringData"]), "a secret in the ConfigMap"
    # the gateway reads its tokens from files (PITCHSIDE_TOKEN_FILE), not its environment
    for _, container in _pitchside_containers(build):
        names = {e["name"] for e in container.get("env", [])}
        assert not names & {"PITCHSIDE_TOKEN", "PITCHSIDE_VIEWER_TOKEN"}


def test_the_secret_example_holds_placeholders_and_is_never_applied() -> None:
    example = yaml.safe_load(SECRET_EXAMPLE.read_text())
    assert (example["kind"], example["metadata"]["name"]) == ("Secret", "pitchside")
    for name, value in example["stringData"].items():
        assert "REPLACE_ME" in value, f"{name} is not a placeholder"
    for kustomization in K8S.rglob("kustomization.yaml"):
        k = yaml.safe_load(kustomization.read_text())
        used = [*k.get("resources", []), *(p["path"] for p in k.get("patches", []))]
        assert not [u for u in used if "secret" in u], kustomization


@pytest.mark.parametrize("build", [*OVERLAYS, "redis"])
def test_every_container_has_resources_and_runs_locked_down(build: str) -> None:
    for name, deployment in by_kind(rendered(build), "Deployment").items():
        spec = pod_spec(deployment)
        assert spec["automountServiceAccountToken"] is False, name
        assert spec.get("serviceAccountName"), f"{name} runs as the default account"
        security = spec["securityContext"]
        assert security["runAsNonRoot"] is True, name
        assert security["runAsUser"] >= 10000, name  # no clash with a host's users
        assert security["seccompProfile"] == {"type": "RuntimeDefault"}, name
        for container in spec["containers"]:
            resources = container["resources"]
            for kind in ("requests", "limits"):
                assert {"cpu", "memory"} <= set(resources[kind]), f"{name}: {kind}"
            assert container["securityContext"] == {
                "allowPrivilegeEscalation": False,
                "readOnlyRootFilesystem": True,
                "capabilities": {"drop": ["ALL"]},
            }, name
            assert ":" in container["image"].rsplit("/", 1)[-1], f"{name}: no tag"


def test_the_gpu_overlay_runs_the_workers_on_gpus_with_the_gpu_image() -> None:
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    gpu = by_kind(rendered("gpu"), "Deployment")
    cpu = by_kind(rendered("cpu"), "Deployment")
    worker = pod_spec(gpu["worker"])
    (container,) = worker["containers"]
    assert container["image"] == f"pitchside-gpu:{version}-gpu"
    for kind in ("requests", "limits"):
        assert container["resources"][kind]["nvidia.com/gpu"] == "1"
    assert worker["nodeSelector"] == {"pitchside.io/pool": "gpu"}  # deploy/terraform/eks.tf
    assert {"key": "nvidia.com/gpu", "operator": "Equal", "value": "true",
            "effect": "NoSchedule"} in worker["tolerations"]  # fmt: skip
    # the rest of the worker as in the base, and every other service as on CPU
    assert {e["name"] for e in container["env"]} == {
        e["name"] for e in pod_spec(cpu["worker"])["containers"][0]["env"]
    }
    for name in set(gpu) - {"worker"}:
        assert gpu[name] == cpu[name], name
    for name, container in _pitchside_containers("cpu"):
        assert container["image"] == f"pitchside:{version}", name
        assert "nvidia.com/gpu" not in container["resources"]["limits"], name
    frames = by_kind(rendered("gpu"), "ScaledObject")["worker"]["spec"]["triggers"][1]
    base = by_kind(rendered("cpu"), "ScaledObject")["worker"]["spec"]["triggers"][1]
    assert float(frames["metadata"]["threshold"]) > float(base["metadata"]["threshold"])


def _constants(module: str) -> dict[str, Any]:
    """The module-level constants of ``module`` (a path under the repository), unimported."""
    tree = ast.parse((ROOT / module).read_text())
    found: dict[str, Any] = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name):
            try:
                found[node.targets[0].id] = ast.literal_eval(node.value)
            except ValueError:
                pass
        elif isinstance(node, ast.ClassDef):
            for item in node.body:
                if isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name):
                    if item.value is not None:
                        try:
                            found[f"{node.name}.{item.target.id}"] = ast.literal_eval(item.value)
                        except ValueError:
                            pass
    return found


def test_grace_periods_cover_each_services_drain() -> None:
    deployments = by_kind(rendered("cpu"), "Deployment")

    def grace(name: str) -> int:
        value: int = pod_spec(deployments[name])["terminationGracePeriodSeconds"]
        return value

    def pre_stop_s(name: str) -> float:
        (container,) = pod_spec(deployments[name])["containers"]
        hook = container.get("lifecycle", {}).get("preStop", {}).get("exec")
        return float(hook["command"][1]) if hook else 0.0

    gateway = _constants("gateway/__main__.py")
    ingest = _constants("ingest/service.py")
    exporter = _constants("pitchside/exporter.py")
    child = _constants("pitchside/supervisor.py")["ChildSpec.stop_timeout_s"]
    # the gateway: out of the Service first, then uvicorn's graceful shutdown
    assert pre_stop_s("gateway") >= 5
    assert grace("gateway") > pre_stop_s("gateway") + gateway["GRACEFUL_SHUTDOWN_S"]
    # ingest: every stream's stop deadline, twice if it is cancelled, and the metrics server
    drain = (
        ingest["READ_BLOCK_MS"] / 1000 + 2 * ingest["STOP_DEADLINE_S"] + exporter["STOP_TIMEOUT_S"]
    )
    assert grace("ingest") > drain
    # workers and trackers: the drain every service keeps (`pitchside up`'s stop timeout)
    for name in ("worker", "tracker"):
        assert grace(name) > child, name
    for name in PITCHSIDE:
        assert grace(name) > child, name


@pytest.mark.parametrize("build", [*OVERLAYS, "redis"])
def test_services_and_budgets_select_real_pods(build: str) -> None:
    objects = rendered(build)
    pods = {
        name: (pod_spec(d), d["spec"]["template"]["metadata"]["labels"])
        for name, d in by_kind(objects, "Deployment").items()
    }

    def selected(selector: dict[str, str]) -> list[str]:
        return [n for n, (_, labels) in pods.items() if selector.items() <= labels.items()]

    for name, deployment in by_kind(objects, "Deployment").items():
        assert selected(deployment["spec"]["selector"]["matchLabels"]) == [name]
    for name, service in by_kind(objects, "Service").items():
        (target,) = selected(service["spec"]["selector"])
        ports = {p["name"] for c in pods[target][0]["containers"] for p in c.get("ports", [])}
        for port in service["spec"]["ports"]:
            assert port["targetPort"] in ports, f"Service {name}: {port}"
    budgets = by_kind(objects, "PodDisruptionBudget")
    for name in set(PITCHSIDE) & set(pods):
        assert selected(budgets[name]["spec"]["selector"]["matchLabels"]) == [name]
        assert budgets[name]["spec"]["maxUnavailable"] >= 1, "a budget must not block drains"
    for name, policy in by_kind(objects, "NetworkPolicy").items():
        assert selected(policy["spec"]["podSelector"]["matchLabels"]) == [name]
    claims = set(by_kind(objects, "PersistentVolumeClaim"))
    for name, (spec, _) in pods.items():
        for volume in spec.get("volumes", []):
            if "persistentVolumeClaim" in volume:
                assert volume["persistentVolumeClaim"]["claimName"] in claims, name
            if "configMap" in volume:
                assert volume["configMap"]["name"] in by_kind(objects, "ConfigMap"), name


def test_the_ingress_keeps_websockets_and_uploads_open() -> None:
    objects = rendered("cpu")
    ingress = by_kind(objects, "Ingress")["gateway"]
    notes = ingress["metadata"]["annotations"]
    for timeout in ("proxy-read-timeout", "proxy-send-timeout"):
        assert int(notes[f"nginx.ingress.kubernetes.io/{timeout}"]) >= 3600
    assert (
        "idle_timeout.timeout_seconds=3600"
        in notes["alb.ingress.kubernetes.io/load-balancer-attributes"]
    )
    upload_max_mb = Settings.from_env({}).upload_max_mb
    assert int(notes["nginx.ingress.kubernetes.io/proxy-body-size"].rstrip("m")) >= upload_max_mb
    (rule,) = ingress["spec"]["rules"]
    (path,) = rule["http"]["paths"]
    backend = path["backend"]["service"]
    service = by_kind(objects, "Service")[backend["name"]]
    assert backend["port"]["name"] in {p["name"] for p in service["spec"]["ports"]}


def test_the_monitoring_copies_match_monitoring() -> None:
    for copy_path, original in COPIES.items():
        assert (K8S / copy_path).read_bytes() == (ROOT / original).read_bytes(), (
            f"deploy/kubernetes/{copy_path} differs from {original}: cp {original} "
            f"deploy/kubernetes/{copy_path}"
        )


def test_prometheus_scrapes_every_headless_service() -> None:
    objects = rendered("cpu")
    config = yaml.safe_load(
        by_kind(objects, "ConfigMap")["prometheus-config"]["data"]["prometheus.yml"]
    )
    (job,) = config["scrape_configs"]
    scraped = {(c["names"][0], c["port"]) for c in job["dns_sd_configs"]}
    headless = {
        (name, service["spec"]["ports"][0]["port"])
        for name, service in by_kind(objects, "Service").items()
        if service["spec"].get("clusterIP") == "None"
    }
    assert scraped == headless
    assert {name.removesuffix("-metrics") for name, _ in scraped} == set(PITCHSIDE)
    promtool = require_tool("promtool", "apt-get install prometheus")
    done = subprocess.run(
        [promtool, "check", "config", str(K8S / "base" / "monitoring" / "prometheus.yml")],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr


# -- checkov --------------------------------------------------------------------------------


@pytest.mark.parametrize("build", [*OVERLAYS, "redis"])
def test_checkov_skips_give_a_reason(build: str) -> None:
    for obj in rendered(build):
        for name, value in obj["metadata"].get("annotations", {}).items():
            if name.startswith("checkov.io/skip"):
                match = CHECKOV_SKIP.match(value)
                assert match, f"{key(obj)}: malformed skip {value!r}"
                assert len(match.group(2).split()) >= 5, f"{key(obj)}: {match.group(1)} why?"


def test_the_rendered_manifests_pass_checkov(tmp_path: Path) -> None:
    # checkov pins packaging<24, which pytest cannot use: it lives in a virtual environment of
    # its own, linked as .venv/bin/checkov (deploy/README.md, "Terraform")
    checkov = require_tool("checkov", "see deploy/README.md: checkov in its own venv")
    for build in [*OVERLAYS, "redis"]:
        (tmp_path / f"{build}.yaml").write_text(yaml.safe_dump_all(rendered(build)))
    done = subprocess.run(
        [checkov, "-d", str(tmp_path), "--framework", "kubernetes", "--compact", "--quiet",
         "--skip-download", "--output", "json"],
        capture_output=True, text=True, timeout=240, check=False,
    )  # fmt: skip
    report = json.loads(done.stdout)
    (report,) = report if isinstance(report, list) else [report]
    failed = [
        f"{c['check_id']} {c['resource']}: {c['check_name']}"
        for c in report["results"]["failed_checks"]
    ]
    assert not failed, "checkov found problems (fix, or skip with a reason):\n" + "\n".join(failed)
    summary = report["summary"]
    assert summary["parsing_errors"] == 0, summary
    assert summary["passed"] > 0 and summary["resource_count"] > 0, "checkov scanned nothing"
    assert done.returncode == 0, done.stderr[-2000:]
