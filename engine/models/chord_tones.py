"""Chord tones on strong beats: a lean, at decoding time, toward the notes of the chord in force.

Real melodies put a note of the chord on most strong beats: 74.6% of the strong-beat notes of
the test lead sheets do, the shipped model's answers 56.9% (docs/research/eval.md). With a
weight w above 0, when a voice that carries chord symbols is about to start a note on a strong
beat (`engine.abc.meters.strong_beats`), each note letter whose pitch (under the key, the bar's
accidentals and an accidental just written) belongs to the chord in force becomes e^w times
likelier against the other letters. The letters keep, together, the probability the model gave
them: a rest, a chord, a new chord symbol or a tie stays exactly as likely. The weight is a
sampling default, chosen on the validation lead sheets (`segue eval --grid --chord-tones`).
"""

from __future__ import annotations

import torch

from engine.abc.bars import NOTE_LETTERS, BarState, letter_pitch_class
from engine.abc.chord_symbols import SYMBOL, pitch_classes
from engine.abc.limits import voice_lines
from engine.abc.meters import beat_count, strong_beats
from engine.abc.text import QUOTED

# Where a note letter may come next: at an element boundary, after a chord symbol or grace
# notes, or after an accidental.
NOTE_STARTS = frozenset({"between", "after_symbol", "after_grace", "accidental"})


def last_chords(body: str) -> dict[str, str]:
    """The last chord symbol of each voice of a tune's body that has one, by voice name."""
    chords: dict[str, str] = {}
    for voice, kind, line in voice_lines(body):
        if kind == "music":
            for quoted in QUOTED.findall(line):
                if SYMBOL.fullmatch(quoted[1:-1]):
                    chords[voice] = quoted[1:-1]
    return chords


class ChordTones:
    """The lean of one alphabet's note letters toward a chord's tones, for a weight."""

    def __init__(self, alphabet: tuple[str, ...], weight: float) -> None:
        self.weight = weight
        self.letters = [(index, text) for index, text in enumerate(alphabet)
                        if text in NOTE_LETTERS]

    def apply(self, logits: torch.Tensor, allowed: torch.Tensor, state: BarState,
              meter: str, chord: str | None) -> torch.Tensor:
        """`logits` leaned toward `chord`'s tones if `state` may start a note on a strong
        beat of `meter`; else `logits` unchanged."""
        if not self.weight or chord is None or state.mode not in NOTE_STARTS \
                or state.ticks.length(state.time) not in strong_beats(
                    state.ticks.length(state.bar), beat_count(meter)):
            return logits
        tones = pitch_classes(chord)
        open_letters = [(index, letter_pitch_class(state, text) in tones)
                        for index, text in self.letters if allowed[index]]
        leaning = sum(tone for _, tone in open_letters)
        if not leaning or leaning == len(open_letters):
            return logits
        return shifted_within(logits, [index for index, _ in open_letters],
                              torch.tensor([self.weight if tone else 0.0
                                            for _, tone in open_letters]))


def shifted_within(logits: torch.Tensor, group: list[int] | torch.Tensor,
                   shifts: torch.Tensor) -> torch.Tensor:
    """`logits` with the tokens of `group` shifted by `shifts` (log factors) against each other,
    the group keeping, together, the probability it had: the other tokens' odds do not move."""
    members = torch.as_tensor(group)
    before = torch.logsumexp(logits[members], 0)
    leaned = logits.clone()
    leaned[members] += shifts.to(logits.dtype)
    leaned[members] -= torch.logsumexp(leaned[members], 0) - before
    return leaned

