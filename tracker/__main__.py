"""``pitchside tracker`` / ``python -m tracker``: run one tracker process.

Exit status: 0 after a clean stop (SIGTERM/SIGINT), 2 for a bad setting, 1 for anything else.
"""

from __future__ import annotations

import argparse
import functools
import sys

from pitchside.service import run_service
from pitchside.settings import Settings
from tracker.service import serve


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of the tracker command."""
    parser.add_argument(
        "--name",
        default=None,
        help="the value of its stream leases, health key id and Redis client name "
        "(default: tracker-<hostname>-<pid>)",
    )


def run(args: argparse.Namespace, settings: Settings) -> int:
    """Serve until a signal; the exit status."""
    return run_service("tracker", functools.partial(serve, name=args.name), settings)


if __name__ == "__main__":
    import pitchside.cli

    raise SystemExit(pitchside.cli.main(["tracker", *sys.argv[1:]]))
