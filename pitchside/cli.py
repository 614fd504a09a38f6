"""The ``pitchside`` command: one subcommand per service or tool, imported only when chosen.

This is the one entry point of every pitchside process (``python -m ingest`` and the other
service ``__main__`` modules call :func:`main` too). It is the only place that reads the
environment: it builds :class:`~pitchside.settings.Settings` once, sets up logging, and
passes the settings down. Every command lives in a module that exposes
``add_arguments(parser)`` and ``run(args, settings) -> int``; ``pitchside --help`` lists
them all from :data:`COMMANDS` without importing any of them, so that a light command never
pays for a heavy one (``import mlflow`` alone costs about 2 s).

Every user error ends the same way, whatever the command: one line on stderr naming the
problem and exit status 2 (:class:`~pitchside.errors.ExitCode`), never a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import MutableMapping, Sequence
from types import ModuleType

from pitchside import __version__
from pitchside.errors import CommandUnavailableError, ExitCode, PitchsideError
from pitchside.logs import setup_logging
from pitchside.settings import Settings

#: name -> (module path, one-line help). The module is imported only when its command runs.
COMMANDS: dict[str, tuple[str, str]] = {
    "up": ("pitchside.up", "run the whole stack on this machine: Redis, gateway, ingest, workers"),
    "ingest": ("ingest.__main__", "run the ingest service: decode sources, publish frames"),
    "worker": ("workers.__main__", "run one detection worker: frames in, detections out"),
    "tracker": ("tracker.__main__", "run the tracker: one owner per stream, tracks and teams"),
    "gateway": ("gateway.__main__", "run the gateway: REST API, WebSocket fan-out, viewer"),
    "analyse": ("pitchside.analyse_cli", "upload a match video, analyse every frame, download"),
    "train": ("training.train_cli", "fine-tune a detector or a classifier, tracked in MLflow"),
    "evaluate": ("training.evaluate_cli", "score a model on the held-out split"),
    "track": ("tracker.track_cli", "track MOTChallenge detections offline, as the stage does"),
    "track-eval": ("tracker.eval_cli", "score MOTChallenge tracks: HOTA, IDF1, MOTA, ID switches"),
    "export": ("training.export_cli", "export a .pt to ONNX, optionally also INT8"),
    "models": ("training.models_cli", "list, promote and export registered models"),
    "bench": ("bench", "measure throughput and latency of the pipeline"),
    "healthcheck": ("pitchside.healthcheck", "exit 0 when this container's service is healthy"),
}


def build_parser(chosen: str | None = None) -> argparse.ArgumentParser:
    """The top-level parser; only the ``chosen`` command's module is imported and asked
    for its arguments.

    Raises:
        CommandUnavailableError: the chosen command's module is missing or incomplete.
    """
    parser = argparse.ArgumentParser(
        prog="pitchside",
        description="Streaming video analytics for football.",
        epilog="Run 'pitchside COMMAND --help' for the options of one command.",
    )
    parser.add_argument("--version", action="version", version=f"pitchside {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (_, help_text) in COMMANDS.items():
        command = sub.add_parser(name, help=help_text, description=help_text)
        if name == chosen:
            module = load_command(name)
            module.add_arguments(command)
            command.set_defaults(_run=module.run)
    return parser


def load_command(name: str) -> ModuleType:
    """Import the module of command ``name`` and check that it has add_arguments and run.

    Raises:
        CommandUnavailableError: with a message a user can act on.
    """
    module_path = COMMANDS[name][0]
    try:
        module = importlib.import_module(module_path)
    except ModuleNotFoundError as exc:
        missing = exc.name or "?"
        if module_path == missing or module_path.startswith(missing + "."):
            raise CommandUnavailableError(
                f"command {name!r} is not available in this installation "
                f"(its module {module_path} does not exist)"
            ) from exc
        raise CommandUnavailableError(
            f"command {name!r} needs the Python package {missing!r}, which is not installed "
            "(the training commands need the 'train' extra: pip install -e '.[train]')"
        ) from exc
    for attr in ("add_arguments", "run"):
        if not callable(getattr(module, attr, None)):
            raise CommandUnavailableError(
                f"command {name!r} is broken: {module_path} has no {attr}() function"
            )
    return module


def prepare_environ(environ: MutableMapping[str, str], settings: Settings) -> None:
    """What the process environment must hold before a library reads it at import time.

    Ultralytics reads ``YOLO_OFFLINE`` (no update checks, no font or asset downloads:
    nothing is downloaded at run time) and ``YOLO_CONFIG_DIR`` (its settings file, private
    to pitchside's data folder) when it is first imported; a value the user set is kept.
    """
    environ.setdefault("YOLO_OFFLINE", "1")
    environ.setdefault("YOLO_CONFIG_DIR", str((settings.data_dir / "ultralytics").resolve()))


def _chosen_command(argv: Sequence[str]) -> str | None:
    """The first argument that is not an option: the command (top-level options take no value)."""
    for arg in argv:
        if arg == "--":
            return None
        if not arg.startswith("-"):
            return arg if arg in COMMANDS else None
    return None


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``pitchside`` console script and of every ``python -m`` form.

    Returns:
        The command's exit status; 2 for a usage error, a bad setting or a command that
        is not available.
    """
    args_list = list(sys.argv[1:] if argv is None else argv)
    try:
        parser = build_parser(_chosen_command(args_list))
    except CommandUnavailableError as exc:
        print(f"pitchside: {exc}", file=sys.stderr)
        return exc.exit_code
    try:
        args = parser.parse_args(args_list)
    except SystemExit as exc:  # --help, --version, or a usage error already printed
        return exc.code if isinstance(exc.code, int) else ExitCode.USAGE
    try:
        settings = Settings.from_env(os.environ)
        prepare_environ(os.environ, settings)
        setup_logging(settings, args.command)
        return int(args._run(args, settings))
    except KeyboardInterrupt:
        return ExitCode.INTERRUPTED
    except PitchsideError as exc:  # a user's mistake: one line, not a traceback
        print(f"pitchside {args.command}: {exc}", file=sys.stderr)
        return exc.exit_code
