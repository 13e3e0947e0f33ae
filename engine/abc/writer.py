"""music21 stream -> ABC text. music21 reads ABC but cannot write it; this module does.

What it writes is standard ABC 2.1 and is also the language Segue's models speak (Segue ABC
v2, `LANGUAGE_VERSION`; docs/reference/abc.md is its reference):

* the head is `X:`, `T:` (if the score has a title), `M:` (`M:2+3/8` for additive meters),
  `L:` (the ABC rule: 1/16 below a meter of 3/4, else 1/8; never changed in the body), `Q:` (if
  known), one `V:n name="..." clef=...` line per voice when there are several, and `K:`;
* every accidental that differs from what a reader would assume is written out, whichever of
  ABC's accidental rules (none, same letter, same letter and octave) the reader follows;
* durations are written explicitly (`A3/2`, never broken rhythm `A>B`); tuplets as `(3` or
  `(p:q:r`; chords as `[CEG]2`; ties as `-`, only to the same pitch; grace notes as `{g}`; gaps
  as invisible rests `x`; chord symbols as `"Am7"` (normalized spelling) before the event at
  whose onset they start, a held note split into tied notes where a symbol starts inside it;
* beats are separated by spaces, bars by `|` (with `|:`, `:|`, `[1`, `[2`, `||`, `|]` where
  the score has repeats, endings and double bars), four bars to a line; a voice's silent whole
  bars are multi-bar rests `Z`, `Z3` (within a line);
* several parts (or voices of a part) become ABC voices: chunks of four bars, each voice's
  chunk on its own line after a bare `V:n` line;
* meter, key and tempo changes become inline fields at the start of the bar, in every voice.

Lyrics, dynamics, articulations, slurs and layout are not written.
"""

from __future__ import annotations

import copy
import itertools
import statistics
from dataclasses import dataclass, field
from fractions import Fraction
from typing import TYPE_CHECKING, Any

from music21 import (
    bar,
    chord,
    clef,
    duration,
    harmony,
    key,
    meter,
    note,
    spanner,
    stream,
    tempo,
    tie,
)
from music21.common.types import StepName

from engine.abc.chord_symbols import is_chord_symbol, symbol_text
from engine.abc.text import length_text
from engine.errors import SegueError

if TYPE_CHECKING:
    from typing import TypeVar

    from music21 import base, pitch

    # what `first_of` returns: an object of the class it is asked for
    M21Object = TypeVar("M21Object", bound=base.Music21Object)

# The version of the text this module writes; checkpoints record the version they read.
LANGUAGE_VERSION = 2
MODE_SUFFIX = {
    "major": "", "ionian": "", "minor": "m", "aeolian": "m", "dorian": "Dor",
    "phrygian": "Phr", "lydian": "Lyd", "mixolydian": "Mix", "locrian": "Loc",
}
MISREAD_KEYS = {"FbLyd"}  # music21 reads these with the wrong signature
ACCIDENTAL_TEXT = {-2: "__", -1: "_", 0: "=", 1: "^", 2: "^^"}
CLEF_TEXT = {("G", 2): "treble", ("F", 4): "bass", ("C", 3): "alto", ("C", 4): "tenor"}


def frac(value: float | Fraction) -> Fraction:
    """A music21 duration or offset (float or Fraction) as an exact Fraction."""
    return Fraction(value).limit_denominator(1 << 16)


def unit_length(time_signature: meter.TimeSignature | None) -> Fraction:
    """ABC's default unit note length (fraction of a whole note) for a meter."""
    if time_signature is None:
        return Fraction(1, 8)
    ratio = Fraction(time_signature.numerator, time_signature.denominator)
    return Fraction(1, 16) if ratio < Fraction(3, 4) else Fraction(1, 8)


def meter_text(time_signature: meter.TimeSignature | None) -> str:
    """The value of an `M:` field: `6/8`, `C`, `C|`, `2+3/8` (additive), `none`."""
    if time_signature is None:
        return "none"
    if time_signature.symbol in ("common", "cut"):
        return "C" if time_signature.symbol == "common" else "C|"
    ratio = time_signature.ratioString
    if "+" in ratio:
        terms = [term.partition("/") for term in ratio.split("+")]
        if len({d for _, _, d in terms}) == 1 and all(n.isdigit() for n, _, _ in terms):
            return "+".join(n for n, _, _ in terms) + "/" + terms[0][2]
        return f"{time_signature.numerator}/{time_signature.denominator}"
    return ratio


