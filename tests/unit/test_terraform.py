"""deploy/terraform, checked statically: there is no terraform binary on our machines.

Every file must parse (python-hcl2), every input must be typed, described and, unless it is a
bool, validated, every output described, no secret written into a file, and checkov must find
nothing that is neither fixed nor skipped inline with a reason. python-hcl2 and checkov are
optional tools: without them, the tests that need them skip and say what to install.
"""

from __future__ import annotations

import re
import subprocess
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import require_tool

ROOT = Path(__file__).resolve().parents[2]
TF_DIR = ROOT / "deploy" / "terraform"
TF_FILES = sorted(p for p in TF_DIR.rglob("*.tf") if ".terraform" not in p.parts)
CONFIGS = (TF_DIR, TF_DIR / "bootstrap")  # the two root modules

# Variables whose values are secrets: sensitive, and never a default.
SECRET_NAME = re.compile(r"(token|password|secret|private_key)", re.IGNORECASE)
SECRET_TEXT = (
    re.compile(r"AKIA[0-9A-Z]{16}"),  # an AWS access key id
    re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----"),
    re.compile(r"(?i)\b(password|auth_token|secret_key|access_key)\s*=\s*\"[^\"$]+\""),
    re.compile(r"(?i)aws_secret_access_key"),
)
CHECKOV_SKIP = re.compile(r"#checkov:skip=(CKV2?_AWS_\d+):(.*)")


def _hcl2() -> Any:
    return pytest.importorskip(
        "hcl2", reason="python-hcl2 is not installed: pip install python-hcl2"
    )


@cache
def parsed(path: Path) -> dict[str, Any]:
    with path.open() as f:
        doc: dict[str, Any] = _hcl2().load(f)
    return doc


def unquote(value: object) -> str:
    """python-hcl2 keeps the quotes of string literals: ``'"x"'`` -> ``x``."""
    text = str(value)
    return text[1:-1] if len(text) >= 2 and text[0] == text[-1] == '"' else text


def blocks(kind: str, config: Path) -> dict[str, dict[str, Any]]:
    """Every ``kind`` block (variable, output) of one root module, by name."""
    found: dict[str, dict[str, Any]] = {}
    for path in sorted(config.glob("*.tf")):
        for block in parsed(path).get(kind, []):
            for name, body in block.items():
                found[unquote(name)] = body
    return found


def test_terraform_files_exist() -> None:
    names = {p.relative_to(TF_DIR).as_posix() for p in TF_FILES}
    for required in ("versions.tf", "variables.tf", "outputs.tf", "bootstrap/main.tf"):
        assert required in names, f"deploy/terraform/{required} is missing"


@pytest.mark.parametrize("path", TF_FILES, ids=lambda p: p.relative_to(TF_DIR).as_posix())
def test_terraform_file_parses_with_hcl2(path: Path) -> None:
    # when
    doc = parsed(path)
    # then
    assert isinstance(doc, dict), f"{path} did not parse into a mapping"


@pytest.mark.parametrize("config", CONFIGS, ids=lambda p: p.name)
def test_terraform_pins_terraform_and_the_aws_provider(config: Path) -> None:
    terraform = [b for p in config.glob("*.tf") for b in parsed(p).get("terraform", [])]
    assert len(terraform) == 1, f"{config}: expected one terraform block, got {len(terraform)}"
    block = terraform[0]
    assert unquote(block.get("required_version", "")).startswith(">="), (
        f"{config}: required_version must set a lower bound"
    )
    providers = block["required_providers"][0]
    aws = providers["aws"]
    assert unquote(aws["source"]) == "hashicorp/aws"
    assert re.fullmatch(r"~> \d+\.\d+", unquote(aws["version"])), (
        f"{config}: pin the aws provider with ~> MAJOR.MINOR, got {aws['version']}"
    )


