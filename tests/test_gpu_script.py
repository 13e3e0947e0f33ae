"""scripts/gpu_train.sh, run at tiny size on the CPU: the checkpoint comes back in pieces that
join into the very file trained, and the joined checkpoint loads."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from engine.models.checkpoint import load_checkpoint

ROOT = Path(__file__).resolve().parents[1]
LIMIT = 30
pytestmark = pytest.mark.usefixtures("segue_home")  # conftest.py: a private home


def test_the_gpu_script_brings_back_a_checkpoint_in_pieces(tmp_path: Path):
    out = tmp_path / "out"
    env = {**os.environ, "TINY": "1", "OUT": str(out), "PYTHON": sys.executable}
    result = subprocess.run(["bash", str(ROOT / "scripts" / "gpu_train.sh")], env=env,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    pieces = sorted(out.glob("model.safetensors.part-*"))
    assert pieces and all(p.stat().st_size <= 15 * 1024 * 1024 for p in pieces)
    checkpoint = tmp_path / "checkpoint"
    checkpoint.mkdir()
    with open(checkpoint / "model.safetensors", "wb") as joined:
        for piece in pieces:
            joined.write(piece.read_bytes())
    digest = hashlib.sha256((checkpoint / "model.safetensors").read_bytes()).hexdigest()
    assert digest == (out / "model.safetensors.sha256").read_text().strip()
    for name in ("config.json", "tokenizer.json"):
        shutil.copy(out / name, checkpoint / name)
    loaded = load_checkpoint(checkpoint, device="cpu")
    assert loaded.config["model"]["layers"] == 2