def key_text(key_signature: key.KeySignature | None) -> str:
    """The value of a `K:` field: tonic and mode, e.g. `F#m`, `Bb`, `ADor`."""
    if key_signature is None:
        return "C"
    if isinstance(key_signature, key.Key) and key_signature.mode in MODE_SUFFIX:
        tonic, mode = key_signature.tonic.name, key_signature.mode
        text = tonic.replace("-", "b") + MODE_SUFFIX[mode]
        if text not in MISREAD_KEYS and mode != "locrian":
            return text
    # music21 misreads every locrian key and a few others: the major key of the same
    # signature has the same pitches
    tonic = key.KeySignature(key_signature.sharps).asKey("major").tonic.name
    return tonic.replace("-", "b")


def tempo_text(mark: tempo.MetronomeMark) -> str | None:
    """The value of a `Q:` field, such as `1/4=120`, or None when the mark has no number."""
    number = mark.getQuarterBPM()
    if number is None:
        return None
    beat = frac(mark.referent.quarterLength) / 4 if mark.referent else Fraction(1, 4)
    bpm = number / float(beat * 4)
    return f"{beat.numerator}/{beat.denominator}={round(bpm):d}"


def clef_of(part: stream.Stream) -> clef.Clef | None:
    found = part.recurse().getElementsByClass(clef.Clef)
    return found.first() if found else None


def clef_text(part: stream.Stream) -> tuple[str, int]:
    """(the `clef=` value of a part's voice, the clef's octave change).

    A part without a clef gets treble or bass from where its notes lie.
    """
    mark = clef_of(part)
    octave = int(getattr(mark, "octaveChange", 0) or 0) if mark is not None else 0
    name = CLEF_TEXT.get((str(mark.sign), int(mark.line or 0))) if mark is not None else None
    if name is None:
        pitches = [p.midi for n in part.recurse().notes for p in n.pitches]
        name = "bass" if pitches and statistics.median(pitches) < 57 else "treble"
        octave = 0
    if octave not in (-1, 1) or name not in ("treble", "bass"):
        return name, 0
    return f"{name}{'-8' if octave < 0 else '+8'}", octave


def tuplet_ratio(element: note.GeneralNote) -> Fraction:
    """How much the element's tuplets shorten it: 2/3 for a triplet, 1 for none."""
    ratio = Fraction(1)
    for tup in element.duration.tuplets:
        ratio *= Fraction(tup.numberNotesNormal, tup.numberNotesActual)
    return ratio


def default_tuplet_q(p: int, compound: bool) -> int:
    """The q that ABC assumes for `(p` (p notes in the time of q)."""
    if p in (3, 6):
        return 2
    if p in (2, 4, 8):
        return 3
    return 3 if compound else 2


@dataclass
class Bar:
    """One bar of one ABC voice: its events, chord symbols and the bar lines around it."""

    events: list = field(default_factory=list)  # notes, rests, chords, key/meter/tempo marks
    chords: list[tuple[Fraction, str]] = field(default_factory=list)  # (onset, symbol)
    start_repeat: bool = False
    end_repeat: bool = False
    right_style: str = "regular"  # regular, light-light (||), final (|])
    ending: str | None = None  # "1", "2", "1,2" when a first/second ending starts here
    offset_shift: Fraction = Fraction(0)  # where the bar's first event sits (pickups: > 0)
    full: bool = True  # the bar lasts what its meter says

    @property
    def silent(self) -> bool:
        """A whole bar with no note and no chord symbol: written as a multi-bar rest `Z`."""
        return self.full and not self.chords and not any(
            isinstance(e, note.NotRest) for e in self.events)


@dataclass
class Voice:
    """One ABC voice: its bars and what its `V:` line says."""

    bars: list[Bar]
    name: str
    clef: str
    octave: int  # the clef's octave change (treble-8: -1): pitches are written that far up


