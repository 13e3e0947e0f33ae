"""Voices near their registers: a lean, at decoding time, toward each voice's centre.

In a several-voice answer the grammar keeps each voice within an octave of the notes it had in
the prompt (`engine.abc.registers`), yet the shipped model's answers kept the prompt's order of
the voices' mean pitches in only 65% of the test songs (the real continuations: 78-93%,
depending on the run and the windows; docs/research/eval.md). Most
swaps are between voices a few semitones apart, such as the singer and the piano's right hand,
inside that margin. With a weight w above 0, each note of a voice becomes e^(-w d / 12) times
as likely, d being how many semitones the nearest pitch it can still reach lies from the
centre (mean pitch) the voice had in the prompt: w is the odds, as a log factor, given up by a
note an octave away.

It acts where a pitch is chosen. Before a note letter, the letters share out, among themselves,
the probability the model gave them (a rest, a chord, a chord symbol or a bar line stays as
likely); after a letter, an octave mark is leaned against ending the note where it is. Pitches
are counted as the grammar's register counts them, without accidentals (a semitone at most).
The weight is a sampling default, chosen on the validation songs (`segue eval --grid
--register-lean`).
"""

from __future__ import annotations

import torch

from engine.abc.bars import (
    NOTE_LETTERS,
    BarState,
    midi_pitch,
    reachable_octaves,
    written_octave,
)
from engine.models.chord_tones import NOTE_STARTS, shifted_within

# Where a note letter may also come: inside a chord or a group of grace notes.
LETTER_PLACES = NOTE_STARTS | {"chord", "grace"}


def nearest_distance(letter: str, marks: int, centre: float) -> float:
    """Semitones from `centre` to the nearest pitch a note `letter` with `marks` octave marks
    (more may follow) can still become."""
    step = letter.upper()
    return min(abs(midi_pitch(step, octave, 0) - centre)
               for octave in reachable_octaves(letter, marks))


class RegisterLean:
    """The lean of one alphabet's notes toward a voice's centre, for a weight."""

    def __init__(self, alphabet: tuple[str, ...], weight: float) -> None:
        self.weight = weight
        self.letters = [text for text in alphabet if text in NOTE_LETTERS]
        self.letter_ids = torch.tensor([alphabet.index(text) for text in self.letters])
        self.marks = {text: index for index, text in enumerate(alphabet) if text in ",'"}
        self.shifts: dict[float, torch.Tensor] = {}  # each letter's log factor, by centre

    def apply(self, logits: torch.Tensor, allowed: torch.Tensor, state: BarState,
              centre: float | None) -> torch.Tensor:
        """`logits` leaned toward `centre` where `state` chooses a pitch; else unchanged."""
        if not self.weight or centre is None:
            return logits
        per_semitone = self.weight / 12
        if state.letter:  # after a letter: one more octave mark, or the note ends here
            mark = self.marks.get(state.octave_mark)
            if mark is None or not allowed[mark]:
                return logits
            letter = state.letter if state.octave_mark == "," else state.letter.lower()
            here = abs(midi_pitch(state.letter, written_octave(state), 0) - centre)
            further = nearest_distance(letter, state.octave_marks + 1, centre)
            leaned = logits.clone()
            leaned[mark] += per_semitone * (here - further)
            return leaned
        if state.mode not in LETTER_PLACES:
            return logits
        open_letters = allowed[self.letter_ids]
        if int(open_letters.sum()) < 2:
            return logits
        if centre not in self.shifts:
            self.shifts[centre] = torch.tensor([-per_semitone * nearest_distance(text, 0, centre)
                                                for text in self.letters])
        return shifted_within(logits, self.letter_ids[open_letters],
                              self.shifts[centre][open_letters])
