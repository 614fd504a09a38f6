"""``pitchside ingest`` / ``python -m ingest``: run one ingest service until SIGTERM or SIGINT."""

from __future__ import annotations

import argparse
import functools
import sys

from ingest.service import serve
from pitchside.service import run_service
from pitchside.settings import Settings


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ingest options."""
    parser.add_argument(
        "--name",
        help="consumer and heartbeat name, unique per process (default: ingest-HOST-PID)",
    )


def run(args: argparse.Namespace, settings: Settings) -> int:
    """Serve until a signal; the process exit status."""
    return run_service("ingest", functools.partial(serve, name=args.name), settings)


if __name__ == "__main__":
    from pitchside.cli import main

    raise SystemExit(main(["ingest", *sys.argv[1:]]))
