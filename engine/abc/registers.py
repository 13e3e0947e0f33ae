"""The register of each voice: the range of pitches it sings or plays, read off ABC text.

A several-voice answer keeps each voice near the register it had in the prompt (the bar
grammar's `register`), so that a bass does not climb over the voice above it, and leans toward
its centre, the mean pitch (`engine.models.register_lean`). The range is
read from the text alone, before any reader parses it: notes with their octave marks and
written accidentals (the key signature is left out: at most a semitone, well under the margin).
"""

from __future__ import annotations

import re
from itertools import combinations

from engine.abc.bars import ACCIDENTAL_ALTER, midi_pitch
from engine.abc.limits import music_only, voice_lines

# How far a voice may go beyond the lowest and highest notes it had in the prompt, in
# semitones: the least margin that holds 95% of real voices, chosen on the validation songs
# (bench/register_margin.py; docs/research/eval.md, "Registers").
REGISTER_MARGIN = 12
NOTE = re.compile(r"(\^\^|\^|__|_|=)?([A-Ga-g])([,']*)")

Register = tuple[int, int]  # lowest and highest MIDI pitch


def note_pitches(line: str) -> list[int]:
    """The MIDI pitches of the notes (grace notes and chord notes included) of a music line."""
    pitches = []
    for accidental, letter, marks in NOTE.findall(music_only(line)):
        octave = (4 if letter.isupper() else 5) - marks.count(",") + marks.count("'")
        pitches.append(midi_pitch(letter.upper(), octave, ACCIDENTAL_ALTER.get(accidental, 0)))
    return pitches


def voice_pitches(body: str) -> dict[str, list[int]]:
    """The pitches of each voice of a tune's body that has notes, by the voice's name in `V:`
    ("1" for a tune with one voice)."""
    pitches: dict[str, list[int]] = {}
    for voice, kind, line in voice_lines(body):
        if kind == "music":
            pitches.setdefault(voice, []).extend(note_pitches(line))
    return {voice: found for voice, found in pitches.items() if found}


def voice_registers(body: str) -> dict[str, Register]:
    """The lowest and highest pitch of each voice of a tune's body that has notes."""
    return {voice: (min(found), max(found)) for voice, found in voice_pitches(body).items()}


def voice_centres(body: str) -> dict[str, float]:
    """The mean pitch of each voice of a tune's body that has notes."""
    return {voice: sum(found) / len(found) for voice, found in voice_pitches(body).items()}


def guarded(register: Register, margin: int = REGISTER_MARGIN) -> Register:
    """The range a voice may use in an answer: its register widened by `margin` each side."""
    return register[0] - margin, register[1] + margin


def keeps_voice_order(prompt: list[float | None], answer: list[float | None],
                      apart: float = 0.0) -> bool | None:
    """Whether every pair of voices that sound in the prompt at mean pitches more than
    `apart` semitones apart has the same order of mean pitch in the answer; a voice silent in
    the answer, or a voice missing, breaks it. None when no such pair sounds in the prompt."""
    sounding = [(i, mean) for i, mean in enumerate(prompt) if mean is not None]
    pairs = [(i, j, first > second) for (i, first), (j, second) in combinations(sounding, 2)
             if abs(first - second) > apart]
    if not pairs:
        return None
    if len(answer) != len(prompt):
        return False
    for i, j, higher in pairs:
        a, b = answer[i], answer[j]
        if a is None or b is None or a == b or (a > b) != higher:
            return False
    return True