def test_terraform_state_is_remote_in_s3_with_native_locking() -> None:
    block = parsed(TF_DIR / "versions.tf")["terraform"][0]
    backend = block["backend"][0]
    assert list(backend) == ['"s3"'], f'expected a backend "s3", got {list(backend)}'
    s3 = backend['"s3"']
    assert s3.get("use_lockfile") is True, "the S3 backend must lock (use_lockfile = true)"
    assert s3.get("encrypt") is True, "the S3 backend must encrypt the state"


@pytest.mark.parametrize("config", CONFIGS, ids=lambda p: p.name)
def test_terraform_variables_are_typed_described_and_validated(config: Path) -> None:
    variables = blocks("variable", config)
    assert variables, f"{config} declares no variables"
    for name, body in variables.items():
        assert "type" in body, f"variable {name} has no type"
        assert len(unquote(body.get("description", ""))) >= 10, f"variable {name}: no description"
        # A bool's every value is valid; anything else has values to reject.
        if body["type"] != "bool":
            assert body.get("validation"), f"variable {name} ({body['type']}) has no validation"
        if SECRET_NAME.search(name):
            assert body.get("sensitive") is True, f"variable {name} must be sensitive"
            assert "default" not in body, f"variable {name} must not have a default"


@pytest.mark.parametrize("config", CONFIGS, ids=lambda p: p.name)
def test_terraform_outputs_are_described(config: Path) -> None:
    outputs = blocks("output", config)
    assert outputs, f"{config} declares no outputs"
    for name, body in outputs.items():
        assert len(unquote(body.get("description", ""))) >= 10, f"output {name}: no description"


def test_terraform_redis_auth_token_is_a_sensitive_variable() -> None:
    variables = blocks("variable", TF_DIR)
    assert variables["redis_auth_token"].get("sensitive") is True
    redis = [
        body
        for p in TF_DIR.glob("*.tf")
        for res in parsed(p).get("resource", [])
        for body in res.get('"aws_elasticache_replication_group"', {}).values()
    ]
    assert len(redis) == 1, "expected one aws_elasticache_replication_group"
    assert redis[0]["auth_token"] == "${var.redis_auth_token}"
    assert redis[0]["transit_encryption_enabled"] is True


def test_terraform_files_hold_no_secrets() -> None:
    files = [p for p in TF_DIR.rglob("*") if p.is_file() and ".terraform" not in p.parts]
    assert not [p for p in files if p.suffix == ".tfvars" or p.name.endswith(".tfstate")], (
        "no .tfvars or state files in the repository: give secrets through TF_VAR_*"
    )
    for path in files:
        text = path.read_text()
        for pattern in SECRET_TEXT:
            match = pattern.search(text)
            assert match is None, f"{path}: looks like a hard-coded secret: {match.group(0)!r}"


def test_terraform_checkov_skips_give_a_reason() -> None:
    for path in TF_FILES:
        for line in path.read_text().splitlines():
            if "checkov:skip" not in line:
                continue
            match = CHECKOV_SKIP.search(line)
            assert match, f"{path}: malformed skip: {line.strip()}"
            assert len(match.group(2).split()) >= 5, f"{path}: {match.group(1)} needs a reason"


def _checkov() -> str:
    # checkov pins packaging<24, which pytest cannot use: `make tools` gives it a virtual
    # environment of its own, linked as .venv/bin/checkov
    return require_tool("checkov", "make tools")


def test_terraform_passes_checkov() -> None:
    # given: checkov offline (--skip-download: no guidelines fetched, no API key)
    checkov = _checkov()
    # when
    proc = subprocess.run(
        [checkov, "-d", str(TF_DIR), "--framework", "terraform", "--compact", "--quiet",
         "--skip-download"],
        capture_output=True, text=True, timeout=240, check=False,
    )  # fmt: skip
    # then
    report = proc.stdout[-6000:] + proc.stderr[-2000:]
    assert proc.returncode == 0, (
        f"checkov found problems (fix, or skip inline with a reason):\n{report}"
    )
    assert "Passed checks" in proc.stdout, f"checkov scanned nothing:\n{report}"