class AccidentalState:
    """What a reader assumes for each note in a bar, under every ABC accidental rule."""

    def __init__(self, key_signature: key.KeySignature | None) -> None:
        self.set_key(key_signature)

    def set_key(self, key_signature: key.KeySignature | None) -> None:
        self.key_alter: dict[str, int] = {}
        if key_signature is not None:
            steps: tuple[StepName, ...] = ("C", "D", "E", "F", "G", "A", "B")
            for step in steps:
                accidental = key_signature.accidentalByStep(step)
                self.key_alter[step] = int(accidental.alter) if accidental else 0
        self.new_bar()

    def new_bar(self) -> None:
        self.by_step: dict[str, int] = {}
        self.by_step_octave: dict[tuple[str, int], int] = {}

    def marking(self, step: str, octave: int, alter: int) -> str:
        """The accidental to write before this note ('' when every reader assumes it)."""
        in_key = self.key_alter.get(step, 0)
        assumed = {
            in_key,
            self.by_step.get(step, in_key),
            self.by_step_octave.get((step, octave), in_key),
        }
        if assumed == {alter}:
            return ""
        self.by_step[step] = alter
        self.by_step_octave[(step, octave)] = alter
        return ACCIDENTAL_TEXT[alter]


def pitch_text(p: pitch.Pitch, accidentals: AccidentalState, octave_shift: int = 0) -> str:
    """One pitch in ABC: accidental, letter, octave marks (C4 = `C`, C5 = `c`, C3 = `C,`)."""
    octave = (p.octave if p.octave is not None else p.implicitOctave) + octave_shift
    alter = max(-2, min(2, round(p.alter)))
    text = accidentals.marking(p.step, octave, alter)
    if octave >= 5:
        return text + p.step.lower() + "'" * (octave - 5)
    return text + p.step + "," * (4 - octave)


def ends_a_beat(time_signature: meter.TimeSignature | None, position: Fraction,
                length: Fraction) -> bool:
    """Whether an event of `length` ending at `position` in its bar ends a beat (a space
    follows it); for additive meters (2+3/8) the beats are the groups."""
    if time_signature is None:
        return position % 1 == 0
    try:
        beat = frac(time_signature.beatDuration.quarterLength)
        return position % beat == 0 or length >= beat
    except meter.MeterException:
        groups = [frac(b.duration.quarterLength) for b in time_signature.beatSequence]
        return position in set(itertools.accumulate(groups)) or length >= min(groups)


def tied_on(n: note.NotRest, untied: set[int]) -> bool:
    return n.tie is not None and n.tie.type in ("start", "continue") and id(n) not in untied


