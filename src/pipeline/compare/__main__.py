"""`python -m pipeline.compare`: the command (pipeline.compare.cli)."""

import sys

from pipeline.compare.cli import main

if __name__ == "__main__":
    sys.exit(main())
