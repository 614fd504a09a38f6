""".github/workflows, checked statically and offline.

Each workflow must validate against GitHub's workflow schema (check-jsonschema's vendored
copy), zizmor (auditor persona, every severity) must report nothing that is not ignored
inline with a reason, every action must be pinned by commit, and the commands the workflows
run must be the project's own (``.ci/run``, ``pitchside train`` with options it has).
"""

from __future__ import annotations

import argparse
import re
import shlex
import subprocess
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import ASSETS, require_asset, require_tool
from training import dataset

ROOT = Path(__file__).resolve().parents[2]
WORKFLOWS_DIR = ROOT / ".github" / "workflows"
WORKFLOWS = sorted(WORKFLOWS_DIR.glob("*.y*ml"))
PINNED = re.compile(r"^[\w.-]+/[\w./-]+@[0-9a-f]{40}$")
VERSION_COMMENT = re.compile(r"uses:\s*\S+@[0-9a-f]{40}\s+#\s*v\d+(\.\d+)*\s*$")


@cache
def workflow(path: Path) -> dict[Any, Any]:
    doc: dict[Any, Any] = yaml.safe_load(path.read_text())
    if True in doc:  # YAML 1.1 reads the key `on` as a bool
        doc["on"] = doc.pop(True)
    return doc


def jobs(path: Path) -> dict[str, dict[str, Any]]:
    result: dict[str, dict[str, Any]] = workflow(path)["jobs"]
    return result


def steps(path: Path) -> list[dict[str, Any]]:
    return [step for job in jobs(path).values() for step in job.get("steps", [])]


def _tool(name: str) -> str:
    return require_tool(name, f"make install-dev (the dev extra has {name})")


