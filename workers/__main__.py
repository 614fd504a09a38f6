"""``pitchside worker`` / ``python -m workers``: run one detection worker.

Exit status: 0 after a clean stop (SIGTERM/SIGINT), 2 for a bad setting or model (the log
says which; a restart will not help), 1 for anything else.
"""

from __future__ import annotations

import argparse
import functools
import sys

from pitchside.errors import SettingsError
from pitchside.service import EXIT_CONFIG, run_service
from pitchside.settings import Settings
from workers.worker import default_name, serve


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of the worker command."""
    parser.add_argument(
        "--name",
        default=default_name(),
        help="consumer name in the workers group and health key id (default: %(default)s)",
    )


def run(args: argparse.Namespace) -> int:
    """Build the settings from the environment and serve until a signal; the exit status."""
    try:
        settings = Settings.from_env()
    except SettingsError as exc:
        print(f"worker cannot run: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    return run_service("worker", functools.partial(serve, name=args.name), settings)


if __name__ == "__main__":
    _parser = argparse.ArgumentParser(prog="python -m workers", description=__doc__)
    add_arguments(_parser)
    raise SystemExit(run(_parser.parse_args()))