class VoiceWriter:
    """Writes the bars of one voice, keeping the accidental state across the bar."""

    def __init__(self, unit: Fraction, time_signature: meter.TimeSignature | None,
                 key_signature: key.KeySignature | None,
                 mark: tempo.MetronomeMark | None, octave: int = 0) -> None:
        self.unit_ql = unit * 4  # unit length in quarter notes
        # TimeSignature | None, typed Any: tuplet_groups tests it with bool(), which mypy does
        # not narrow
        self.time_signature: Any = time_signature
        self.key_signature = key_signature
        self.tempo = tempo_text(mark) if mark is not None else None
        self.octave_shift = -octave
        self.untied: set[int] = set()
        self.accidentals = AccidentalState(key_signature)

    def length(self, quarter_length: Fraction) -> str:
        return length_text(quarter_length / self.unit_ql)

    def pitch(self, p: pitch.Pitch) -> str:
        return pitch_text(p, self.accidentals, self.octave_shift)

    def bar_text(self, bar_: Bar) -> tuple[str, str]:
        """(the inline fields that open the bar, the bar's music).

        A meter, key or tempo change at the start of a bar becomes inline fields before its
        music (`[M:3/4] [K:D] `); a change inside a bar stays inline where it happens.
        """
        self.accidentals.new_bar()
        changes: list[str] = []
        pieces: list[str] = []
        position = bar_.offset_shift
        sounding = [e for e in bar_.events if isinstance(e, note.GeneralNote)]
        tuplet_heads = self.tuplet_groups(sounding)
        symbols = sorted(bar_.chords)
        graces: list[note.NotRest] = []
        for element in bar_.events:
            if isinstance(element, (meter.TimeSignature, key.KeySignature, tempo.MetronomeMark)):
                change = self.field_change(element)
                if change and frac(element.offset) == 0:
                    changes.append(f"[{change}]")
                elif change:
                    pieces.append(f"[{change}] ")
                continue
            if element.duration.isGrace:
                graces.append(element)
                continue
            offset = frac(element.offset) + bar_.offset_shift
            if offset > position:  # a gap in the voice: an invisible rest fills it
                pieces.append("x" + self.length(offset - position) + " ")
                position = offset
            elif offset < position:
                continue  # overlaps the previous event: cannot be written in one voice
            text = ""
            while symbols and symbols[0][0] + bar_.offset_shift <= offset:
                text += f'"{symbols.pop(0)[1]}"'
            if graces:  # before a tuplet head: music21 would count them in the tuplet
                text += "{" + "".join(self.grace_text(g) for g in graces) + "}"
                graces = []
            text += tuplet_heads.get(id(element), "")
            if text and pieces and not pieces[-1].endswith(" "):
                text = " " + text
            text += self.event_text(element)
            position += frac(element.duration.quarterLength)
            if ends_a_beat(self.time_signature, position,
                           frac(element.duration.quarterLength)):
                text += " "
            pieces.append(text)
        if graces:  # grace notes at the end of a bar ornament nothing: written before the bar
            pieces.append("{" + "".join(self.grace_text(g) for g in graces) + "}")
        fields = " ".join(changes)
        return (fields + " " if fields else ""), "".join(pieces).strip()

    def field_change(self, element: meter.TimeSignature | key.KeySignature | tempo.MetronomeMark
                     ) -> str | None:
        """`M:3/4`, `K:D` or `Q:1/4=90` if `element` changes what is in force, else None."""
        if isinstance(element, meter.TimeSignature):
            if self.time_signature is not None and \
                    meter_text(element) == meter_text(self.time_signature):
                return None
            self.time_signature = element
            return f"M:{meter_text(element)}"
        if isinstance(element, key.KeySignature):
            if self.key_signature is not None and key_text(element) == \
                    key_text(self.key_signature):
                return None
            self.key_signature = element
            self.accidentals.set_key(element)
            return f"K:{key_text(element)}"
        text = tempo_text(element)
        if text is None or text == self.tempo:
            return None
        self.tempo = text
        return f"Q:{text}"

    def event_text(self, element: note.GeneralNote) -> str:
        notated = frac(element.duration.quarterLength) / tuplet_ratio(element)
        length = self.length(notated)
        if isinstance(element, chord.Chord):
            all_tied = tied_on(element, self.untied) or all(
                tied_on(n, self.untied) for n in element.notes)
            inner = "".join(
                self.pitch(n.pitch) + ("-" if tied_on(n, self.untied) and not all_tied else "")
                for n in element.notes
            )
            return f"[{inner}]{length}" + ("-" if all_tied else "")
        if isinstance(element, note.Note):
            return self.pitch(element.pitch) + length + \
                ("-" if tied_on(element, self.untied) else "")
        return "z" + length  # rests, and unpitched notes, which ABC cannot write

    def grace_text(self, grace: note.NotRest) -> str:
        notated = frac(duration.Duration(grace.duration.type, dots=grace.duration.dots)
                       .quarterLength) if grace.duration.type != "zero" else self.unit_ql
        pitches = grace.pitches
        if not pitches:
            return ""
        return self.pitch(pitches[0]) + self.length(notated)

    def tuplet_groups(self, sounding: list) -> dict[int, str]:
        """`(p`, `(p:q` or `(p:q:r` heads, by element id, for the tuplets among `sounding`.

        A run of notes sharing a ratio is cut into groups of p notes (ABC's default); a
        remainder gets an explicit note count. The timing is exact however the run is cut.
        """
        heads: dict[int, str] = {}
        compound = bool(self.time_signature) and self.time_signature.numerator % 3 == 0 \
            and self.time_signature.numerator > 3
        run: list = []
        run_ratio = Fraction(1)

        def flush() -> None:
            if not run:
                return
            p, q = run_ratio.denominator, run_ratio.numerator
            for start in range(0, len(run), p):
                group = run[start:start + p]
                r = len(group)
                if r == p and q == default_tuplet_q(p, compound):
                    head = f"({p}"
                elif r == p:
                    head = f"({p}:{q}"
                else:
                    head = f"({p}:{q}:{r}"
                heads[id(group[0])] = head
            run.clear()

        for element in sounding:
            if element.duration.isGrace:
                continue
            ratio = tuplet_ratio(element)
            if ratio != run_ratio or (element.duration.tuplets
                                      and element.duration.tuplets[0].type == "start"
                                      and len(run) % run_ratio.denominator == 0):
                flush()
                run_ratio = ratio
            if ratio != 1:
                run.append(element)
        flush()
        return heads


