"""The ``pitchside`` command line: lazy commands, clear errors, exit statuses."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from pitchside import cli
from pitchside.settings import Settings

HEAVY = ("mlflow", "torch", "ultralytics", "onnxruntime", "cv2", "av", "fastapi", "uvicorn")


def run_python(code: str, timeout_s: float = 60.0) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=timeout_s,
    )


def test_help_lists_every_command_without_importing_any() -> None:
    # given a fresh interpreter
    # when the top-level help is printed
    result = run_python(
        """
        import json, sys
        from pitchside.cli import main
        code = main(["--help"])
        print("MODULES=" + json.dumps(sorted(sys.modules)))
        sys.exit(code)
        """
    )
    # then it exits 0 and names every command with its help line
    assert result.returncode == 0, result.stderr
    for name, (_, help_text) in cli.COMMANDS.items():
        assert name in result.stdout
        assert help_text.split(":")[0][:30] in " ".join(result.stdout.split())
    # and no command module, nor anything heavy, was imported
    modules = json.loads(result.stdout.split("MODULES=")[1])
    command_modules = [path for path, _ in cli.COMMANDS.values()]
    imported = [m for m in modules if m in command_modules or m.split(".")[0] in HEAVY]
    assert imported == [], f"--help imported {imported}"


def test_python_dash_m_pitchside_prints_help() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "pitchside", "--help"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert "usage: pitchside" in result.stdout


def test_unknown_command_exits_2_with_the_choices(capsys: pytest.CaptureFixture[str]) -> None:
    code = cli.main(["kickoff"])
    err = capsys.readouterr().err
    assert code == 2
    assert "invalid choice: 'kickoff'" in err
    assert "up" in err and "worker" in err


def test_no_command_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main([]) == 2
    assert "required" in capsys.readouterr().err


def test_version_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["--version"]) == 0
    assert capsys.readouterr().out.startswith("pitchside ")


@pytest.fixture
def fake_commands(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A command table of small modules written to ``tmp_path``, importable for this test."""
    (tmp_path / "fakecmd_ok.py").write_text(
        textwrap.dedent(
            """
            from pitchside.errors import ModelError, SchemaError
            def add_arguments(parser):
                parser.add_argument("--times", type=int, default=1)
                parser.add_argument("--fail", choices=("user", "runtime"))
            def run(args, settings):
                if args.fail == "user":
                    raise ModelError("model file '/nope.onnx' does not exist")
                if args.fail == "runtime":
                    raise SchemaError("frames message is v9, this build reads v1")
                print("ran", args.times, "port", settings.port)
                return 7
            """
        )
    )
    (tmp_path / "fakecmd_norun.py").write_text("def add_arguments(parser):\n    pass\n")
    (tmp_path / "fakecmd_needs.py").write_text("import pitchside_no_such_dependency\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(
        cli,
        "COMMANDS",
        {
            "ok": ("fakecmd_ok", "a command that works"),
            "norun": ("fakecmd_norun", "a module without run()"),
            "needs": ("fakecmd_needs", "a module whose dependency is missing"),
            "absent": ("fakecmd_absent.sub", "a module that does not exist yet"),
        },
    )
    return tmp_path


def test_command_runs_with_its_own_arguments_and_returns_its_status(
    fake_commands: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # given a setting in the environment
    monkeypatch.setenv("PITCHSIDE_PORT", "8123")
    # when a command runs, it gets its arguments and the settings read once by the CLI
    assert cli.main(["ok", "--times", "3"]) == 7
    assert capsys.readouterr().out == "ran 3 port 8123\n"


def test_a_bad_setting_is_one_line_naming_the_variable_and_exit_2(
    fake_commands: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # given a variable with a value pitchside cannot use
    monkeypatch.setenv("PITCHSIDE_BATCH", "lots")
    # when any command starts
    code = cli.main(["ok"])
    # then it does not run: one line names the variable and the value, exit status 2
    captured = capsys.readouterr()
    assert code == 2 and captured.out == ""
    assert captured.err == "pitchside ok: PITCHSIDE_BATCH must be an integer, got 'lots'\n"


@pytest.mark.parametrize(("fail", "status"), [("user", 2), ("runtime", 1)])
def test_an_error_from_a_command_is_one_line_with_its_exit_status(
    fake_commands: Path, capsys: pytest.CaptureFixture[str], fail: str, status: int
) -> None:
    # when a command raises an error of the hierarchy
    code = cli.main(["ok", "--fail", fail])
    # then the user sees one line, never a traceback, and the error's own exit status
    err = capsys.readouterr().err
    assert code == status
    assert err.count("\n") == 1 and err.startswith("pitchside ok: ")
    assert "Traceback" not in err


def test_prepare_environ_keeps_ultralytics_offline_and_private(tmp_path: Path) -> None:
    # given an environment without Ultralytics' variables, and one where the user set them
    settings = Settings.from_env({"PITCHSIDE_DATA_DIR": str(tmp_path)})
    fresh: dict[str, str] = {}
    chosen = {"YOLO_OFFLINE": "0", "YOLO_CONFIG_DIR": "/elsewhere"}
    # when the CLI prepares them
    cli.prepare_environ(fresh, settings)
    cli.prepare_environ(chosen, settings)
    # then nothing is downloaded and its settings live in the data folder, unless set
    assert fresh == {"YOLO_OFFLINE": "1", "YOLO_CONFIG_DIR": str(tmp_path / "ultralytics")}
    assert chosen == {"YOLO_OFFLINE": "0", "YOLO_CONFIG_DIR": "/elsewhere"}


@pytest.mark.parametrize(
    ("command", "says"),
    [
        ("absent", "command 'absent' is not available in this installation"),
        ("norun", "has no run() function"),
        ("needs", "needs the Python package 'pitchside_no_such_dependency'"),
    ],
)
def test_unavailable_command_gives_a_clear_error_not_a_traceback(
    fake_commands: Path, capsys: pytest.CaptureFixture[str], command: str, says: str
) -> None:
    # when a command whose module cannot be used is chosen
    code = cli.main([command])
    err = capsys.readouterr().err
    # then one line says why, and the exit status is 2
    assert code == 2
    assert says in err
    assert "Traceback" not in err
    assert err.startswith("pitchside: ")


def test_help_of_other_commands_imports_only_the_chosen_one(fake_commands: Path) -> None:
    # given a table where one command's module is broken
    # when another command's help is asked for
    with pytest.raises(SystemExit) as caught:
        cli.build_parser("ok").parse_args(["ok", "--help"])
    # then it works: the broken module is never imported
    assert caught.value.code == 0
    assert "fakecmd_needs" not in sys.modules


def test_up_help_lists_its_options(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["up", "--help"]) == 0
    out = capsys.readouterr().out
    for option in ("--source", "--loop", "--workers", "--host", "--port"):
        assert option in out


def test_every_command_module_is_named_once() -> None:
    paths = [path for path, _ in cli.COMMANDS.values()]
    assert len(set(paths)) == len(paths)
    assert set(cli.COMMANDS) >= {"up", "ingest", "worker", "gateway", "train", "bench"}
    assert isinstance(cli.build_parser(), argparse.ArgumentParser)
