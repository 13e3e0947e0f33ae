"""Bar-exact decoding: a grammar that knows, character by character, what may come next.

The model writes ABC one character at a time. Before each character is sampled, every
character that would break the music is masked: a note too long for what is left of the bar,
a bar line before the bar is full, a tuplet that could not be completed, anything outside the
small dialect our writer speaks. Because the grammar also refuses every step that could lead
to a dead end, the model always ends with exactly the number of bars asked for, each exactly
as long as the meter says, and no retry is ever needed.

Lengths are counted in unit notes (the tune's `L:`). The dialect the model may write here is
what `engine.abc_writer` writes for one voice, less what a continuation does not need: notes
with accidentals and octave marks, rests `z`, chords `[CEG]`, ties `-`, triplets `(3`, grace
notes `{g}`, spaces between beats, plain bar lines `|` and a line break after a bar line.
Meter, key and voice changes, repeats and endings are not generated.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from fractions import Fraction
from functools import lru_cache

GRID = Fraction(1, 4)  # the shortest note, in unit notes (a 32nd note when L:1/8)
TRIPLET = Fraction(2, 3)
MAX_OCTAVE_MARKS = 2
MAX_CHORD_NOTES = 4
MAX_GRACE_NOTES = 4


def length_text(ratio: Fraction) -> str:
    """The canonical text of a length in unit notes, as the writer writes it."""
    if ratio == 1:
        return ""
    if ratio.denominator == 1:
        return str(ratio.numerator)
    if ratio.numerator == 1:
        return "/" if ratio.denominator == 2 else f"/{ratio.denominator}"
    return f"{ratio.numerator}/{ratio.denominator}"


# Every length a note may have: multiples of the grid up to 32 unit notes, by canonical text.
LENGTHS: dict[str, Fraction] = {
    length_text(GRID * n): GRID * n for n in range(1, 32 * 4 + 1)
}
LENGTH_CHARS = frozenset("0123456789/")
# Notes inside a triplet are plain (undotted) values: music21 cannot read other tuplet notes.
TRIPLET_LENGTHS = frozenset(GRID * 2**k for k in range(8))
ACCIDENTALS = frozenset("^_=")
NOTE_LETTERS = frozenset("ABCDEFGabcdefg")


def length_prefixes() -> dict[str, tuple[Fraction, ...]]:
    """For each prefix of a length text, the lengths it can still become."""
    prefixes: dict[str, set[Fraction]] = {}
    for text, value in LENGTHS.items():
        for end in range(len(text) + 1):
            prefixes.setdefault(text[:end], set()).add(value)
    return {k: tuple(sorted(v)) for k, v in prefixes.items()}


PREFIXES = length_prefixes()


@lru_cache(maxsize=16_384)
def can_finish(bar: Fraction, time: Fraction, triplet_left: int) -> bool:
    """Whether a bar at `time`, with `triplet_left` notes of an open triplet, can end exactly."""
    if time > bar:
        return False
    if triplet_left == 0:
        return (bar - time) % GRID == 0
    return any(can_finish(bar, time + value * TRIPLET, triplet_left - 1)
               for value in TRIPLET_LENGTHS if time + value * TRIPLET <= bar)


@dataclass(frozen=True)
class BarState:
    """Where the writing stands: bars left, time in the bar, and the element being written.

    `mode` is one of: "between" (at an element boundary), "accidental" (after ^ _ =),
    "pitch" (after a note letter: octave marks or a length may follow), "length" (in a length),
    "chord" (inside [...]), "grace" (inside {...}), "after_grace" (a note must follow),
    "tuplet" (after "("), "done".
    """

    bar: Fraction  # bar length in unit notes
    bars_left: int
    time: Fraction = Fraction(0)
    mode: str = "between"
    pending: str = ""  # "note", "rest" or "chord" while its length is being written
    length: str = ""  # the length text written so far
    accidental: str = ""
    octave_mark: str = ""  # "'" or "," allowed after the current letter, "" for none
    octave_marks: int = 0
    count: int = 0  # notes in the open chord or grace group
    triplet_left: int = 0
    previous: str = "|"

    @property
    def done(self) -> bool:
        return self.mode == "done"

    def feed(self, ch: str) -> BarState | None:
        """The state after writing `ch`, or None if `ch` is not allowed here."""
        return _feed(self, ch)

    def successors(self, alphabet: tuple[str, ...]) -> tuple[BarState | None, ...]:
        """The state after each token of `alphabet` (None where it is not allowed)."""
        return _successors(self, alphabet)


@lru_cache(maxsize=4_096)  # about 3 KB an entry: a long-running server stays within ~13 MB
def _successors(state: BarState, alphabet: tuple[str, ...]) -> tuple[BarState | None, ...]:
    result = []
    for text in alphabet:
        current: BarState | None = state
        for ch in text:
            current = _feed(current, ch) if current is not None else None
        result.append(current)
    return tuple(result)


def _start_of_element(state: BarState, ch: str) -> BarState | None:
    """`ch` at an element boundary (nothing pending)."""
    in_triplet = state.triplet_left > 0
    if ch == " ":
        if state.previous in (" ", "\n", "("):
            return None
        return replace(state, previous=ch)
    if ch == "\n":
        return replace(state, previous=ch) if state.previous == "|" else None
    if ch == "|":
        if state.time != state.bar or in_triplet or state.previous in ("|", "("):
            return None
        left = state.bars_left - 1
        return replace(state, bars_left=left, time=Fraction(0), previous=ch,
                       mode="done" if left == 0 else "between")
    if not _length_can_grow(state, ""):  # no note of any length fits what is left
        return None
    if ch in ACCIDENTALS:
        return replace(state, mode="accidental", accidental=ch, previous=ch)
    if ch in NOTE_LETTERS:
        return replace(state, mode="pitch", pending="note", length="", accidental="",
                       octave_mark="'" if ch.islower() else ",", octave_marks=0, previous=ch)
    if ch == "z":
        return replace(state, mode="length", pending="rest", length="", previous=ch)
    if ch == "[":
        return replace(state, mode="chord", count=0, accidental="", octave_mark="",
                       previous=ch)
    if ch == "{" and not in_triplet:  # music21 would count grace notes among the three
        return replace(state, mode="grace", count=0, accidental="", octave_mark="",
                       previous=ch)
    if ch == "(" and not in_triplet and can_finish(state.bar, state.time, 3):
        return replace(state, mode="tuplet", previous=ch)
    return None


def _finish_element(state: BarState) -> BarState | None:
    """Close the pending note, rest or chord; None if its length breaks the bar."""
    value = LENGTHS.get(state.length)
    if value is None or (state.triplet_left and value not in TRIPLET_LENGTHS):
        return None
    if state.triplet_left:
        value *= TRIPLET
    time = state.time + value
    triplet_left = max(0, state.triplet_left - 1)
    if not can_finish(state.bar, time, triplet_left):
        return None
    return replace(state, time=time, triplet_left=triplet_left, mode="between", pending="",
                   length="")


def _ends_the_music(state: BarState) -> bool:
    """Whether the last bar is full: a tie here would lead to no note."""
    return state.bars_left == 1 and state.time == state.bar


def _length_can_grow(state: BarState, text: str) -> bool:
    """Whether a length text can still become a length that keeps the bar finishable."""
    return _fits(state.bar, state.time, state.triplet_left, text)


@lru_cache(maxsize=16_384)
def _fits(bar: Fraction, time: Fraction, triplet_left: int, text: str) -> bool:
    if triplet_left:
        return any(can_finish(bar, time + value * TRIPLET, triplet_left - 1)
                   for value in PREFIXES.get(text, ()) if value in TRIPLET_LENGTHS)
    return any(can_finish(bar, time + value, 0) for value in PREFIXES.get(text, ()))


def _feed(state: BarState, ch: str) -> BarState | None:
    mode = state.mode
    if mode == "done":
        return None
    if mode == "between":
        return _start_of_element(state, ch)
    if mode == "accidental":
        if ch in "^_" and state.accidental == ch:
            return replace(state, accidental=ch * 2, previous=ch)
        if ch in NOTE_LETTERS:
            return replace(state, mode="pitch", pending="note", length="", accidental="",
                           octave_mark="'" if ch.islower() else ",", octave_marks=0,
                           previous=ch)
        return None
    if mode == "tuplet":
        if ch == "3":  # `previous` stays "(": no space and no bar line may follow
            return replace(state, mode="between", triplet_left=3)
        return None
    if mode in ("chord", "grace"):
        return _feed_group(state, ch)
    if mode == "after_grace":
        if ch in ACCIDENTALS or ch in NOTE_LETTERS or ch == "[":
            return _start_of_element(replace(state, mode="between"), ch)
        return None
    # "pitch" or "length": a note, rest or chord whose length is being written
    if mode == "pitch" and ch == state.octave_mark and state.octave_marks < MAX_OCTAVE_MARKS:
        return replace(state, octave_marks=state.octave_marks + 1, previous=ch)
    if ch in LENGTH_CHARS:
        text = state.length + ch
        if not _length_can_grow(state, text):
            return None
        return replace(state, mode="length", length=text, previous=ch)
    finished = _finish_element(state)
    if finished is None:
        return None
    if ch == "-":
        if state.pending == "rest" or state.triplet_left or _ends_the_music(finished):
            return None
        return replace(finished, previous=ch)
    return _start_of_element(finished, ch)


def _feed_group(state: BarState, ch: str) -> BarState | None:
    """Inside a chord `[...]` or a grace group `{...}`."""
    closing = "]" if state.mode == "chord" else "}"
    limit = MAX_CHORD_NOTES if state.mode == "chord" else MAX_GRACE_NOTES
    if ch == closing:
        if state.count == 0 or state.accidental:
            return None
        if state.mode == "chord":
            return replace(state, mode="length", pending="chord", length="", previous=ch)
        return replace(state, mode="after_grace", previous=ch)
    if ch in ACCIDENTALS:
        if state.accidental and (ch != state.accidental or ch == "=" or
                                 len(state.accidental) == 2):
            return None
        if state.count >= limit and not state.accidental:
            return None
        return replace(state, accidental=state.accidental + ch, octave_mark="", previous=ch)
    if ch in NOTE_LETTERS:
        if state.count >= limit and not state.accidental:
            return None
        return replace(state, count=state.count + 1, accidental="",
                       octave_mark="'" if ch.islower() else ",", octave_marks=0, previous=ch)
    if ch == state.octave_mark and state.octave_marks < MAX_OCTAVE_MARKS:
        return replace(state, octave_marks=state.octave_marks + 1, previous=ch)
    if ch == "-" and state.mode == "chord" and state.previous not in "-[" and \
            not state.accidental and state.bars_left > 1:  # no tie out of the last bar
        return replace(state, octave_mark="", previous=ch)
    if state.mode == "grace" and ch in "/2" and state.previous not in LENGTH_CHARS | {"{"} \
            and not state.accidental:  # one length mark per grace note: {g2}, {g/}
        return replace(state, octave_mark="", previous=ch)
    return None


def bar_units(meter: str, unit: str) -> Fraction:
    """The length of a bar in unit notes, from `M:` and `L:` values (C = 4/4, C| = 2/2)."""
    meter = meter.strip()
    meter = {"C": "4/4", "C|": "2/2", "none": "4/4", "": "4/4"}.get(meter, meter)
    numerator, _, denominator = meter.partition("/")
    total = sum(int(part) for part in numerator.replace("(", "").replace(")", "").split("+"))
    return Fraction(total, int(denominator)) / Fraction(unit.strip() or "1/8")
