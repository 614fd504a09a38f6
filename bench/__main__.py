"""``python -m bench``: the same as ``pitchside bench``."""

import sys

from pitchside.cli import main

if __name__ == "__main__":
    sys.exit(main(["bench", *sys.argv[1:]]))
