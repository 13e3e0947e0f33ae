"""`segue eval` on the tiny random GPT-2: every figure present and in range, bar-exact
continuations, and the measures and the n-gram baseline checked on known inputs."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from bridge.cli import main
from engine.evaluate import SYSTEMS, bars_right, distance, diversity, repetition
from engine.ngram import NGram
from engine.tokenizer import CharTokenizer

LIMIT = 30
HEAD = "X:1\nM:4/4\nL:1/8\nK:G\n"
SHARES = ("parse_share", "bar_share", "in_key_share", "pitch_class_distance",
          "interval_distance", "repetition", "repetition_gap")


pytestmark = pytest.mark.usefixtures("segue_home")  # conftest.py: a private home


@pytest.fixture(scope="module")
def report(model_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("eval") / "report"
    status = main(["eval", "--model", str(model_path), "--n", "3", "--seeds", "2",
                   "--test-tunes", "40", "--limit-tunes", str(LIMIT), "--workers", "1",
                   "--threads", "1", "--device", "cpu", "--no-progress", "--out", str(out)])
    assert status == 0
    return out


def test_every_figure_is_present_and_in_range(report: Path) -> None:
    figures = json.loads((report / "results.json").read_text())
    assert figures["model"] == "tiny-gpt2" and figures["test"]["prompts"] == 3
    systems = figures["systems"]
    assert list(systems) == list(SYSTEMS)
    for name, result in systems.items():
        for key in SHARES:
            assert 0 <= result[key] <= 1, (name, key)
        assert sum(result["pitch_class_histogram"]) == pytest.approx(1)
        assert sum(result["interval_histogram"]) == pytest.approx(1)
    assert systems["model"]["continuations"] == systems["ngram"]["continuations"] == 3 * 2
    assert systems["repeat"]["continuations"] == systems["real"]["continuations"] == 3
    # bar-exact decoding: every continuation parses and every bar has the meter's length
    for name in ("model", "ngram"):
        assert systems[name]["parse_share"] == systems[name]["bar_share"] == 1.0
        assert 0 < systems[name]["diversity"] <= 1
    assert systems["repeat"]["diversity"] is None and systems["real"]["diversity"] is None
    assert systems["real"]["pitch_class_distance"] == systems["real"]["interval_distance"] == 0
    # random weights know nothing (about log2(96) = 6.6 bits); even a small n-gram does better
    assert 5 < systems["model"]["bits_per_char"] < 8
    assert 1 < systems["ngram"]["bits_per_char"] < systems["model"]["bits_per_char"]
    assert systems["repeat"]["bits_per_char"] is None
    assert 3 <= figures["ngram"]["order"] <= 9
    answers = json.loads((report / "continuations.json").read_text())["prompts"]
    assert [len(a["model"]) for a in answers] == [2, 2, 2]
    assert all(bars_right(text, 8) for a in answers for text in a["model"] + a["ngram"])


def test_table_and_plots_are_written(report: Path) -> None:
    table = (report / "table.md").read_text()
    assert "| bits/char ↓ |" in table and "tiny-gpt2" in table and "ngram (" in table
    for name in ("pitch_class_histogram.png", "interval_histogram.png"):
        data = (report / name).read_bytes()
        assert data.startswith(b"\x89PNG") and len(data) > 10_000, name


def test_bar_check_measures_each_bar() -> None:
    assert bars_right(HEAD + "GABc d2B2 | c2A2 (3BAG G2 |]\n", 2)
    assert not bars_right(HEAD + "GABc d2B2 A | c2A2 B2G2 |]\n", 2)  # 9/8: music21 re-bars it
    assert not bars_right(HEAD + "GABc d2B2 | c2A2 B2G |]\n", 2)  # short
    assert not bars_right(HEAD + "GABc d2B2 | c2A2 B2G2 |]\n", 3)  # too few bars
    assert bars_right(HEAD + "|: GABc d2B2 :: [CEG]8 |[1 G8 :|[2 g8 |]\n", 4)
    assert bars_right(HEAD + "G8 | z8 |]\n", 2)  # a bar of rests
    assert bars_right(HEAD + "d2B2 B2 :: Bc | d2B2 g2B2 |]\n", 3)  # split at a repeat
    assert not bars_right(HEAD + "Bc | d2B2 g2B2 |]\n", 2)  # half a bar alone


def test_repetition_diversity_and_distance() -> None:
    assert repetition(HEAD + "G8 | A8 | G8 | G8 |]\n") == 0.5
    assert repetition(HEAD + "G8 | A8 | B8 | c8 |]\n") == 0
    same, other = HEAD + "GABc d2B2 |]\n", HEAD + "e8 |]\n"
    assert diversity([same, same]) == 0 and diversity([same, other]) > 0.5
    assert diversity([same]) is None
    a, b = np.array([0.5, 0.5, 0]), np.array([0, 0.5, 0.5])
    assert distance(a, a) == 0 and distance(a, b) == 0.5 and distance(a, np.zeros(3)) == 1


def test_ngram_is_a_distribution_that_learns() -> None:
    tokenizer = CharTokenizer()
    text = np.array(tokenizer.encode("\n" + HEAD + "GABc d2B2 | " * 50), dtype=np.uint8)
    model = NGram.fit(text, order=4, vocab_size=tokenizer.vocab_size, pad=0)
    logits = model(torch.tensor([tokenizer.encode("GABc d2B")])).logits
    assert logits.shape == (1, 1, tokenizer.vocab_size)
    probs = logits.exp()[0, 0]
    assert float(probs.sum()) == pytest.approx(1, abs=1e-6) and bool((probs > 0).all())
    assert tokenizer.alphabet[int(probs.argmax())] == "2"
    noise = np.random.default_rng(0).integers(0, tokenizer.vocab_size, 500)
    assert model.bits_per_char(text) < 1 < math.log2(tokenizer.vocab_size) < \
        model.bits_per_char(noise)
