"""Chord symbols that fit their bar: the bar's notes are read as abc2midi hears them, each
character of a symbol is weighed by the best fit it can still reach, nothing changes
outside a symbol, and the shipped model's added chords hold more of the melody."""

from __future__ import annotations

import re
from fractions import Fraction
from pathlib import Path

import pytest
import torch

from bridge.cli import main
from engine.abc.bars import BarState
from engine.abc.chord_symbols import pitch_classes, triad
from engine.abc.music import parse_abc
from engine.models.chord_fit import BarNotes, ChordFit, bar_notes, shapes
from engine.models.continuation import Engine, Sampling
from engine.models.infill import accompany_score
from engine.models.tokenizer import CharTokenizer

ALPHABET = tuple(CharTokenizer().token_text)
C, D, E, F, G, A, B = 0, 2, 4, 5, 7, 9, 11
MELODY = """X:1
T:Melody
M:4/4
L:1/8
K:G
G2 B2 d2 B2|c2 e2 d2 A2|B2 G2 E2 G2|A4 F4|
G2 B2 d2 B2|c2 e2 d2 A2|B2 G2 A2 F2|G8|
"""


def notes(*classes: int) -> BarNotes:
    """A bar of these pitch classes, in no key (no chord gains for being in one)."""
    return BarNotes(classes, frozenset())


def test_the_notes_of_a_bar() -> None:
    assert bar_notes("c2e g2e", "6/8", "1/8", "C").notes == (C, E, G, E)
    # the key signature and an accidental earlier in the bar, as abc2midi hears them
    assert bar_notes("F2 A2 B2 c2", "4/4", "1/8", "G").notes == (F + 1, A, B, C)
    assert bar_notes("^c2 e2 c4", "4/4", "1/8", "C").notes == (C + 1, E, C + 1)
    # every note of a chord; grace notes and rests are not notes of the bar
    assert bar_notes("[CEG]4 {a}f4", "4/4", "1/8", "C").notes == (C, E, G, F)
    assert bar_notes("z8", "4/4", "1/8", "C").notes == ()
    assert bar_notes("z8", "4/4", "1/8", "Bb").scale == {B - 1, C, D, E - 1, F, G, A}


def test_a_triad_leaves_out_sevenths_added_notes_and_the_bass() -> None:
    assert triad("Am7/G") == {A, C, E} and triad("Csus4") == {C, F, G}
    assert triad("D13") == {D, F + 1, A} and pitch_classes("D13") > triad("D13")
    with pytest.raises(ValueError, match="not a chord symbol"):
        triad("H7")


def test_a_symbol_is_weighed_by_the_best_fit_it_can_still_reach() -> None:
    fit = ChordFit.fit
    c_and_g = notes(C, G)
    assert fit("", "C", c_and_g) == 2 and fit("", "A", c_and_g) == 1  # C; A minor holds C
    # a letter is its natural root: D sharp (E flat) major holds G once the sharp is written
    assert fit("", "D", c_and_g) == 0 and fit("D", "#", c_and_g) == 1
    assert fit("B", "#", c_and_g) == 0  # B sharp major is C major, but not spelled so
    assert fit("Fb", "m", notes(E, G, B)) == 0 < fit("E", "m", notes(E, G, B))
    # suspended chords are the model's choice: A D E holds nothing here
    assert fit("Asus4", '"', notes(A, D, E)) == 0 and fit("A", "s", notes(A, D, E)) == 0
    assert fit("A", "m", c_and_g) == 1 and fit("C", "m", c_and_g) == 2
    assert fit("C", '"', c_and_g) == 2 and fit("Am", '"', notes(C, E)) == 2
    # sevenths and added notes gain nothing: A minor 7 holds G, its triad does not ...
    assert fit("Am", "7", notes(G)) == 0
    assert fit("Am7", '"', notes(G)) == 0
    # ... but lose where they clash: a C sharp against D7's C, a C natural against Dmaj7's
    major = bar_notes("A2d dcA", "6/8", "1/8", "D")
    assert fit("D", '"', major) == fit("Dmaj7", '"', major) == 4.5 > fit("D7", '"', major)
    mixolydian = bar_notes("A2d dcA", "6/8", "1/8", "Dmix")
    assert fit("D", '"', mixolydian) == fit("D7", '"', mixolydian) == 4.5 \
        > fit("Dmaj7", '"', mixolydian)
    assert fit("C/", "E", c_and_g) == 2  # a bass note leaves the triad as it is
    # every note of the bar counts: G B d B is G, not G minor
    arpeggio = bar_notes("G2 B2 d2 B2", "4/4", "1/8", "G")
    assert fit("G", '"', arpeggio) == 4.5 and fit("Gm", '"', arpeggio) == 2
    assert fit("G", "m", arpeggio) == 4.5  # it may still become G major 7
    # a triad in the key's scale gains half a note: under a bar of G alone in D major, G
    # major before C major; in D mixolydian, whose scale has C natural, the two tie
    assert fit("G", '"', bar_notes("G6", "6/8", "1/8", "D")) == 1.5
    assert fit("C", '"', bar_notes("G6", "6/8", "1/8", "D")) == 1
    assert fit("C", '"', bar_notes("G6", "6/8", "1/8", "Dmix")) == 1.5