def chord_symbols_of(measure: stream.Measure) -> list[tuple[Fraction, str]]:
    """The measure's chord symbols as (onset in the bar, normalized text), in order."""
    found = []
    for symbol in measure.recurse().getElementsByClass(harmony.ChordSymbol):
        text = symbol_text(symbol)
        if text is not None:
            found.append((frac(symbol.getOffsetInHierarchy(measure)), text))
    return sorted(found, key=lambda item: item[0])


def split_at_symbols(events: list, onsets: list[Fraction]) -> list:
    """`events` with each note, chord or rest that a chord symbol starts inside cut in two at
    the symbol's onset (the two halves of a note tied), so the symbol has an event to stand on.
    Tuplet notes are not cut: their symbol moves to the next onset."""
    result = []
    for element in events:
        start = frac(element.offset)
        end = start + frac(element.duration.quarterLength)
        cuts = [] if element.duration.isGrace or element.duration.tuplets \
            else sorted(t for t in onsets if start < t < end)
        if not cuts:
            result.append(element)
            continue
        bounds = [start, *cuts, end]
        old_tie = getattr(element, "tie", None)
        for index, (left, right) in enumerate(itertools.pairwise(bounds)):
            piece = copy.deepcopy(element)
            piece.duration = duration.Duration(quarterLength=right - left)
            piece.offset = left
            if isinstance(piece, note.NotRest):
                opens = index == 0 and (old_tie is None or old_tie.type == "start")
                closes = index == len(bounds) - 2 and (old_tie is None or old_tie.type == "stop")
                piece.tie = tie.Tie("start" if opens else "stop" if closes else "continue")
            result.append(piece)
    return result


def voice_bars(part: stream.Stream, tempo_marks: dict[int, list] | None = None,
               chord_symbols: bool = True) -> list[list[Bar]]:
    """The bars of a part, as one list per voice (a part with two voices gives two lists).

    `tempo_marks` adds tempo marks by bar index (tempo holds for every voice); chord symbols go
    to the part's first voice.
    """
    measures = list(part.getElementsByClass(stream.Measure))
    if not measures:
        raise SegueError("the part has no bars to write")
    lengths = bar_lengths(measures)
    brackets = {}
    for bracket in part.spanners.getElementsByClass(spanner.RepeatBracket):
        spanned = bracket.getSpannedElements()
        if spanned:
            brackets[id(spanned[0])] = str(bracket.number)
    voice_count = max(1, *(len(m.voices) for m in measures))
    voices: list[list[Bar]] = [[] for _ in range(voice_count)]
    for number, measure in enumerate(measures):
        marks = [e for e in measure.getElementsByClass((meter.TimeSignature, key.KeySignature))]
        marks += (tempo_marks or {}).get(number, [])
        left, right = measure.leftBarline, measure.rightBarline
        shift = frac(measure.paddingLeft) if measure.paddingLeft else Fraction(0)
        full = not shift and not measure.paddingRight and \
            frac(measure.duration.quarterLength) == lengths[number]
        contents = list(measure.voices) if measure.voices else [measure]
        symbols = chord_symbols_of(measure) if chord_symbols else []
        for index, voice in enumerate(voices):
            bar_ = Bar(
                chords=symbols if index == 0 else [],
                start_repeat=isinstance(left, bar.Repeat) and left.direction == "start",
                end_repeat=isinstance(right, bar.Repeat) and right.direction == "end",
                right_style=right.type if isinstance(right, bar.Barline) else "regular",
                ending=brackets.get(id(measure)),
                offset_shift=shift,
                full=full,
            )
            events = list(contents[index].notesAndRests) if index < len(contents) else []
            if index >= len(contents):  # this voice is silent in this bar
                events = [note.Rest(quarterLength=lengths[number])]
                events[0].offset = 0
            events = [e for e in events if not is_chord_symbol(e)]
            events = split_at_symbols(events, [onset for onset, _ in bar_.chords])
            bar_.events = sorted(
                marks + events, key=lambda e: (frac(e.offset), isinstance(e, note.GeneralNote)))
            voice.append(bar_)
    for voice in voices:
        balance_repeats(voice)
    return voices


