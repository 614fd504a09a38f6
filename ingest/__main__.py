"""``python -m ingest``: run one ingest service until SIGTERM or SIGINT."""

from __future__ import annotations

import argparse
import functools

from ingest.service import default_name, serve
from pitchside.service import run_service
from pitchside.settings import Settings


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ingest options to ``parser`` (shared with the ``pitchside ingest`` command)."""
    parser.add_argument(
        "--name",
        default=default_name(),
        help="consumer and heartbeat name, unique per process (default: %(default)s)",
    )


def run(args: argparse.Namespace) -> int:
    """Build the settings from the environment and serve; returns the process exit code."""
    settings = Settings.from_env()
    return run_service("ingest", functools.partial(serve, name=args.name), settings)


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m ingest", description=__doc__)
    add_arguments(parser)
    return run(parser.parse_args())


if __name__ == "__main__":
    raise SystemExit(main())
