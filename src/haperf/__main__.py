"""Entry point for `python -m haperf`: hands the command line to haperf.cli."""

import sys

from haperf.cli.main import main

if __name__ == "__main__":
    sys.exit(main())