def balance_repeats(bars: list[Bar]) -> None:
    """Write the repeat signs that are implied but missing (abc2midi wants every one): the `|:`
    that a first ending implies after an earlier `:|`, and the `:|` that closes a section
    opened by `|:` at the end of the tune; drop a second `|:` inside an open section."""
    section_start, opened, explicit = 0, True, False
    for index, bar_ in enumerate(bars):
        if bar_.start_repeat and explicit:
            bar_.start_repeat = False
        elif bar_.start_repeat:
            opened = explicit = True
        if bar_.ending and bar_.ending.startswith("1") and not opened:
            bars[section_start].start_repeat = True
            opened = explicit = True
        if bar_.end_repeat:
            section_start, opened, explicit = index + 1, False, False
    if explicit and bars:
        bars[-1].end_repeat = True


def false_ties(bars: list[Bar]) -> set[int]:
    """Ids of notes marked tied whose next event has no note of the same pitch.

    Some transcriptions write slurs with ABC's tie sign; a tie must join equal pitches.
    """
    events = [e for b in bars for e in b.events
              if isinstance(e, note.GeneralNote) and not e.duration.isGrace]
    untied: set[int] = set()
    for current, following in itertools.pairwise([*events, None]):
        if isinstance(current, chord.Chord):
            members = list(current.notes)
        elif isinstance(current, note.Note):
            members = [current]
        else:  # a rest
            continue
        following_pitches = set() if following is None or isinstance(following, note.Rest) \
            else {p.midi for p in following.pitches}
        for member in members:
            if member.pitch.midi not in following_pitches:
                untied.add(id(member))
        if not following_pitches & {p.midi for p in current.pitches}:
            untied.add(id(current))
    return untied


def bar_line(previous: Bar | None, following: Bar | None) -> tuple[str, str]:
    """The bar line between two bars, as (what ends the previous bar, what opens the next).

    At a line break the first ends one line (`:|`, `||`) and the second opens the next (`|:`,
    `[2`); inside a line they are written as one (`::`, `:|[2`). `:|:` is avoided: music21
    and abc2midi both misread it.
    """
    if previous is None:
        closing = ""
    elif previous.end_repeat:
        closing = ":|"
    elif following is None and previous.right_style in ("light-heavy", "final"):
        closing = "|]"
    elif previous.right_style in ("light-light", "double", "final", "light-heavy"):
        closing = "||"
    else:
        closing = "|"
    opening = ""
    if following is not None and following.start_repeat:
        opening = "|:"
    if following is not None and following.ending:
        opening += f"[{following.ending}"
    return closing, opening


def joined_bar_line(closing: str, opening: str) -> str:
    """`closing` and `opening` of `bar_line` written together inside a line."""
    if opening.startswith("|:") and closing:
        return ("::" if closing == ":|" else "|:") + opening[2:]
    return closing + opening


def score_parts(score: stream.Stream) -> list[stream.Stream]:
    """The parts of a score, each with bars (a stream without bars is barred first) and one
    voice (`one_voice`)."""
    parts = list(score.parts) if isinstance(score, stream.Score) else [score]
    if not parts:
        raise SegueError("the score has no parts")
    barred = []
    for part in parts:
        if not part.recurse().getElementsByClass(meter.TimeSignature) or bars_overlap(part):
            part = rebarred(part)
        elif not part.getElementsByClass(stream.Measure):
            part = part.makeNotation()
        barred.append(one_voice(part))
    return barred