def symbol_state(written: str) -> BarState:
    state = BarState.start(bar=Fraction(8), bars_left=1, chord_symbols=True).after('"' + written)
    assert state is not None and state.mode == "symbol"
    return state


@pytest.fixture
def logits() -> torch.Tensor:
    return torch.randn(len(ALPHABET), generator=torch.Generator().manual_seed(5))


def test_the_lean_moves_probability_between_symbol_characters_only(
        logits: torch.Tensor) -> None:
    state = symbol_state("")
    allowed = torch.tensor([s is not None for s in state.successors(ALPHABET)])
    fit = ChordFit(ALPHABET, 2.0)
    leaned = fit.apply(logits, allowed, state, notes(C, G))
    shift = leaned - logits
    c, a, d = (ALPHABET.index(name) for name in "CAD")
    # C's triad holds both notes, A minor one, no triad on D either: each step e^2
    assert float(shift[c] - shift[a]) == pytest.approx(2.0, abs=1e-5)
    assert float(shift[a] - shift[d]) == pytest.approx(2.0, abs=1e-5)
    before = torch.logsumexp(logits[allowed], 0)
    assert float(torch.logsumexp(leaned[allowed], 0)) == pytest.approx(float(before), abs=1e-5)
    # no lean outside a symbol, without notes, or at weight zero
    between = BarState.start(bar=Fraction(8), bars_left=1, chord_symbols=True)
    assert fit.apply(logits, allowed, between, notes(C, G)) is logits
    assert fit.apply(logits, allowed, state, notes()) is logits
    assert fit.apply(logits, allowed, state, None) is logits
    assert ChordFit(ALPHABET, 0.0).apply(logits, allowed, state, notes(C, G)) is logits


@pytest.fixture(scope="module")
def shipped() -> Engine:
    return Engine.load(None, device="cpu")


def test_the_shipped_model_adds_chords_that_hold_the_melody(shipped: Engine) -> None:
    of_symbol, _ = shapes()

    def shortfalls(weight: float) -> list[int]:
        """For each bar of three seeds' answers, how much worse the chosen symbol fits its
        notes than the best fitting symbol."""
        found = []
        for seed in range(3):
            [answer] = accompany_score(shipped, parse_abc(MELODY), "chords",
                                       Sampling(seed=seed, chord_fit=weight))
            body = answer.abc.split("K:G\n", 1)[1]
            for symbol, music in re.findall(r'"([^"]+)"([^|]*)', body):
                notes = bar_notes(music.strip(), "4/4", "1/8", "G")
                best = max(shape.fit(notes) for shape in of_symbol.values())
                found.append(best - ChordFit.fit(symbol, '"', notes))
        return found

    fitted, plain = shortfalls(10.0), shortfalls(0.0)
    assert len(fitted) == len(plain) == 24  # a symbol on each of 8 bars, 3 seeds
    assert not any(fitted)  # a strong fit: every symbol fits as well as any can
    assert sum(plain) > 0


def test_the_command_line_refuses_a_fit_out_of_range(capsys: pytest.CaptureFixture[str],
                                                     tmp_path: Path) -> None:
    melody = tmp_path / "melody.abc"
    melody.write_text(MELODY)
    out = tmp_path / "chords.abc"
    assert main(["accompany", str(melody), "--add", "chords", "--chord-fit", "11",
                 "-o", str(out)]) == 1
    assert "error: --chord-fit must be from 0 to 10, not 11.0" in capsys.readouterr().err
    assert not out.exists()
