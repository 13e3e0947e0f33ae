"""The model Segue ships (engine/checkpoints/: one, small enough for git, with its model card),
and segue-open, trained on openly licensed music alone by the script that makes it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from server_helpers import check_bars

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ROOT / "engine" / "checkpoints"
NAMES = ["segue-gpt2-6m"]
CARDS = {"segue-gpt2-6m": SHIPPED / "segue-gpt2-6m" / "MODEL_CARD.md",
         "segue-open": ROOT / "docs" / "models" / "segue-open.md"}


def test_these_models_ship() -> None:
    assert sorted(p.name for p in SHIPPED.iterdir() if p.is_dir()) == NAMES


@pytest.mark.parametrize("name", NAMES)
def test_each_is_under_30_mb(name: str) -> None:
    assert sum(p.stat().st_size for p in (SHIPPED / name).iterdir()) < 30_000_000


@pytest.mark.parametrize("name", sorted(CARDS))
def test_each_model_has_its_card(name: str) -> None:
    card = CARDS[name].read_text()
    assert card.startswith(f"# {name}\n")
    for heading in ("## Data", "## Training", "## Results", "## Use and limits"):
        assert heading in card, heading


def test_segue_open_is_made_by_its_script(tmp_path: Path) -> None:
    """scripts/make_segue_open.sh, at tiny size (its own options, then smaller ones after
    them, as a user may add any): a model in $SEGUE_HOME/models/segue-open that learned from
    CC0 music alone (its run's record: CC0 characters only, no bundled corpus, random weights
    to start from), with the sampling chosen on validation, that `--model segue-open` finds."""
    env = {**os.environ, "SEGUE_HOME": str(tmp_path), "PYTHON": sys.executable}
    made = subprocess.run(["bash", str(ROOT / "scripts" / "make_segue_open.sh"),
                           "--limit-tunes", "6", "--steps", "2", "--eval-every", "1",
                           "--eval-batches", "1", "--block-size", "64", "--batch-size", "2",
                           "--threads", "1", "--workers", "1", "--no-progress"],
                          capture_output=True, text=True, timeout=900, env=env, cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    config = json.loads((tmp_path / "models" / "segue-open" / "best" / "config.json")
                        .read_text())
    training = config["training"]
    assert set(training["data"]["characters_by_licence"]) == {"CC0 1.0"}
    assert training["config"]["bundled"] is False
    assert training["config"]["init_from"] is None
    assert config["sampling"] == {"temperature": 1.0, "top_p": 0.9, "chord_tones": 1.5}
    done = subprocess.run([sys.executable, "-m", "bridge", "continue",
                           str(ROOT / "examples" / "kesh.abc"), "--bars", "4", "--seed", "1",
                           "--model", "segue-open"],
                          capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr
    check_bars(done.stdout, 4)


def test_asking_for_segue_open_before_making_it_names_the_script(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "bridge", "continue",
                           str(ROOT / "examples" / "kesh.abc"), "--model", "segue-open"],
                          capture_output=True, text=True, timeout=300,
                          env={**os.environ, "SEGUE_HOME": str(tmp_path)})
    assert done.returncode != 0
    assert "make it once with bash scripts/make_segue_open.sh" in done.stderr
    assert "Traceback" not in done.stderr
