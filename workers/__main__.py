"""``pitchside worker`` / ``python -m workers``: run one detection worker.

Exit status: 0 after a clean stop (SIGTERM/SIGINT), 2 for a bad setting or model (the log
says which; a restart will not help), 1 for anything else.
"""

from __future__ import annotations

import argparse
import functools
import sys

from pitchside.service import run_service
from pitchside.settings import Settings
from workers.worker import serve


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of the worker command."""
    parser.add_argument(
        "--name",
        default=None,
        help="consumer name in the workers group, health key id and Redis client name "
        "(default: worker-<hostname>-<pid>)",
    )


def run(args: argparse.Namespace, settings: Settings) -> int:
    """Serve until a signal; the exit status."""
    return run_service("worker", functools.partial(serve, name=args.name), settings)


if __name__ == "__main__":
    import pitchside.cli

    raise SystemExit(pitchside.cli.main(["worker", *sys.argv[1:]]))
