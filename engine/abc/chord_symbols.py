"""Chord symbols as Segue writes them: one normalized spelling, to and from music21.

A symbol is a root `A`-`G`, an optional `#` or `b`, a quality from `QUALITIES`, and an
optional `/` with a bass note (`D/F#`). Every music21 / MusicXML chord kind maps to the
nearest quality (`minor-11th` -> `m9`); `N.C.` and kinds with no root are not written.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from music21 import base, harmony

QUALITIES = ("", "m", "7", "m7", "maj7", "dim", "dim7", "m7b5", "aug", "sus2", "sus4",
             "7sus4", "6", "m6", "9", "m9", "maj9", "add9", "11", "13")
QUALITY_OF_KIND = {
    "major": "", "minor": "m", "augmented": "aug", "diminished": "dim", "power": "",
    "dominant": "7", "dominant-seventh": "7", "major-seventh": "maj7", "minor-seventh": "m7",
    "diminished-seventh": "dim7", "half-diminished": "m7b5",
    "half-diminished-seventh": "m7b5", "augmented-seventh": "aug", "minor-major-seventh": "m",
    "major-minor": "m", "major-sixth": "6", "minor-sixth": "m6", "dominant-ninth": "9",
    "major-ninth": "maj9", "minor-ninth": "m9", "dominant-11th": "11", "major-11th": "maj9",
    "minor-11th": "m9", "dominant-13th": "13", "major-13th": "maj9", "minor-13th": "m9",
    "suspended-second": "sus2", "suspended-fourth": "sus4",
    "suspended-fourth-seventh": "7sus4",
}
# The music21 kind each quality is read back as ("add9" is a major triad plus a ninth).
KIND_OF_QUALITY = {
    "": "major", "m": "minor", "7": "dominant-seventh", "m7": "minor-seventh",
    "maj7": "major-seventh", "dim": "diminished", "dim7": "diminished-seventh",
    "m7b5": "half-diminished-seventh", "aug": "augmented", "sus2": "suspended-second",
    "sus4": "suspended-fourth", "7sus4": "suspended-fourth-seventh", "6": "major-sixth",
    "m6": "minor-sixth", "9": "dominant-ninth", "m9": "minor-ninth", "maj9": "major-ninth",
    "add9": "major", "11": "dominant-11th", "13": "dominant-13th",
}
# Each quality's notes in semitones above the root, stacked from the root as music21 builds
# them (the tests check every quality against music21): the first three are the triad.
QUALITY_INTERVALS: dict[str, tuple[int, ...]] = {
    "": (0, 4, 7), "m": (0, 3, 7), "7": (0, 4, 7, 10), "m7": (0, 3, 7, 10),
    "maj7": (0, 4, 7, 11), "dim": (0, 3, 6), "dim7": (0, 3, 6, 9), "m7b5": (0, 3, 6, 10),
    "aug": (0, 4, 8), "sus2": (0, 2, 7), "sus4": (0, 5, 7), "7sus4": (0, 5, 7, 10),
    "6": (0, 4, 7, 9), "m6": (0, 3, 7, 9), "9": (0, 4, 7, 10, 2), "m9": (0, 3, 7, 10, 2),
    "maj9": (0, 4, 7, 11, 2), "add9": (0, 4, 7, 2), "11": (0, 4, 7, 10, 2, 5),
    "13": (0, 4, 7, 10, 2, 5, 9),
}
NOTE_CLASSES = {"C": 0, "D": 2, "E": 4, "F": 5, "G": 7, "A": 9, "B": 11}
SYMBOL = re.compile(r"([A-G][#b]?)(" + "|".join(sorted(map(re.escape, QUALITIES), key=len,
                                                      reverse=True)) + r")(?:/([A-G][#b]?))?")


ROOTS = tuple(letter + accidental for letter in "ABCDEFG" for accidental in ("", "#", "b"))


def all_symbols() -> list[str]:
    """Every symbol the normalized spelling allows (8,820 of them)."""
    return [root + quality + bass for root in ROOTS for quality in QUALITIES
            for bass in ["", *(f"/{b}" for b in ROOTS if b != root)]]


def is_chord_symbol(element: base.Music21Object) -> bool:
    """Whether a music21 element is a chord symbol (or `N.C.`) rather than a sounding note."""
    from music21 import harmony

    return isinstance(element, harmony.Harmony)


# `pitch` is a music21 Pitch, typed Any: music21 types simplifyEnharmonic() as returning None too
def note_name(pitch: Any) -> str:
    """A pitch's name as symbols spell it: `C`, `F#`, `Bb` (double accidentals respelled)."""
    if abs(pitch.alter) > 1:
        pitch = pitch.simplifyEnharmonic()
    return pitch.name.replace("-", "b")


