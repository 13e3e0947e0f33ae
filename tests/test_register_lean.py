"""The register lean: before a letter it moves probability between note letters only, toward
the voice's centre; after a letter it weighs one more octave mark against ending the note; and
it keeps the shipped model's voices nearer the registers they had in the prompt."""

from __future__ import annotations

from fractions import Fraction

import pytest
import torch

from engine.abc.bars import BarState
from engine.abc.registers import voice_centres
from engine.models.continuation import Engine, Sampling
from engine.models.register_lean import RegisterLean, nearest_distance
from engine.models.tokenizer import CharTokenizer

ALPHABET = tuple(CharTokenizer().token_text)
# Two voices a tenth apart, each within a fifth.
DUET = """X:1
M:4/4
L:1/8
K:C
V:1 name="Flute" clef=treble
V:2 name="Cello" clef=bass
V:1
e2 g2 f2 d2|e2 c2 d4|g2 e2 f2 a2|g8|
V:2
C,2 E,2 D,2 F,2|E,2 G,2 F,4|C,2 E,2 D,2 B,,2|C,8|
"""


def probabilities(logits: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor:
    return torch.softmax(torch.where(allowed, logits, float("-inf")), 0)


def share(probs: torch.Tensor, names: str) -> float:
    return float(sum(probs[ALPHABET.index(name)] for name in names))


def allowed_in(state: BarState) -> torch.Tensor:
    return torch.tensor([s is not None for s in state.successors(ALPHABET)])


@pytest.fixture
def logits() -> torch.Tensor:
    return torch.randn(len(ALPHABET), generator=torch.Generator().manual_seed(5))


def test_nearest_distance_counts_the_octaves_marks_can_still_reach() -> None:
    assert nearest_distance("C", 0, 60.0) == 0  # C is middle C
    assert nearest_distance("E", 0, 60.0) == 4
    assert nearest_distance("C", 0, 36.0) == 0  # C,, is reachable
    assert nearest_distance("C", 1, 62.0) == 14  # after C, the nearest is C, (48)
    assert nearest_distance("c", 0, 84.0) == 0  # c'' is reachable
    assert nearest_distance("e", 0, 60.0) == 16  # e (76) is the lowest e: E (64) is 4 away


def test_before_a_letter_letters_near_the_centre_gain_and_keep_their_share(
        logits: torch.Tensor) -> None:
    state = BarState.start(bar=Fraction(8), bars_left=1)
    allowed = allowed_in(state)
    before = probabilities(logits, allowed)
    after = probabilities(RegisterLean(ALPHABET, 3.0).apply(logits, allowed, state, 72.0),
                          allowed)
    # c (72) is at the centre, g (79) seven semitones away: e^(3 * 7 / 12) between them
    ratio = (after[ALPHABET.index("c")] / after[ALPHABET.index("g")]) \
        / (before[ALPHABET.index("c")] / before[ALPHABET.index("g")])
    assert float(ratio) == pytest.approx(torch.e ** (3 * 7 / 12), rel=1e-4)
    everything = "ABCDEFGabcdefg"
    assert share(after, everything) == pytest.approx(share(before, everything), rel=1e-5)
    for other in ("z", "[", "^", "|"):
        assert float(after[ALPHABET.index(other)]) == pytest.approx(
            float(before[ALPHABET.index(other)]), rel=1e-5)


def test_after_a_letter_an_octave_mark_leans_toward_the_centre(logits: torch.Tensor) -> None:
    after_c = BarState.start(bar=Fraction(8), bars_left=1).after("C")
    assert after_c is not None
    allowed = allowed_in(after_c)
    lean = RegisterLean(ALPHABET, 2.0)
    comma = ALPHABET.index(",")

    def mark_odds(centre: float) -> float:
        probs = probabilities(lean.apply(logits, allowed, after_c, centre), allowed)
        return float(probs[comma] / (1 - probs[comma]))

    plain = float(probabilities(logits, allowed)[comma])
    # a bass centred on C, (48): writing the comma brings C (60) to it, 12 semitones nearer
    assert mark_odds(48.0) == pytest.approx(plain / (1 - plain) * torch.e ** 2, rel=1e-4)
    # a voice centred on middle C: the comma takes it an octave away
    assert mark_odds(60.0) == pytest.approx(plain / (1 - plain) * torch.e ** -2, rel=1e-4)


def test_no_lean_at_weight_zero_without_a_centre_or_where_no_pitch_is_chosen(
        logits: torch.Tensor) -> None:
    state = BarState.start(bar=Fraction(8), bars_left=1)
    allowed = allowed_in(state)
    assert RegisterLean(ALPHABET, 0.0).apply(logits, allowed, state, 60.0) is logits
    assert RegisterLean(ALPHABET, 2.0).apply(logits, allowed, state, None) is logits
    in_length = state.after("z")  # a rest's length: no pitch here
    assert in_length is not None
    assert RegisterLean(ALPHABET, 2.0).apply(logits, allowed_in(in_length), in_length,
                                             60.0) is logits


def test_the_shipped_model_keeps_its_voices_nearer_their_centres() -> None:
    engine = Engine.load(None, device="cpu")
    prompt_centres = voice_centres(DUET.split("K:C\n", 1)[1])

    def drift(weight: float) -> float:
        """The mean distance, in semitones, of each answer voice's mean pitch from its
        prompt centre, over four seeds."""
        distances = []
        for seed in range(4):
            [answer] = engine.continue_abc(DUET, 8, Sampling(seed=seed, register_lean=weight))
            centres = voice_centres(answer.abc.split("K:C\n", 1)[1])
            distances += [abs(centres[voice] - centre)
                          for voice, centre in prompt_centres.items()]
        return sum(distances) / len(distances)

    assert drift(6.0) < drift(0.0) / 2
