"""`python -m bridge` is the `segue` command."""

import multiprocessing
import sys

from bridge.cli import main

if __name__ == "__main__":
    multiprocessing.freeze_support()  # the packaged app's worker processes start here
    sys.exit(main())
