"""Chord tones on strong beats: the lean moves probability between note letters only, only on
strong beats of a voice with a chord in force, hears pitches as abc2midi does, and makes the
shipped model's melody fit its chords."""

from __future__ import annotations

from fractions import Fraction

import pytest
import torch

from engine.abc.bars import BarState, key_alters
from engine.abc.meters import beat_count
from engine.abc.music import parse_abc
from engine.models.chord_tones import ChordTones, last_chords
from engine.models.continuation import Engine, Sampling
from engine.models.tokenizer import CharTokenizer
from engine.study.measures import chord_agreement

ALPHABET = tuple(CharTokenizer().token_text)
LEAD_SHEET = """X:1
T:Lead sheet
M:4/4
L:1/8
K:G
"G"G2 B2 d2 B2|"C"c2 e2 "D"d2 A2|"G"B2 G2 "Em"E2 G2|"Am"A4 "D7"F4|
"G"G2 B2 d2 B2|"C"c2 e2 "D"d2 A2|"G"B2 G2 "D7"A2 F2|"G"G8|
"""


def probabilities(logits: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor:
    return torch.softmax(torch.where(allowed, logits, float("-inf")), 0)


def letters(probs: torch.Tensor, names: str) -> float:
    return float(sum(probs[ALPHABET.index(name)] for name in names))


def state_at(time: Fraction, key: str = "C", **changes: object) -> BarState:
    return BarState.start(bar=Fraction(8), bars_left=2, time=time, key=key_alters(key),
                          chord_symbols=True, **changes)


@pytest.fixture
def logits() -> torch.Tensor:
    return torch.randn(len(ALPHABET), generator=torch.Generator().manual_seed(3))


def test_a_strong_beat_leans_to_the_chord_and_keeps_the_letters_share(
        logits: torch.Tensor) -> None:
    state = state_at(Fraction(0))
    allowed = torch.tensor([s is not None for s in state.successors(ALPHABET)])
    before = probabilities(logits, allowed)
    after = probabilities(ChordTones(ALPHABET, 2.0).apply(logits, allowed, state, "4/4", "C"),
                          allowed)
    # each chord tone gains e^2 against each other letter
    ratio_before = before[ALPHABET.index("E")] / before[ALPHABET.index("D")]
    ratio_after = after[ALPHABET.index("E")] / after[ALPHABET.index("D")]
    assert float(ratio_after / ratio_before) == pytest.approx(torch.e ** 2, rel=1e-4)
    everything = "ABCDEFGabcdefg"
    assert letters(after, everything) == pytest.approx(letters(before, everything), rel=1e-5)
    assert letters(after, "CEGceg") > letters(before, "CEGceg")
    for other in ("z", "[", '"', "^"):  # a rest, a chord, a new symbol, an accidental
        assert float(after[ALPHABET.index(other)]) == pytest.approx(
            float(before[ALPHABET.index(other)]), rel=1e-5)


def test_no_lean_off_the_strong_beats_without_a_chord_or_at_weight_zero(
        logits: torch.Tensor) -> None:
    allowed = torch.ones(len(ALPHABET), dtype=torch.bool)
    lean = ChordTones(ALPHABET, 2.0)
    assert lean.apply(logits, allowed, state_at(Fraction(2)), "4/4", "C") is logits
    assert lean.apply(logits, allowed, state_at(Fraction(0)), "4/4", None) is logits
    assert ChordTones(ALPHABET, 0.0).apply(logits, allowed, state_at(Fraction(0)), "4/4",
                                           "C") is logits
    # the middle of a 4/4 bar is strong, of a 3/4 bar (six eighths) it is not
    assert lean.apply(logits, allowed, state_at(Fraction(4)), "4/4", "C") is not logits
    assert lean.apply(logits, allowed, BarState.start(bar=Fraction(6), bars_left=1,
                                                      time=Fraction(3)), "3/4", "C") is logits


def test_pitches_are_heard_with_the_key_and_the_accidental_being_written(
        logits: torch.Tensor) -> None:
    allowed = torch.ones(len(ALPHABET), dtype=torch.bool)
    lean = ChordTones(ALPHABET, 3.0)

    def raised(state: BarState, chord: str) -> set[str]:
        """The letters the lean lifts above the others."""
        shift = {text: float(lean.apply(logits, allowed, state, "4/4", chord)[index]
                             - logits[index])
                 for index, text in enumerate(ALPHABET) if text in "ABCDEFG"}
        return {text for text, value in shift.items() if value > min(shift.values()) + 1e-4}

    assert raised(state_at(Fraction(0), key="F"), "Gm") == {"G", "B", "D"}  # B is B flat
    assert "B" not in raised(state_at(Fraction(0), key="C"), "Gm")
    # after `^` the letter F is F sharp, a tone of D; F natural is not
    sharp = state_at(Fraction(0), mode="accidental", accidental="^", pending="note")
    assert "F" in raised(sharp, "D") and "F" not in raised(state_at(Fraction(0)), "D")


def test_the_chord_in_force_is_the_last_of_its_voice() -> None:
    body = 'V:1\n"G"G2 B2 "Em"E4|\nV:2\nG,8|\nV:1\n"Am7"A8|\n'
    assert last_chords(body) == {"1": "Am7"}
    assert last_chords('"C"c2 "^text"e2 "D/F#"d4|') == {"1": "D/F#"}  # annotations skipped
    assert beat_count("6/8") == 2 and beat_count("3/8") == 1 and beat_count("C|") == 2


@pytest.fixture(scope="module")
def shipped() -> Engine:
    return Engine.load(None, device="cpu")


def test_the_shipped_model_puts_chord_tones_on_strong_beats(shipped: Engine) -> None:
    def agreement(weight: float) -> tuple[int, int]:
        agree = counted = 0
        for seed in range(4):
            [answer] = shipped.continue_abc(LEAD_SHEET, 8, Sampling(seed=seed,
                                                                    chord_tones=weight))
            found, strong = chord_agreement(parse_abc(answer.abc))
            agree, counted = agree + found, counted + strong
        return agree, counted

    leaning, plain = agreement(10.0), agreement(0.0)
    # Nearly every strong-beat note: the lean moves single note letters only, so a chord on a
    # strong beat, or a chord symbol whose tones all need an accidental the key lacks (the
    # model writes "Bbm" in G), is left as the model wrote it.
    assert leaning[1] >= 16 and leaning[0] >= 0.9 * leaning[1]
    assert plain[0] < 0.8 * plain[1]  # the same seeds without the lean (0.56 on 2026-12-04)