def symbol_text(symbol: harmony.ChordSymbol) -> str | None:
    """The normalized text of a music21 ChordSymbol (`Am7`, `D/F#`), None for no chord."""
    from music21 import harmony

    if isinstance(symbol, harmony.NoChord) or symbol.root() is None:
        return None
    kind = (symbol.chordKind or "major").replace("-triad", "")
    quality = QUALITY_OF_KIND.get(kind, "")
    added = {(m.modType, int(m.degree)) for m in symbol.getChordStepModifications()
             if m.degree is not None}
    if quality == "sus4" and ("add", 7) in added:
        quality = "7sus4"
    elif quality == "" and added & {("add", 9), ("add", 2)}:
        quality = "add9"
    root = note_name(symbol.root())
    bass = symbol.bass()
    slash = f"/{note_name(bass)}" if bass is not None and bass.name != symbol.root().name \
        else ""
    return root + quality + slash


def from_text(text: str) -> harmony.ChordSymbol:
    """A music21 ChordSymbol from a normalized symbol; ValueError if `text` is not one."""
    from music21 import harmony, pitch

    match = SYMBOL.fullmatch(text)
    if match is None:
        raise ValueError(f"{text!r} is not a chord symbol such as C, Am7, F#m7b5 or D/F#")
    root, quality, bass = match.groups()
    symbol = harmony.ChordSymbol(root=pitch.Pitch(root.replace("b", "-")),
                                 bass=pitch.Pitch((bass or root).replace("b", "-")),
                                 kind=KIND_OF_QUALITY[quality])
    if quality == "add9":
        symbol.addChordStepModification(harmony.ChordStepModification("add", 9), updatePitches=True)
    return symbol


def note_class(name: str) -> int:
    """The pitch class of a note name as symbols spell it (`C`, `F#`, `Bb`)."""
    return (NOTE_CLASSES[name[0]] + {"#": 1, "b": -1}.get(name[1:], 0)) % 12


def stacked(text: str) -> tuple[list[int], int | None]:
    """A normalized symbol's pitch classes from the root up, and its bass note's (None
    without one); ValueError if `text` is not a symbol."""
    match = SYMBOL.fullmatch(text)
    if match is None:
        raise ValueError(f"{text!r} is not a chord symbol such as C, Am7, F#m7b5 or D/F#")
    root, quality, bass = match.groups()
    classes = [(note_class(root) + step) % 12 for step in QUALITY_INTERVALS[quality]]
    return classes, None if bass is None else note_class(bass)


@lru_cache(maxsize=4096)
def pitch_classes(text: str) -> frozenset[int]:
    """The pitch classes of a normalized chord symbol (`Am7` -> A C E G, `D/F#` -> D F# A)."""
    classes, bass = stacked(text)
    return frozenset(classes) | ({bass} if bass is not None else set())


@lru_cache(maxsize=4096)
def triad(text: str) -> frozenset[int]:
    """The pitch classes of a normalized symbol's triad: root, third (or suspended note) and
    fifth, without sevenths, added notes or a bass note (`Am7/G` -> A C E)."""
    return frozenset(stacked(text)[0][:3])
