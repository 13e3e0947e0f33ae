"""Segue's own folder on this machine: models, caches and logs live under it."""

from __future__ import annotations

import os
from pathlib import Path


def segue_home() -> Path:
    """Segue's own folder: $SEGUE_HOME, default ~/.segue."""
    return Path(os.environ.get("SEGUE_HOME") or "~/.segue").expanduser()