def test_workflows_exist() -> None:
    names = {p.name for p in WORKFLOWS}
    assert {"ci.yml", "release.yml", "train.yml"} <= names, f"workflows found: {sorted(names)}"


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_workflow_matches_githubs_schema(path: Path) -> None:
    # given: the schema check-jsonschema ships, so nothing is downloaded
    tool = _tool("check-jsonschema")
    # when
    proc = subprocess.run(
        [tool, "--builtin-schema", "vendor.github-workflows", str(path)],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    # then
    assert proc.returncode == 0, f"{path.name} is not a valid workflow:\n{proc.stdout}{proc.stderr}"


def test_workflows_have_no_zizmor_findings() -> None:
    # given: the strictest persona and every severity; what remains must be ignored inline
    tool = _tool("zizmor")
    # when
    proc = subprocess.run(
        [tool, "--offline", "--persona", "auditor", "--no-progress", str(WORKFLOWS_DIR)],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    # then
    assert proc.returncode == 0, f"zizmor findings:\n{proc.stdout}{proc.stderr}"


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_workflow_zizmor_ignores_give_a_reason(path: Path) -> None:
    lines = path.read_text().splitlines()
    for i, line in enumerate(lines):
        if "zizmor: ignore[" in line:
            above = lines[i - 1].strip() if i else ""
            assert above.startswith("#") and len(above.split()) >= 5, (
                f"{path.name}:{i + 1}: say why above a zizmor ignore"
            )


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_workflow_pins_every_action_by_commit(path: Path) -> None:
    uses = [step["uses"] for step in steps(path) if "uses" in step]
    uses += [job["uses"] for job in jobs(path).values() if "uses" in job]
    for ref in uses:
        if ref.startswith("./"):  # a workflow or action of this repository, at this commit
            continue
        assert PINNED.match(ref), f"{path.name}: {ref} is not pinned by a 40-hex commit SHA"
    for line in path.read_text().splitlines():
        if re.search(r"uses:\s*[^.\s][^@\s]*@", line):
            assert VERSION_COMMENT.search(line), f"{path.name}: no version comment: {line.strip()}"


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_workflow_grants_no_permission_by_default(path: Path) -> None:
    assert workflow(path).get("permissions") == {}, f"{path.name}: set permissions: {{}} on top"
    for name, job in jobs(path).items():
        assert "permissions" in job, f"{path.name}: job {name} must say which permissions it needs"


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_workflow_checkouts_keep_no_credentials(path: Path) -> None:
    for step in steps(path):
        if str(step.get("uses", "")).startswith("actions/checkout@"):
            assert step.get("with", {}).get("persist-credentials") is False, (
                f"{path.name}: checkout without persist-credentials: false"
            )


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_workflow_run_scripts_interpolate_no_expressions(path: Path) -> None:
    # Values reach scripts through env:, never by ${{ }} pasted into the script's text.
    for step in steps(path):
        if "run" in step:
            assert "${{" not in step["run"], f"{path.name}: expression in run: {step['run'][:80]}"


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_workflow_has_a_concurrency_group(path: Path) -> None:
    assert "group" in workflow(path).get("concurrency", {}), f"{path.name}: no concurrency group"


def test_ci_workflow_runs_the_projects_ci_script_on_pushes_and_pull_requests() -> None:
    ci = WORKFLOWS_DIR / "ci.yml"
    triggers = workflow(ci)["on"]
    assert {"push", "pull_request", "workflow_call"} <= set(triggers), f"ci.yml on: {triggers}"
    assert any(step.get("run", "").strip() == ".ci/run" for step in steps(ci)), "ci.yml: no .ci/run"
    # pushes to main run it through release.yml, before anything is built
    release = jobs(WORKFLOWS_DIR / "release.yml")
    assert release["ci"]["uses"] == "./.github/workflows/ci.yml"
    assert release["images"]["needs"] == "ci"
    assert "main" in workflow(WORKFLOWS_DIR / "release.yml")["on"]["push"]["branches"]


def test_release_workflow_deploys_the_cpu_overlay_with_oidc() -> None:
    release = WORKFLOWS_DIR / "release.yml"
    deploy = jobs(release)["deploy"]
    assert deploy["permissions"].get("id-token") == "write"
    assert deploy["environment"] == "production"
    scripts = "\n".join(step.get("run", "") for step in deploy["steps"])
    assert "aws eks update-kubeconfig" in scripts
    assert "kubectl apply -k" in scripts
    assert deploy["env"]["OVERLAY"] == "deploy/kubernetes/overlays/cpu"
    text = release.read_text()
    assert "aws-access-key-id" not in text and "AWS_SECRET_ACCESS_KEY" not in text


def test_train_workflow_triggers_on_training_code_and_the_fingerprint() -> None:
    train = workflow(WORKFLOWS_DIR / "train.yml")
    paths = train["on"]["push"]["paths"]
    assert "training/**" in paths, "training/dataset.fingerprint and the code live there"
    inputs = train["on"]["workflow_dispatch"]["inputs"]
    assert {"epochs", "imgsz"} <= set(inputs), f"dispatch inputs: {sorted(inputs)}"


def _train_parser() -> argparse.ArgumentParser:
    from training.train_cli import add_arguments

    parser = argparse.ArgumentParser(prog="pitchside train", exit_on_error=False)
    add_arguments(parser)
    return parser


def test_train_workflow_uses_options_pitchside_train_has() -> None:
    # given: the command of the training step, with its shell variables given sample values
    script = next(
        step["run"]
        for step in steps(WORKFLOWS_DIR / "train.yml")
        if "pitchside train" in step.get("run", "")
    )
    command = script.replace("\\\n", " ").split("pitchside train", 1)[1]
    sample = {"EPOCHS": "3", "IMGSZ": "640", "RUNNER_TEMP": "/tmp", "GITHUB_SHA::12": "abc"}
    for name, value in sample.items():
        command = command.replace("${" + name + "}", value).replace("$" + name, value)
    # when
    args = _train_parser().parse_args(shlex.split(command))
    # then: the champion/challenger decision runs on the held-out split
    assert args.promote_split == "test"
    assert not args.no_promote and not args.no_export
    assert args.epochs == 3 and args.imgsz == 640


def test_the_committed_data_set_fingerprint_is_the_training_data_set() -> None:
    # given training/dataset.fingerprint, as train.yml reads it
    fields = dict(
        line.split("=", 1)
        for line in (ROOT / "training" / "dataset.fingerprint").read_text().splitlines()
        if line and not line.startswith("#")
    )
    assert re.fullmatch(r"[A-Za-z0-9._/-]+", fields["prefix"]) and ".." not in fields["prefix"]
    # then its sha256 is that of the shared copy of the data set the default detector used
    data = require_asset(ASSETS / "datasets" / "football-players-detection" / "data.yaml")
    assert fields["sha256"] == dataset.fingerprint(dataset.load(data))
