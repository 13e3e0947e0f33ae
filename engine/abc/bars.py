"""Bar-exact decoding: a grammar that knows, character by character, what may come next.

The model writes ABC one character at a time. Before each character is sampled, every
character that would break the music is masked: a note too long for what is left of the bar,
a bar line before the bar is full, a tuplet that could not be completed, a tie to a note of
another pitch, anything outside the small dialect our writer speaks. Because the grammar also
refuses every step that could lead to a dead end, the model always ends with exactly the
number of bars asked for, each exactly as long as the meter says, and no retry is ever needed.

Lengths are counted in whole ticks (`Ticks`: a tick divides the shortest note by three, and
half a unit note), so that the grammar's caches hash and compare integers.

The dialect the model may write here is what `engine.abc.writer` writes for one voice, less
what a continuation does not need: notes with accidentals and octave marks, rests `z`, chords
`[CEG]`, ties `-` (only to the same pitch, or the same chord notes, in the next event),
triplets `(3` (three notes or rests of one plain value, no chord: what abc2midi reads without a
warning), grace notes `{g}` (before a note more than a quarter of their length: abc2midi cuts
off longer graces), chord symbols in the normalized spelling of `engine.abc.chord_symbols`
(when the model knows them), multi-bar rests `Z`, `Z3` (in the segments of a several-voice
answer), spaces between beats, plain bar lines `|` and a line break after a bar line. Meter,
key and voice changes, repeats and endings are not generated.

Pitches are followed as readers hear them: an accidental holds until the bar line, over the
key signature in force, for the same letter and octave (ABC 2.1) or, as abc2midi reads it,
for the same letter in every octave. A tie is allowed only where both rules agree.

A voice may be given a register (`engine.abc.registers` reads one off a prompt): its notes
then stay within it, as both rules hear them.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from fractions import Fraction
from functools import cache, lru_cache
from math import gcd
from typing import Any

from engine.abc.chord_symbols import NOTE_CLASSES, all_symbols
from engine.abc.text import length_text

# The shortest note, a 32nd note: abc2xml, Segue's ABC reader, counts 2,520 steps a quarter
# note, so a 64th note (157.5) would not read back exactly. In unit notes: 1/4 when L:1/8.
SHORTEST = Fraction(1, 32)
TRIPLET = Fraction(2, 3)
MAX_OCTAVE_MARKS = 2
MAX_CHORD_NOTES = 4
MAX_GRACE_NOTES = 4
# abc2midi cuts off grace notes whose written length is this many times the note's, or more.
GRACE_SHARE = 4
# The lengths a note may have, in grid steps: what one note head can show (plain, dotted or
# double-dotted values) up to 128 steps (abcm2ps refuses others).
NOTE_VALUES = tuple(n for n in range(1, 129)
                    if any(n % m == 0 and (n // m) & (n // m - 1) == 0 for m in (1, 3, 7)))


LENGTH_CHARS = frozenset("0123456789/")
ACCIDENTAL_ALTER = {"^": 1, "^^": 2, "_": -1, "__": -2, "=": 0}
ACCIDENTALS = frozenset("^_=")
NOTE_LETTERS = frozenset("ABCDEFGabcdefg")
SYMBOL_PREFIXES = frozenset(s[:end] for s in all_symbols() for end in range(len(s) + 1))
SYMBOLS = frozenset(all_symbols())
# Sharps of a key by its tonic (fifths from C) and mode (fifths from major).
TONIC_FIFTHS = {"F": -1, "C": 0, "G": 1, "D": 2, "A": 3, "E": 4, "B": 5}
MODE_FIFTHS = {"": 0, "maj": 0, "ion": 0, "m": -3, "min": -3, "aeo": -3, "dor": -2,
               "phr": -4, "lyd": 1, "mix": -1, "loc": -5}
SHARP_ORDER = "FCGDAEB"
SEMITONES = NOTE_CLASSES  # the pitch class of each note letter

# (letter A-G, octave as music21 counts it, (alteration by the letter-and-octave rule, by the
# letter rule)): readers differ in how far an accidental carries, so a tie is only allowed
# where both rules hear the same pitch.
Pitch = tuple[str, int, tuple[int, int]]


def key_alters(key: str) -> tuple[int, ...]:
    """The alteration of C, D, E, F, G, A, B under a `K:` value such as `Bb`, `F#m`, `ADor`."""
    text = key.strip().split(" ")[0] if key.strip() else "C"
    tonic = text[:1].upper()
    if tonic not in TONIC_FIFTHS:
        return (0,) * 7
    rest = text[1:]
    fifths = TONIC_FIFTHS[tonic]
    if rest[:1] in ("#", "b"):
        fifths += 7 if rest[0] == "#" else -7
        rest = rest[1:]
    fifths += MODE_FIFTHS.get(rest[:3].lower(), 0)
    fifths = max(-7, min(7, fifths))
    sharps = set(SHARP_ORDER[:fifths]) if fifths > 0 else set()
    flats = set(SHARP_ORDER[::-1][:-fifths]) if fifths < 0 else set()
    return tuple(1 if step in sharps else -1 if step in flats else 0 for step in "CDEFGAB")


def key_scale(key: str) -> frozenset[int]:
    """The pitch classes of the scale a `K:` value's key signature gives (`Bb`: B flat, C, D,
    E flat, F, G, A)."""
    return frozenset((SEMITONES[step] + alter) % 12
                     for step, alter in zip("CDEFGAB", key_alters(key), strict=True))


class Ticks:
    """How lengths are counted for one grid (the shortest note, in unit notes: `grid_for`).

    A tick divides the grid by three (a triplet's note lasts 2/3 of its value) and half a
    unit note (a grace note written `{g/}`), so every length the grammar meets is a whole
    number of ticks. One object per grid (`ticks_for`): states compare it by identity.
    """

    def __init__(self, grid: Fraction) -> None:
        third = grid / 3
        self.grid = grid
        self.tick = Fraction(gcd(third.numerator * 2, third.denominator),
                             third.denominator * 2)  # the largest divisor of both
        self.step = self.count(grid)  # the grid in ticks
        self.unit = self.count(Fraction(1))  # a unit note in ticks
        # every length a note may have, by canonical text
        self.by_text = {length_text(grid * n): n * self.step for n in NOTE_VALUES}
        # notes inside a triplet are plain (undotted) values: music21 reads no other
        self.triplet = frozenset(self.step * 2**k for k in range(8))
        # for each prefix of a length text, the lengths it can still become
        prefixes: dict[str, set[int]] = {}
        for text, value in self.by_text.items():
            for end in range(len(text) + 1):
                prefixes.setdefault(text[:end], set()).add(value)
        self.prefixes = {k: tuple(sorted(v)) for k, v in prefixes.items()}

    def count(self, length: Fraction) -> int:
        """`length` (in unit notes) in ticks; ValueError if it is not a whole number of them."""
        ticks = length / self.tick
        if ticks.denominator != 1:
            raise ValueError(f"{length} unit notes is not a whole number of ticks of {self.tick}")
        return int(ticks)

    def length(self, ticks: int) -> Fraction:
        """`ticks` in unit notes."""
        return ticks * self.tick

    def fills(self, bar: Fraction, time: Fraction) -> bool:
        """Whether notes can fill a bar of `bar` unit notes from `time` on."""
        return time <= bar and (bar - time) % self.grid == 0


@cache
def ticks_for(grid: Fraction) -> Ticks:
    """The one `Ticks` of a grid."""
    return Ticks(grid)


def _in_triplet(value: int) -> int:
    """How long a note of written `value` (ticks) lasts inside a triplet (a whole number: a
    tick divides a third of the grid)."""
    return value * TRIPLET.numerator // TRIPLET.denominator


@lru_cache(maxsize=16_384)
def can_finish(bar: int, time: int, triplet_left: int, ticks: Ticks,
               triplet_value: int = 0) -> bool:
    """Whether a bar at `time`, with `triplet_left` notes of an open triplet, can end exactly;
    `triplet_value` is the written value of the triplet's notes once its first is written."""
    if time > bar:
        return False
    if triplet_left == 0:
        return (bar - time) % ticks.step == 0
    if triplet_value:
        return can_finish(bar, time + triplet_left * _in_triplet(triplet_value), 0, ticks)
    return any(can_finish(bar, time + _in_triplet(value), triplet_left - 1, ticks, value)
               for value in ticks.triplet if time + _in_triplet(value) <= bar)


@dataclass(frozen=True)
class BarState:
    """Where the writing stands: bars left, time in the bar, and the element being written.

    `mode` is one of: "between" (at an element boundary), "accidental" (after ^ _ =),
    "pitch" (after a note letter: octave marks or a length may follow), "length" (in a length),
    "chord" (inside [...]), "grace" (inside {...}), "after_grace" (a note must follow),
    "tuplet" (after "("), "symbol" (inside a chord symbol's quotes), "after_symbol" (an event
    must follow), "multirest" (after Z), "done".
    """

    bar: int  # bar length in ticks
    bars_left: int
    ticks: Ticks  # how lengths are counted: `ticks_for(grid)`
    time: int = 0  # ticks into the bar
    mode: str = "between"
    pending: str = ""  # "note", "rest" or "chord" while its length is being written
    length: str = ""  # the length (or Z's bar count) written so far
    accidental: str = ""
    octave_mark: str = ""  # "'" or "," allowed after the current letter, "" for none
    octave_marks: int = 0
    count: int = 0  # notes in the open chord or grace group
    triplet_left: int = 0
    triplet_value: int = 0  # the written value (ticks) of the open triplet's notes
    grace_length: int = 0  # the written length (ticks) of the grace notes before a note
    previous: str = "|"
    key: tuple[int, ...] = (0,) * 7  # alteration of C D E F G A B in the key signature
    chord_symbols: bool = False  # chord symbols may be written
    multi_rest: bool = False  # `Z`, `Z3` may be written
    letter: str = ""  # the note being written: its letter (upper case) ...
    explicit: int | None = None  # ... and its written accidental's alteration, if any
    carried: frozenset[tuple[str, int, int]] = frozenset()  # accidentals written in this bar
    carried_letters: frozenset[tuple[str, int]] = frozenset()  # ... by letter alone
    notes: frozenset[Pitch] = frozenset()  # the note, or the notes of the chord, written
    last: Pitch | None = None  # the last note written (a `-` inside a chord ties it)
    chord_ties: frozenset[Pitch] = frozenset()  # notes tied inside the chord `[C-E]`
    tied: frozenset[Pitch] = frozenset()  # pitches the next event must hold (after a tie)
    symbol: str = ""  # the chord symbol written so far
    register: tuple[int, int] | None = None  # the lowest and highest MIDI pitch a note may take

    @classmethod
    def start(cls, bar: Fraction, bars_left: int, grid: Fraction = Fraction(1, 4),
              time: Fraction = Fraction(0), **fields: Any) -> BarState:
        """A state `time` unit notes into a bar of `bar` unit notes, `grid` the shortest note
        (`grid_for(unit)`); `fields` set the other fields."""
        ticks = ticks_for(grid)
        return cls(bar=ticks.count(bar), bars_left=bars_left, ticks=ticks,
                   time=ticks.count(time), **fields)

    @property
    def done(self) -> bool:
        return self.mode == "done"

    def __hash__(self) -> int:  # computed once: states are looked up in caches at every step
        cached = self.__dict__.get("_hash")
        if cached is None:
            cached = hash(tuple(self.__dict__[name] for name in _FIELD_NAMES))
            self.__dict__["_hash"] = cached
        return cached

    def feed(self, ch: str) -> BarState | None:
        """The state after writing `ch`, or None if `ch` is not allowed here."""
        return _feed(self, ch)

    def after(self, text: str) -> BarState | None:
        """The state after writing `text` (a token of one or more characters), or None if it
        is not allowed here."""
        current = self
        for ch in text:
            following = _feed(current, ch)
            if following is None:
                return None
            current = following
        return current

    def masked_alike(self) -> BarState:
        """A state that allows the same next characters, with as few bars left as will do:
        what may follow depends on the bars left only through whether this bar is the last,
        except in a multi-bar rest's count (`Z3`: no more than are left). Shared masks are
        built once (`engine.abc.token_masks`)."""
        if self.bars_left <= 2 or self.mode == "multirest":
            return self
        return _with(self, bars_left=2)

    def successors(self, alphabet: tuple[str, ...]) -> tuple[BarState | None, ...]:
        """The state after each token of `alphabet` (None where it is not allowed)."""
        return tuple(self.after(text) for text in alphabet)


_FIELD_NAMES = tuple(f.name for f in fields(BarState))
_FIELDS = frozenset(_FIELD_NAMES)


def _with(state: BarState, **changes: object) -> BarState:
    """`dataclasses.replace` without its checks and `__init__` (half the decoder's time)."""
    assert _FIELDS.issuperset(changes), changes
    new = object.__new__(BarState)
    new.__dict__.update(state.__dict__, _hash=None, **changes)
    return new


# Pitches ------------------------------------------------------------------------------------

def midi_pitch(letter: str, octave: int, alter: int) -> int:
    """The MIDI number of a letter (A-G) in an octave as music21 counts it (C4 = 60)."""
    return 12 * (octave + 1) + SEMITONES[letter] + alter


def reachable_octaves(letter: str, marks: int) -> range:
    """The octaves a note can still reach: `C` is 4, `C,` 3, `c` 5, `c'` 6."""
    if letter.isupper():
        return range(4 - MAX_OCTAVE_MARKS, 4 - marks + 1)
    return range(5 + marks, 5 + MAX_OCTAVE_MARKS + 1)


def written_octave(state: BarState) -> int:
    """The octave of the letter being written, with the octave marks written so far."""
    low = state.octave_mark == ","
    return 4 - state.octave_marks if low else 5 + state.octave_marks


def _alter(state: BarState, letter: str, octave: int,
           explicit: int | None) -> tuple[int, int]:
    """What readers hear: the written accidental, else one written earlier in the bar (for
    this letter and octave; for this letter), else the key signature."""
    if explicit is not None:
        return explicit, explicit
    in_key = state.key["CDEFGAB".index(letter)]
    by_octave = next((a for step, oct_, a in state.carried
                      if step == letter and oct_ == octave), in_key)
    by_letter = next((a for step, a in state.carried_letters if step == letter), in_key)
    return by_octave, by_letter


def _targets(state: BarState) -> frozenset[Pitch] | None:
    """The pitches the note being written must be one of (None: any pitch).

    After a tie, a single note must be the tied pitch; in a chord, a note is free while the
    chord has room for every tied pitch still missing.
    """
    if state.mode == "grace" or not state.tied:
        return None
    if state.pending != "chord":
        return state.tied if len(state.tied) == 1 else frozenset()
    missing = state.tied - state.notes
    room = MAX_CHORD_NOTES - state.count + (1 if state.letter else 0)  # this note included
    return None if room - 1 >= len(missing) else missing


def _reachable(state: BarState, letter: str, marks: int, explicit: int | None,
               final: bool) -> bool:
    """Whether a note with `letter`, `marks` octave marks (more may follow unless `final`) and
    this accidental can still become a pitch it may be: one the tie asks for, in the voice's
    register, and in a chord a letter and octave the chord does not hold yet (abc2midi loses
    ties on such doubles) and a sound it does not hold yet (`[e^^d]` is one key twice, and
    readers pair notes with their spellings by pitch)."""
    targets = _targets(state)
    octaves = reachable_octaves(letter, marks)
    if final:
        octaves = range(octaves.stop - 1, octaves.stop) if letter.isupper() \
            else range(octaves.start, octaves.start + 1)
    step = letter.upper()
    chord = state.mode == "chord"
    taken = {note[:2] for note in state.notes} if chord else set()
    sounding = {key for note in state.notes for key in _keys(note)} if chord else set()
    missing = state.tied - state.notes if chord else frozenset()
    for octave in octaves:
        pitch = (step, octave, _alter(state, step, octave, explicit))
        keys = _keys(pitch)
        if (targets is None or pitch in targets) and pitch[:2] not in taken \
                and not keys & sounding and _in_register(keys, state.register) \
                and all(pitch == t or (t[:2] != pitch[:2] and not keys & _keys(t))
                        for t in missing):
            return True
    return False


def letter_pitch_class(state: BarState, letter: str) -> int:
    """The pitch class a note letter written next would sound, as abc2midi hears it: with the
    accidental being written, else one written earlier in the bar for the letter, else the key
    signature."""
    step = letter.upper()
    explicit = ACCIDENTAL_ALTER[state.accidental] if state.accidental else None
    _, by_letter = _alter(state, step, 4 if letter.isupper() else 5, explicit)
    return (SEMITONES[step] + by_letter) % 12


def _keys(pitch: Pitch) -> set[int]:
    """The MIDI pitches a note may sound at, by either accidental rule."""
    return {midi_pitch(pitch[0], pitch[1], alter) for alter in pitch[2]}


def _in_register(keys: set[int], register: tuple[int, int] | None) -> bool:
    return register is None or all(register[0] <= key <= register[1] for key in keys)


def _heard_alike(pitch: Pitch) -> bool:
    """Whether both accidental rules hear this pitch the same (only such notes may be tied)."""
    by_octave, by_letter = pitch[2]
    return by_octave == by_letter


def _accidental_allowed(state: BarState, text: str) -> bool:
    """Whether an accidental written so far (`^`, `^^`, `_`, `__`, `=`) can lead to a target."""
    targets = _targets(state)
    if targets is None:
        return True
    wanted = {text} if text in ("^^", "__", "=") else {text, text * 2}
    return any(alter in {(ACCIDENTAL_ALTER[w],) * 2 for w in wanted} for _, _, alter in targets)


def _start_letter(state: BarState, ch: str, mode: str) -> BarState | None:
    explicit = ACCIDENTAL_ALTER[state.accidental] if state.accidental else None
    if not _reachable(state, ch, 0, explicit, final=False):
        return None
    return _with(state, mode=mode, letter=ch.upper(), explicit=explicit, accidental="",
                   octave_mark="'" if ch.islower() else ",", octave_marks=0, previous=ch)


def _complete_pitch(state: BarState) -> BarState | None:
    """Close the letter being written: check it against the tie, remember its accidental."""
    if not state.letter:
        return state
    octave = written_octave(state)
    lowest = state.octave_mark == ","
    letter = state.letter if lowest else state.letter.lower()
    if not _reachable(state, letter, state.octave_marks, state.explicit, final=True):
        return None
    pitch = (state.letter, octave, _alter(state, state.letter, octave, state.explicit))
    carried, letters = state.carried, state.carried_letters
    if state.explicit is not None:
        carried = frozenset(c for c in carried if c[:2] != pitch[:2]) | {
            (state.letter, octave, state.explicit)}
        letters = frozenset(c for c in letters if c[0] != state.letter) | {
            (state.letter, state.explicit)}
    notes = state.notes if state.mode == "grace" else state.notes | {pitch}
    return _with(state, letter="", explicit=None, carried=carried, carried_letters=letters,
                   notes=notes, last=pitch)


# The grammar --------------------------------------------------------------------------------

def _start_of_element(state: BarState, ch: str) -> BarState | None:
    """`ch` at an element boundary (nothing pending)."""
    in_triplet = state.triplet_left > 0
    if ch == " ":
        if state.previous in (" ", "\n", "("):
            return None
        return _with(state, previous=ch)
    if ch == "\n":
        return _with(state, previous=ch) if state.previous == "|" else None
    if ch == "|":
        if state.time != state.bar or in_triplet or state.previous in ("|", "("):
            return None
        left = state.bars_left - 1
        return _with(state, bars_left=left, time=0, previous=ch, carried=frozenset(),
                       carried_letters=frozenset(), mode="done" if left == 0 else "between")
    if ch == "Z":
        if not state.multi_rest or state.time != 0 or state.tied or in_triplet:
            return None
        return _with(state, mode="multirest", length="", previous=ch)
    if not _length_can_grow(state, ""):  # no note of any length fits what is left
        return None
    if ch == '"':
        if not state.chord_symbols or state.previous == "(":
            return None
        return _with(state, mode="symbol", symbol="", previous=ch)
    return _start_of_event(state, ch)


def _start_of_event(state: BarState, ch: str) -> BarState | None:
    """`ch` opening a note, rest, chord, grace group or tuplet."""
    in_triplet = state.triplet_left > 0
    fresh = _with(state, notes=frozenset(), chord_ties=frozenset())
    if ch in ACCIDENTALS:
        fresh = _with(fresh, pending="note")
        if not _accidental_allowed(fresh, ch):
            return None
        return _with(fresh, mode="accidental", accidental=ch, previous=ch)
    if ch in NOTE_LETTERS:
        return _start_letter(_with(fresh, pending="note", length="", accidental=""), ch,
                             "pitch")
    if state.tied and ch != "[":  # a tie leads to a note or chord of the same pitches
        return None
    if ch == "z":
        return _with(fresh, mode="length", pending="rest", length="", previous=ch)
    if ch == "[" and not in_triplet:  # abc2midi reads a chord's length apart from a triplet's
        return _with(fresh, mode="chord", pending="chord", count=0, accidental="",
                       octave_mark="", previous=ch)
    # grace notes: not in a triplet (music21 would count them among the three), and only
    # where a note can follow them (GRACE_SHARE)
    if ch == "{" and not in_triplet and \
            _grace_fits(_with(fresh, grace_length=state.ticks.unit)):
        return _with(fresh, mode="grace", count=0, accidental="", octave_mark="", previous=ch)
    if ch == "(" and not in_triplet and can_finish(state.bar, state.time, 3, state.ticks):
        return _with(fresh, mode="tuplet", previous=ch)
    return None


def _finish_element(state: BarState) -> BarState | None:
    """Close the pending note, rest or chord; None if its length breaks the bar."""
    value = state.ticks.by_text.get(state.length)
    if value is None:
        return None
    triplet_value = 0
    if state.triplet_left:
        if value not in state.ticks.triplet or state.triplet_value not in (0, value):
            return None
        triplet_value = value if state.triplet_left > 1 else 0
        value = _in_triplet(value)
    if GRACE_SHARE * value <= state.grace_length:
        return None
    time = state.time + value
    triplet_left = max(0, state.triplet_left - 1)
    if not can_finish(state.bar, time, triplet_left, state.ticks, triplet_value):
        return None
    return _with(state, time=time, triplet_left=triplet_left, triplet_value=triplet_value,
                   grace_length=0, mode="between", pending="", length="",
                   tied=state.chord_ties)


def _ends_the_music(state: BarState) -> bool:
    """Whether the last bar is full: a tie here would lead to no note."""
    return state.bars_left == 1 and state.time == state.bar


def _length_can_grow(state: BarState, text: str) -> bool:
    """Whether a length text can still become a length that keeps the bar finishable."""
    return _fits(state.bar, state.time, state.triplet_left, text, state.ticks,
                 state.triplet_value, state.grace_length)


def _grace_fits(state: BarState) -> bool:
    """Whether a note can still follow the grace notes written so far."""
    return _fits(state.bar, state.time, 0, "", state.ticks, 0, state.grace_length)


@lru_cache(maxsize=16_384)
def _fits(bar: int, time: int, triplet_left: int, text: str, ticks: Ticks,
          triplet_value: int, grace_length: int) -> bool:
    candidates = [value for value in ticks.prefixes.get(text, ())
                  if GRACE_SHARE * value > grace_length]
    if triplet_left:
        return any(can_finish(bar, time + _in_triplet(value), triplet_left - 1, ticks, value)
                   for value in candidates
                   if value in ticks.triplet and triplet_value in (0, value))
    return any(can_finish(bar, time + value, 0, ticks) for value in candidates)


def _feed(state: BarState, ch: str) -> BarState | None:
    mode = state.mode
    if mode == "done":
        return None
    if mode == "between":
        return _start_of_element(state, ch)
    if mode == "accidental":
        if ch in "^_" and state.accidental == ch:
            if not _accidental_allowed(state, ch * 2):
                return None
            return _with(state, accidental=ch * 2, previous=ch)
        if ch in NOTE_LETTERS:
            return _start_letter(state, ch, "pitch")
        return None
    if mode == "tuplet":
        if ch == "3":  # `previous` stays "(": no space and no bar line may follow
            return _with(state, mode="between", triplet_left=3)
        return None
    if mode in ("chord", "grace"):
        return _feed_group(state, ch)
    if mode == "after_grace":
        if ch in ACCIDENTALS or ch in NOTE_LETTERS or ch == "[":
            return _start_of_event(_with(state, mode="between"), ch)
        return None
    if mode == "symbol":
        return _feed_symbol(state, ch)
    if mode == "after_symbol":
        if ch in (" ", "|", "\n", '"', "Z"):
            return None
        return _start_of_event(_with(state, mode="between"), ch)
    if mode == "multirest":
        return _feed_multirest(state, ch)
    # "pitch" or "length": a note, rest or chord whose length is being written
    if mode == "pitch" and ch == state.octave_mark and state.octave_marks < MAX_OCTAVE_MARKS:
        lowest = state.octave_mark == ","
        letter = state.letter if lowest else state.letter.lower()
        if not _reachable(state, letter, state.octave_marks + 1, state.explicit, final=False):
            return None
        return _with(state, octave_marks=state.octave_marks + 1, previous=ch)
    if mode == "pitch":
        completed = _complete_pitch(state)
        if completed is None:
            return None
        state = _with(completed, mode="length")
    if ch in LENGTH_CHARS:
        text = state.length + ch
        if not _length_can_grow(state, text):
            return None
        return _with(state, mode="length", length=text, previous=ch)
    finished = _finish_element(state)
    if finished is None:
        return None
    if ch == "-":
        if state.pending == "rest" or state.triplet_left or _ends_the_music(finished) or \
                not all(_heard_alike(p) for p in state.notes):
            return None
        return _with(finished, previous=ch, tied=state.notes)
    return _start_of_element(finished, ch)


def _feed_group(state: BarState, ch: str) -> BarState | None:
    """Inside a chord `[...]` or a grace group `{...}`."""
    closing = "]" if state.mode == "chord" else "}"
    limit = MAX_CHORD_NOTES if state.mode == "chord" else MAX_GRACE_NOTES
    if ch == state.octave_mark and state.octave_marks < MAX_OCTAVE_MARKS and state.letter:
        lowest = state.octave_mark == ","
        letter = state.letter if lowest else state.letter.lower()
        if not _reachable(state, letter, state.octave_marks + 1, state.explicit, final=False):
            return None
        return _with(state, octave_marks=state.octave_marks + 1, previous=ch)
    if ch in ACCIDENTALS and state.accidental:
        if ch != state.accidental or ch == "=" or len(state.accidental) == 2 or \
                not _accidental_allowed(state, ch * 2):
            return None
        return _with(state, accidental=state.accidental * 2, previous=ch)
    completed = _complete_pitch(state)  # a new note, a tie, a length or the end closes it
    if completed is None:
        return None
    state = completed
    if ch == closing:
        if state.count == 0 or state.accidental:
            return None
        if state.mode == "chord":
            if not state.tied <= state.notes:
                return None
            return _with(state, mode="length", length="", previous=ch)
        return _with(state, mode="after_grace", previous=ch)
    if ch in ACCIDENTALS:
        if state.count >= limit or not _accidental_allowed(state, ch):
            return None
        if state.mode == "grace" and \
                not _grace_fits(_with(state,
                                      grace_length=state.grace_length + state.ticks.unit)):
            return None
        return _with(state, accidental=ch, octave_mark="", previous=ch)
    if ch in NOTE_LETTERS:
        if state.count >= limit and not state.accidental:
            return None
        started = _start_letter(state, ch, state.mode)
        if started is None:
            return None
        if state.mode == "grace":
            started = _with(started, grace_length=state.grace_length + state.ticks.unit)
            if not _grace_fits(started):
                return None
        return _with(started, count=state.count + 1)
    if ch == "-" and state.mode == "chord" and state.previous not in "-[" and \
            not state.accidental and state.bars_left > 1:  # no tie out of the last bar
        if state.last is None or not _heard_alike(state.last):
            return None
        return _with(state, octave_mark="", previous=ch,
                       chord_ties=state.chord_ties | {state.last})
    if state.mode == "grace" and ch in "/2" and state.previous not in LENGTH_CHARS | {"{"} \
            and not state.accidental:  # one length mark per grace note: {g2}, {g/}
        unit = state.ticks.unit
        grace = _with(state, octave_mark="", previous=ch,
                      grace_length=state.grace_length + (unit if ch == "2" else -unit // 2))
        return grace if _grace_fits(grace) else None
    return None


def _feed_symbol(state: BarState, ch: str) -> BarState | None:
    """Inside the quotes of a chord symbol: only a normalized spelling may be written."""
    if ch == '"':
        if state.symbol not in SYMBOLS:
            return None
        return _with(state, mode="after_symbol", symbol="", previous=ch)
    text = state.symbol + ch
    if text not in SYMBOL_PREFIXES:
        return None
    return _with(state, symbol=text, previous=ch)


def _feed_multirest(state: BarState, ch: str) -> BarState | None:
    """After `Z`: the number of silent bars (none for one), then the bar line."""
    if ch.isdigit():
        text = state.length + ch
        if not any(str(n).startswith(text) for n in range(2, state.bars_left + 1)):
            return None
        return _with(state, length=text, previous=ch)
    count = int(state.length) if state.length else 1
    if count > state.bars_left or state.length == "1":
        return None
    ended = _with(state, mode="between", length="", bars_left=state.bars_left - count + 1,
                    time=state.bar)
    return _start_of_element(ended, ch)


def grid_for(unit: str) -> Fraction:
    """The shortest note (a 32nd note) in unit notes of an `L:` value: 1/4 for L:1/8."""
    return SHORTEST / Fraction(unit.strip() or "1/8")


def bar_units(meter: str, unit: str) -> Fraction:
    """The length of a bar in unit notes, from `M:` and `L:` values (C = 4/4, C| = 2/2)."""
    meter = meter.strip()
    meter = {"C": "4/4", "C|": "2/2", "none": "4/4", "": "4/4"}.get(meter, meter)
    numerator, _, denominator = meter.partition("/")
    total = sum(int(part) for part in numerator.replace("(", "").replace(")", "").split("+"))
    return Fraction(total, int(denominator)) / Fraction(unit.strip() or "1/8")
