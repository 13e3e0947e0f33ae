"""`python -m bridge` is the `segue` command."""

import sys

from bridge.cli import main

sys.exit(main())