def one_voice(part: stream.Stream) -> stream.Stream:
    """A part whose bars hold several voices (a piano staff's melody and inner parts) as one
    voice, so that a staff is one ABC voice and no voice is padded with rests where it is
    silent: voices of rests alone are dropped, and where two or more voices sound, the bar
    is chordified (every pitch kept at its time; a note held while another voice moves is
    split into tied notes). A part without voices is returned as it is."""
    measures = list(part.getElementsByClass(stream.Measure))
    if not any(measure.voices for measure in measures):
        return part
    part = copy.deepcopy(part)
    several = False
    for measure in part.getElementsByClass(stream.Measure):
        for voice in list(measure.voices):
            if not voice.notes:
                measure.remove(voice)
        if len(measure.voices) == 1:  # the one voice left becomes the bar's content
            voice = measure.voices[0]
            measure.remove(voice)
            for element in voice:
                measure.insert(voice.offset + element.offset, element)
        several = several or len(measure.voices) > 1
    if several:
        merged = part.chordify()
        merged.partName = getattr(part, "partName", None)
        for found in list(merged.recurse().getElementsByClass(chord.Chord)):
            if len(found.pitches) == 1 and not isinstance(found, harmony.ChordSymbol):
                single = note.Note(found.pitches[0], duration=found.duration)
                single.tie = found.tie
                found.activeSite.replace(found, single)
        part = merged
    measures = list(part.getElementsByClass(stream.Measure))
    for measure, length in zip(measures, bar_lengths(measures), strict=True):
        end = length - frac(measure.paddingLeft or 0)
        if frac(measure.highestTime) < end and not measure.paddingRight:
            measure.makeRests(refStreamOrTimeRange=[0.0, float(end)], fillGaps=True,
                              inPlace=True)
    return part


def bar_lengths(measures: list[stream.Measure]) -> list[Fraction]:
    """What each bar lasts by its meter, in quarter notes (music21's `barDuration` looks the
    meter up anew for every bar, which costs seconds over a long movement)."""
    lengths: list[Fraction] = []
    signature: meter.TimeSignature | None = None
    for measure in measures:
        signature = measure.timeSignature or signature
        if signature is None:
            signature = measure.getContextByClass(meter.TimeSignature) or \
                meter.TimeSignature("4/4")
        lengths.append(frac(signature.barDuration.quarterLength))
    return lengths


def bars_overlap(part: stream.Stream) -> bool:
    """Whether a bar's notes run into the next bar (music21 does this with ABC `M:none`)."""
    measures = list(part.getElementsByClass(stream.Measure))
    return any(frac(a.offset) + frac(a.highestTime) > frac(b.offset)
               for a, b in itertools.pairwise(measures))


def rebarred(part: stream.Stream) -> stream.Part:
    """A part barred afresh from its notes' onsets, in its first meter or else 4/4.

    An unmetered tune (ABC `M:none`) has bar lines with no length to check them against, and
    its bars can overlap; the notes' onsets in the whole part are right.
    """
    result = stream.Part()
    first_meter = first_of(part, meter.TimeSignature)
    result.insert(0, meter.TimeSignature(first_meter.ratioString if first_meter else "4/4"))
    for kind in (key.KeySignature, tempo.MetronomeMark, clef.Clef):
        mark = first_of(part, kind)
        if mark is not None:
            result.insert(0, mark)
    result.partName = getattr(part, "partName", None)
    for element in part.flatten().getElementsByClass((note.GeneralNote, harmony.ChordSymbol)):
        result.insert(element.offset, element)
    return result.makeNotation()


def first_of(part: stream.Stream, classes: type[M21Object]) -> M21Object | None:
    found = part.recurse().getElementsByClass(classes)
    return found.first() if found else None


