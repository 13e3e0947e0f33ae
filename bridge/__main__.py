"""`python -m bridge` is the `segue` command."""

import multiprocessing

from bridge.cli import entry

if __name__ == "__main__":
    multiprocessing.freeze_support()  # the packaged app's worker processes start here
    entry()
