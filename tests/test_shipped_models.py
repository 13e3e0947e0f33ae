"""The models Segue ships (engine/checkpoints/): each small enough for git and with its model
card, found by name, and segue-open trained on openly licensed music alone."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from server_helpers import check_bars

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ROOT / "engine" / "checkpoints"
NAMES = ["segue-gpt2-6m", "segue-open"]


def test_these_models_ship() -> None:
    assert sorted(p.name for p in SHIPPED.iterdir() if p.is_dir()) == NAMES


@pytest.mark.parametrize("name", NAMES)
def test_each_is_under_30_mb_and_has_its_card(name: str) -> None:
    folder = SHIPPED / name
    assert sum(p.stat().st_size for p in folder.iterdir()) < 30_000_000
    card = (folder / "MODEL_CARD.md").read_text()
    assert card.startswith(f"# {name}\n")
    for heading in ("## Data", "## Training", "## Results", "## Use and limits"):
        assert heading in card, heading


def test_segue_open_learned_from_cc0_music_alone() -> None:
    """Its training data, as its run recorded it: CC0 only, no bundled corpus, and random
    weights to start from (nothing inherited from a model trained on other data)."""
    training = json.loads((SHIPPED / "segue-open" / "config.json").read_text())["training"]
    assert set(training["data"]["characters_by_licence"]) == {"CC0 1.0"}
    assert training["config"]["bundled"] is False
    assert training["config"]["init_from"] is None


def test_segue_continue_with_segue_open() -> None:
    done = subprocess.run([sys.executable, "-m", "bridge", "continue",
                           str(ROOT / "examples" / "kesh.abc"), "--bars", "4", "--seed", "1",
                           "--model", "segue-open"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    check_bars(done.stdout, 4)