def bar_texts(voice: Voice, writer: VoiceWriter) -> list[tuple[str, str]]:
    """(inline fields, music) of each bar of a voice; music is `Z` for a silent bar."""
    writer.untied = false_ties(voice.bars)
    texts = []
    for bar_ in voice.bars:
        fields, music = writer.bar_text(bar_)
        texts.append((fields, "Z" if bar_.silent else music))
    return texts


def chunk_line(bars: list[Bar], texts: list[tuple[str, str]], start: int, end: int) -> str:
    """Bars `start` to `end` (excluded) of a voice as one line, bar lines included; runs of
    silent bars between plain bar lines are one multi-bar rest (`Z3`)."""
    pieces: list[str] = []
    index = start
    while index < end:
        closing, opening = bar_line(bars[index - 1] if index else None, bars[index])
        if index == start:
            pieces.append(opening)
        else:
            pieces.append(joined_bar_line(closing, opening))
        fields, music = texts[index]
        run = 1
        if music == "Z":
            while index + run < end and texts[index + run] == ("", "Z") and \
                    bar_line(bars[index + run - 1], bars[index + run]) == ("|", ""):
                run += 1
            music = "Z" if run == 1 else f"Z{run}"
        pieces.append(fields + music)
        index += run
    closing, _ = bar_line(bars[end - 1], bars[end] if end < len(bars) else None)
    pieces.append(closing)
    return " ".join(piece for piece in pieces if piece)


def part_voices(part: stream.Stream, tempo_marks: dict[int, list],
                chord_symbols: bool) -> list[Voice]:
    """The ABC voices of one part, with the part's name and clef."""
    name = " ".join((getattr(part, "partName", None) or "").replace('"', "'").split())
    clef_name, octave = clef_text(part)
    return [Voice(bars, name, clef_name, octave)
            for bars in voice_bars(part, tempo_marks, chord_symbols)]


def write_abc(score: stream.Stream, *, reference: int = 1, title: str | None = None,
              unit: Fraction | None = None, bars_per_line: int = 4,
              chord_symbols: bool = True) -> str:
    """Write a music21 score (or part) as one ABC tune; see the module docstring.

    `chord_symbols=False` leaves chord symbols out (for models that never read any).
    """
    parts = score_parts(score)
    time_signature = first_of(parts[0], meter.TimeSignature)
    key_signature = first_of(parts[0], key.KeySignature)
    tempo_marks: dict[int, list] = {}
    for part in parts:
        for number, measure in enumerate(part.getElementsByClass(stream.Measure)):
            for mark in measure.getElementsByClass(tempo.MetronomeMark):
                if tempo_text(mark):
                    tempo_marks.setdefault(number, []).append(mark)
    first_tempo = next((m for m in tempo_marks.get(0, []) if frac(m.offset) == 0), None)
    unit = unit or unit_length(time_signature)
    if title is None and score.metadata is not None and score.metadata.title:
        title = score.metadata.title
    header = [f"X:{reference}"]
    if title:
        header.append(f"T:{' '.join(title.split())}")
    header += [f"M:{meter_text(time_signature)}",
               f"L:{unit.numerator}/{unit.denominator}"]
    if first_tempo is not None:
        header.append(f"Q:{tempo_text(first_tempo)}")

    voices = [voice for part in parts for voice in part_voices(part, tempo_marks, chord_symbols)]
    length = max(len(voice.bars) for voice in voices)
    for voice in voices:  # a part that ends early rests to the end
        voice.bars += [Bar() for _ in range(length - len(voice.bars))]
    if len(voices) > 1:
        header += [f"V:{n}" + (f' name="{v.name}"' if v.name else "") + f" clef={v.clef}"
                   for n, v in enumerate(voices, 1)]
    header.append(f"K:{key_text(key_signature)}")
    texts = [bar_texts(voice, VoiceWriter(unit, time_signature, key_signature, first_tempo,
                                          voice.octave))
             for voice in voices]
    body: list[str] = []
    for start in range(0, length, bars_per_line):
        end = min(length, start + bars_per_line)
        for n, (voice, voice_texts) in enumerate(zip(voices, texts, strict=True), 1):
            if len(voices) > 1:
                body.append(f"V:{n}")
            body.append(chunk_line(voice.bars, voice_texts, start, end))
    return "\n".join(header + body) + "\n"
