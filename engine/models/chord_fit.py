"""Chord symbols that fit their bar: a lean, at decoding time, of an added chord symbol toward
the notes of the bar it stands over.

When Segue adds chord symbols to a given melody (`accompany_score(..., add="chords")`), each
bar's symbol is written before the bar's notes, so the model chooses it without having read
them: its symbols held only 0.32 of the strong-beat notes of held-out songs (real chords:
0.74; docs/research/eval.md). The notes are known, though. With a weight w above 0, each
character the symbol may go on with becomes e^(w·k) times likelier, k being the fit of the
best symbol it can still lead to: one for each note of the bar its triad (root, third, fifth)
holds, less one for each note a semitone from one of its added notes (a seventh, a ninth)
that the chord does not hold, and half a note more when its triad lies in the key's scale.
Every note of the bar counts, not only those on strong beats, so that G B d B reads as G and
not G minor. Added notes gain nothing, so a symbol is not drawn toward ever larger chords, but
they lose where they clash: over A d d c A in D mixolydian, D and D7 fit, Dmaj7 (C sharp
against c) less. The key's half note breaks ties: a bar of G alone in D major fits G, E minor
and C equally, and C, foreign to the key, then comes last.

A root letter counts as itself, the symbols with a sharp or flat root only once the sharp or
flat is written: otherwise the letter D would gain under a bar of G alone (D sharp major holds
G), and a strong lean then write D#. Suspended and augmented chords, and roots spelled Cb, Fb,
E# or B#, count as holding no note, so the lean leads away from them: otherwise a melody
without a third (A d d c A) would lean as much to G sus 2 as to D.

The weight is a sampling default, chosen on the validation lead sheets
(`segue eval --grid --chord-fit`).
"""

from __future__ import annotations

from functools import lru_cache
from typing import NamedTuple

import torch

from engine.abc.bars import (
    NOTE_LETTERS,
    BarState,
    bar_units,
    grid_for,
    key_alters,
    key_scale,
    letter_pitch_class,
)
from engine.abc.chord_symbols import QUALITIES, ROOTS, pitch_classes, triad
from engine.models.chord_tones import shifted_within

# Where a note letter is not a note of the bar: a grace note, or text inside quotes.
NOT_NOTES = frozenset({"grace", "symbol"})
# Roots that name a white key by another letter: real lead sheets spell them so almost never.
FAR_SPELLINGS = frozenset({"Cb", "Fb", "E#", "B#"})
# Chords whose triad is not major, minor or diminished.
OTHER_TRIADS = frozenset({"sus2", "sus4", "7sus4", "aug"})
# What a chord whose triad lies in the key's scale gains: a tie-break, worth half a note.
IN_KEY = 0.5


class BarNotes(NamedTuple):
    """What an added chord symbol stands over: its bar's notes and its key's scale, as pitch
    classes."""

    notes: tuple[int, ...]
    scale: frozenset[int]


class Shape(NamedTuple):
    """A chord's pitch classes: its triad, and the notes added to it."""

    triad: frozenset[int]
    added: frozenset[int]

    def fit(self, under: BarNotes) -> float:
        """The notes the triad holds, less those a semitone from an added note that the chord
        does not hold, and half a note more for a triad in the key's scale."""
        held = sum(note in self.triad for note in under.notes)
        clashing = sum(note not in self.triad | self.added
                       and bool({(note + 1) % 12, (note - 1) % 12} & self.added)
                       for note in under.notes)
        return held - clashing + IN_KEY * (self.triad <= under.scale)


@lru_cache(maxsize=1)
def shapes() -> tuple[dict[str, Shape], dict[str, frozenset[Shape]]]:
    """The shape of each normalized symbol without a bass note, and for each start of one
    (`"C"`, `"Cm"`, `"Cma"`), the shapes of the symbols it can still become (suspended and
    augmented chords, and far spellings, left out)."""
    of_symbol: dict[str, Shape] = {}
    reachable: dict[str, set[Shape]] = {}
    for root in ROOTS:
        if root in FAR_SPELLINGS:
            continue
        for quality in QUALITIES:
            if quality in OTHER_TRIADS:
                continue
            text = root + quality
            shape = Shape(triad(text), pitch_classes(text) - triad(text))
            of_symbol[text] = shape
            for end in range(len(root), len(text) + 1):
                reachable.setdefault(text[:end], set()).add(shape)
    return of_symbol, {start: frozenset(found) for start, found in reachable.items()}


def bar_notes(music: str, meter: str, unit: str, key: str) -> BarNotes:
    """The notes (not grace notes) of one bar of ABC `music` (without its bar lines), read with
    the key signature and the bar's accidentals (the notes read before anything the bar
    grammar refuses, if it does), and the scale of the key signature."""
    state: BarState | None = BarState.start(bar_units(meter, unit), 1, grid=grid_for(unit),
                                            key=key_alters(key), multi_rest=True)
    notes = []
    for ch in music:
        assert state is not None
        if ch in NOTE_LETTERS and state.mode not in NOT_NOTES:
            notes.append(letter_pitch_class(state, ch))
        state = state.feed(ch)
        if state is None:
            break
    return BarNotes(tuple(notes), key_scale(key))


class ChordFit:
    """The lean of a chord symbol's characters toward the symbols that fit the bar's notes,
    for one alphabet and weight."""

    def __init__(self, alphabet: tuple[str, ...], weight: float) -> None:
        self.alphabet = alphabet
        self.weight = weight

    def apply(self, logits: torch.Tensor, allowed: torch.Tensor, state: BarState,
              under: BarNotes | None) -> torch.Tensor:
        """`logits` leaned toward symbols that fit the bar `under` while `state` is inside a
        chord symbol's quotes; else `logits` unchanged."""
        if not self.weight or under is None or not under.notes or state.mode != "symbol":
            return logits
        open_tokens = [int(index) for index in allowed.nonzero().flatten()]
        fits = [self.fit(state.symbol, self.alphabet[index], under) for index in open_tokens]
        if len(set(fits)) < 2:
            return logits
        return shifted_within(logits, open_tokens, self.weight * torch.tensor(fits))

    @staticmethod
    def fit(written: str, token: str, under: BarNotes) -> float:
        """The fit to the bar `under` of the best symbol reachable after writing `token` (0
        where none is)."""
        of_symbol, reachable = shapes()
        text, closing, _ = (written + token).partition('"')
        if closing or "/" in text:  # the symbol is complete, or only its bass is left
            own = of_symbol.get(text.partition("/")[0])
            found = [own] if own else []
        else:
            found = list(reachable.get(text, ()))
        return max((shape.fit(under) for shape in found), default=0)
