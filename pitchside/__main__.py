"""``python -m pitchside``: the same as the ``pitchside`` command."""

import sys

from pitchside.cli import main

if __name__ == "__main__":
    sys.exit(main())
