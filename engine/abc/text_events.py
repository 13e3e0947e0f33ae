"""Note events read straight off an answer's ABC text, without a score.

`engine.abc.music.note_events` parses a tune with abc2xml and music21: the faithful reading,
and about 50 ms of a CPU for eight bars. Drafts (`engine.models.drafts`) need the notes of
every draft they weigh, so they read them here instead, in well under a millisecond, from the
dialect the bar grammar writes (`engine.abc.bars`): notes with accidentals and octave marks,
rests, chords, ties, triplets, grace notes, chord symbols, multi-bar rests, bar lines, inline
meter fields and voice lines. For that dialect the events are music21's, triple for triple
(tests/test_text_events.py): accidentals hold to the bar line for their letter and octave over
the key signature, grace notes sound for no time at the onset of their note, and a tied note
sounds once. One difference: music21 leaves apart some notes tied across chords (a note tied
into a chord, a chord into a different chord, and the ties before those); here every tied note
sounds once.
"""

from __future__ import annotations

import re
from fractions import Fraction

from engine.abc.bars import ACCIDENTAL_ALTER, TRIPLET, bar_units, key_alters, midi_pitch
from engine.abc.limits import voice_lines

Event = tuple[Fraction, Fraction, int]  # onset, duration (quarter notes), MIDI pitch

_TOKEN = re.compile(r"""
    (?P<symbol>"[^"]*")
  | \[(?P<field>[A-Za-z]):(?P<value>[^\]]*)\]
  | (?P<triplet>\(3)
  | \{(?P<grace>[^}]*)\}
  | (?P<event>(?:\[(?P<chord>[^\]]*)\]|(?P<note>(?:\^\^|\^|__|_|=)?[A-Ga-g][,']*)|(?P<rest>[zx]))
               (?P<length>\d*/*\d*)(?P<tie>-?))
  | Z(?P<bars>\d*)
  | (?P<bar>[|:\]]+)
  | (?P<other>.)
""", re.VERBOSE)
_PITCH = re.compile(r"(\^\^|\^|__|_|=)?([A-Ga-g])([,']*)(-?)")
_LENGTH = re.compile(r"(\d*)(/*)(\d*)")


def length_of(text: str) -> Fraction:
    """A length written after a note, in unit notes: '' 1, '2' 2, '/' 1/2, '//' 1/4, '3/2'."""
    match = _LENGTH.fullmatch(text)
    if match is None:
        raise ValueError(f"not a note length: {text!r}")
    number, slashes, denominator = match.groups()
    value = Fraction(int(number) if number else 1)
    if denominator:
        return value / int(denominator)
    return value / 2 ** len(slashes)


class _Voice:
    """One voice being read: its clock, the accidentals of the bar, the notes a tie holds."""

    def __init__(self, meter: str, unit: str, key: str) -> None:
        self.events: list[Event] = []
        self.clock = Fraction(0)  # in quarter notes
        self.unit = Fraction(unit) * 4  # in quarter notes
        self.bar = bar_units(meter, unit) * self.unit
        self.key = key_alters(key)
        self.carried: dict[tuple[str, int], int] = {}
        self.held: dict[int, int] = {}  # a tied pitch -> its event's index
        self.triplet_left = 0

    def pitch(self, accidental: str | None, letter: str, marks: str) -> int:
        step = letter.upper()
        octave = (4 if letter.isupper() else 5) - marks.count(",") + marks.count("'")
        if accidental:
            self.carried[step, octave] = ACCIDENTAL_ALTER[accidental]
        alter = self.carried.get((step, octave), self.key["CDEFGAB".index(step)])
        return midi_pitch(step, octave, alter)

    def sound(self, notes: list[tuple[int, bool]], length: Fraction) -> None:
        """An event of `length` quarter notes: (pitch, tied on) for each note (none: a rest)."""
        if self.triplet_left:
            length *= TRIPLET
            self.triplet_left -= 1
        held: dict[int, int] = {}
        for pitch, tied in notes:
            index = self.held.get(pitch)
            if index is None:
                index = len(self.events)
                self.events.append((self.clock, length, pitch))
            else:
                onset, before, _ = self.events[index]
                self.events[index] = (onset, before + length, pitch)
            if tied:
                held[pitch] = index
        self.held = held
        self.clock += length

    def read(self, line: str) -> None:
        """Read one line of music."""
        for token in _TOKEN.finditer(line):
            kind = token.lastgroup if token.group("event") is None else "event"
            if kind == "field":
                if token.group("field") == "M":
                    self.bar = bar_units(token.group("value"), "1/4")
                elif token.group("field") == "K":
                    self.key = key_alters(token.group("value"))
            elif kind == "triplet":
                self.triplet_left = 3
            elif kind == "grace":
                for accidental, letter, marks, _ in _PITCH.findall(token.group("grace")):
                    self.events.append((self.clock, Fraction(0),
                                        self.pitch(accidental, letter, marks)))
            elif kind == "event":
                length = length_of(token.group("length")) * self.unit
                tie_all = bool(token.group("tie"))
                if token.group("rest"):
                    self.sound([], length)
                    continue
                written = token.group("chord") if token.group("chord") is not None \
                    else token.group("note")
                self.sound([(self.pitch(accidental, letter, marks), tie_all or bool(tie))
                            for accidental, letter, marks, tie in _PITCH.findall(written)],
                           length)
            elif kind == "bars":
                self.sound([], self.bar * int(token.group("bars") or 1))
            elif kind == "bar":
                self.carried.clear()


def text_note_events(abc: str) -> list[list[Event]]:
    """For each voice of an ABC tune in Segue's dialect, its sorted (onset, duration, MIDI
    pitch) triples in quarter notes: what `engine.abc.music.note_events` reads from its score."""
    return list(text_voice_events(abc).values())


def text_voice_events(abc: str) -> dict[str, list[Event]]:
    """`text_note_events` by the name each voice has in `V:` ("1" for a tune with one)."""
    meter, unit, key = "4/4", "1/8", "C"
    voices: dict[str, _Voice] = {}
    for name, kind, text in voice_lines(abc):
        if kind == "music":
            voices.setdefault(name, _Voice(meter, unit, key)).read(text)
            continue
        field, value = text[0], text[2:].strip()
        if field == "M":
            meter = value
        elif field == "L":
            unit = value
        elif field == "K":
            key = value
    return {name: sorted(voice.events) for name, voice in voices.items()}
