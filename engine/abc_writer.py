"""music21 stream -> ABC text. music21 reads ABC but cannot write it; this module does.

What it writes is standard ABC 2.1 and is also the language Segue's models speak:

* the header is `X:`, `T:` (if the score has a title), `M:`, `L:`, `Q:` (if known), `K:`;
  the unit note length `L:` follows the ABC rule (1/16 below a meter of 3/4, else 1/8);
* every accidental that differs from what a reader would assume is written out, whichever of
  ABC's accidental rules (none, same letter, same letter and octave) the reader follows, so
  music21, abc2midi and abcm2ps all read the same pitches;
* durations are written explicitly (`A3/2`, never broken rhythm `A>B`); tuplets as `(3` or
  `(p:q:r`; chords as `[CEG]2`; ties as `-`; grace notes as `{g}`; gaps as invisible rests `x`;
* beats are separated by spaces, bars by `|` (with `|:`, `:|`, `[1`, `[2`, `||`, `|]` where
  the score has repeats, endings and double bars), four bars to a line;
* several parts, or several voices in one part, become ABC voices `V:1`, `V:2`, ... whose lines
  alternate, four bars each (music21 cannot read that layout: `engine.music.parse_abc` can);
* meter, key and tempo changes inside the tune become inline fields `[M:3/4]`, `[K:D]`, `[Q:..]`.

Lyrics, chord symbols, dynamics, articulations, slurs and layout are not written.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from fractions import Fraction

from music21 import bar, chord, duration, key, meter, note, spanner, stream, tempo

from engine.errors import SegueError

MODE_SUFFIX = {
    "major": "", "ionian": "", "minor": "m", "aeolian": "m", "dorian": "Dor",
    "phrygian": "Phr", "lydian": "Lyd", "mixolydian": "Mix", "locrian": "Loc",
}
MISREAD_KEYS = {"FbLyd"}  # music21 reads these with the wrong signature
ACCIDENTAL_TEXT = {-2: "__", -1: "_", 0: "=", 1: "^", 2: "^^"}


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
    """The value of an `M:` field."""
    if time_signature is None:
        return "none"
    if time_signature.symbol in ("common", "cut"):
        return "C" if time_signature.symbol == "common" else "C|"
    return time_signature.ratioString


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


def length_text(ratio: Fraction) -> str:
    """A length in unit notes as ABC writes it after a note: '', '2', '/', '/4', '3/2'."""
    if ratio == 1:
        return ""
    if ratio.denominator == 1:
        return str(ratio.numerator)
    if ratio.numerator == 1:
        return "/" if ratio.denominator == 2 else f"/{ratio.denominator}"
    return f"{ratio.numerator}/{ratio.denominator}"


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
    """One bar of one ABC voice: its events and the bar lines around it."""

    events: list = field(default_factory=list)  # notes, rests, chords, key/meter/tempo marks
    start_repeat: bool = False
    end_repeat: bool = False
    right_style: str = "regular"  # regular, light-light (||), final (|])
    ending: str | None = None  # "1", "2", "1,2" when a first/second ending starts here
    offset_shift: Fraction = Fraction(0)  # where the bar's first event sits (pickups: > 0)


class AccidentalState:
    """What a reader assumes for each note in a bar, under every ABC accidental rule."""

    def __init__(self, key_signature: key.KeySignature | None) -> None:
        self.set_key(key_signature)

    def set_key(self, key_signature: key.KeySignature | None) -> None:
        self.key_alter: dict[str, int] = {}
        if key_signature is not None:
            for step in "CDEFGAB":
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


def pitch_text(p, accidentals: AccidentalState) -> str:
    """One pitch in ABC: accidental, letter, octave marks (C4 = `C`, C5 = `c`, C3 = `C,`)."""
    octave = p.octave if p.octave is not None else p.implicitOctave
    alter = max(-2, min(2, round(p.alter)))
    text = accidentals.marking(p.step, octave, alter)
    if octave >= 5:
        return text + p.step.lower() + "'" * (octave - 5)
    return text + p.step + "," * (4 - octave)


def tied_on(n: note.NotRest, untied: set[int]) -> bool:
    return n.tie is not None and n.tie.type in ("start", "continue") and id(n) not in untied


class VoiceWriter:
    """Writes the bars of one voice, keeping the accidental state across the bar."""

    def __init__(self, unit: Fraction, time_signature, key_signature,
                 mark: tempo.MetronomeMark | None) -> None:
        self.unit_ql = unit * 4  # unit length in quarter notes
        self.time_signature = time_signature
        self.key_signature = key_signature
        self.tempo = tempo_text(mark) if mark is not None else None
        self.untied: set[int] = set()
        self.accidentals = AccidentalState(key_signature)

    def length(self, quarter_length: Fraction) -> str:
        return length_text(quarter_length / self.unit_ql)

    def bar_text(self, bar_: Bar, first: bool) -> tuple[list[str], str]:
        """(field lines to write before the bar, the bar's music).

        A meter, key or tempo change at the start of a bar becomes field lines (`M:3/4`,
        `K:D`) on lines of their own, always closed by `K:`: music21 ignores inline `[K:]`
        fields and misreads a lone `M:` line. A change inside a bar stays inline.
        """
        self.accidentals.new_bar()
        pieces: list[str] = []
        changes: list[str] = []
        position = bar_.offset_shift
        sounding = [e for e in bar_.events if isinstance(e, note.GeneralNote)]
        tuplet_heads = self.tuplet_groups(sounding)
        graces: list[note.NotRest] = []
        for element in bar_.events:
            if isinstance(element, (meter.TimeSignature, key.KeySignature, tempo.MetronomeMark)):
                change = self.field_change(element)
                if change and not first and frac(element.offset) == 0:
                    changes.append(change)
                elif change and not first:
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
            if graces:  # before a tuplet head: music21 would count them in the tuplet
                text = "{" + "".join(self.grace_text(g) for g in graces) + "}"
                graces = []
            text += tuplet_heads.get(id(element), "")
            if text and pieces and not pieces[-1].endswith(" "):
                text = " " + text
            text += self.event_text(element)
            position += frac(element.duration.quarterLength)
            beat = frac(self.time_signature.beatDuration.quarterLength) \
                if self.time_signature else Fraction(1)
            if position % beat == 0 or frac(element.duration.quarterLength) >= beat:
                text += " "
            pieces.append(text)
        if graces:  # grace notes at the end of a bar ornament nothing: written before the bar
            pieces.append("{" + "".join(self.grace_text(g) for g in graces) + "}")
        if changes:
            changes = [c for c in changes if not c.startswith("K:")]
            changes.append(f"K:{key_text(self.key_signature)}")
        return changes, "".join(pieces).strip()

    def field_change(self, element) -> str | None:
        """`M:3/4`, `K:D` or `Q:1/4=90` if `element` changes what is in force, else None."""
        if isinstance(element, meter.TimeSignature):
            if self.time_signature is not None and element.ratioString == \
                    self.time_signature.ratioString:
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
        if self.tempo is not None and tempo_text(element) == self.tempo:
            return None
        self.tempo = tempo_text(element)
        return f"Q:{self.tempo}" if self.tempo else None

    def event_text(self, element: note.GeneralNote) -> str:
        notated = frac(element.duration.quarterLength) / tuplet_ratio(element)
        length = self.length(notated)
        if isinstance(element, chord.Chord):
            all_tied = tied_on(element, self.untied) or all(
                tied_on(n, self.untied) for n in element.notes)
            inner = "".join(
                pitch_text(n.pitch, self.accidentals)
                + ("-" if tied_on(n, self.untied) and not all_tied else "")
                for n in element.notes
            )
            return f"[{inner}]{length}" + ("-" if all_tied else "")
        if isinstance(element, note.Note):
            return pitch_text(element.pitch, self.accidentals) + length + \
                ("-" if tied_on(element, self.untied) else "")
        return "z" + length  # rests, and unpitched notes, which ABC cannot write

    def grace_text(self, grace: note.NotRest) -> str:
        notated = frac(duration.Duration(grace.duration.type, dots=grace.duration.dots)
                       .quarterLength) if grace.duration.type != "zero" else self.unit_ql
        pitches = grace.pitches
        if not pitches:
            return ""
        return pitch_text(pitches[0], self.accidentals) + self.length(notated)

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


def voice_bars(part: stream.Stream) -> list[list[Bar]]:
    """The bars of a part, as one list per voice (a part with two voices gives two lists)."""
    measures = list(part.getElementsByClass(stream.Measure))
    if not measures:
        raise SegueError("the part has no bars to write")
    brackets = {}
    for bracket in part.spanners.getElementsByClass(spanner.RepeatBracket):
        spanned = bracket.getSpannedElements()
        if spanned:
            brackets[id(spanned[0])] = str(bracket.number)
    voice_count = max(1, *(len(m.voices) for m in measures))
    voices: list[list[Bar]] = [[] for _ in range(voice_count)]
    for measure in measures:
        marks = [e for e in measure.getElementsByClass(
            (meter.TimeSignature, key.KeySignature, tempo.MetronomeMark))]
        left, right = measure.leftBarline, measure.rightBarline
        shift = frac(measure.paddingLeft) if measure.paddingLeft else Fraction(0)
        contents = list(measure.voices) if measure.voices else [measure]
        for index, voice in enumerate(voices):
            bar_ = Bar(
                start_repeat=isinstance(left, bar.Repeat) and left.direction == "start",
                end_repeat=isinstance(right, bar.Repeat) and right.direction == "end",
                right_style=right.type if isinstance(right, bar.Barline) else "regular",
                ending=brackets.get(id(measure)),
                offset_shift=shift,
            )
            events = list(contents[index].notesAndRests) if index < len(contents) else []
            if index >= len(contents):  # this voice is silent in this bar
                events = [note.Rest(quarterLength=measure.barDuration.quarterLength)]
                events[0].offset = 0
            bar_.events = sorted(
                marks + [e for e in events if not _is_chord_symbol(e)],
                key=lambda e: (frac(e.offset), isinstance(e, note.GeneralNote)),
            )
            voice.append(bar_)
    for voice in voices:
        balance_repeats(voice)
    return voices


def balance_repeats(bars: list[Bar]) -> None:
    """Write the repeat signs that are implied but missing (abc2midi wants every one): the `|:`
    that a first ending implies after an earlier `:|`, and the `:|` that closes a section
    opened by `|:` at the end of the tune."""
    section_start, opened, explicit = 0, True, False
    for index, bar_ in enumerate(bars):
        if bar_.start_repeat:
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
        if isinstance(current, note.Rest):
            continue
        following_pitches = set() if following is None or isinstance(following, note.Rest) \
            else {p.midi for p in following.pitches}
        members = current.notes if isinstance(current, chord.Chord) else [current]
        for member in members:
            if member.pitch.midi not in following_pitches:
                untied.add(id(member))
        if not following_pitches & {p.midi for p in current.pitches}:
            untied.add(id(current))
    return untied


def _is_chord_symbol(element) -> bool:
    return type(element).__name__ in ("ChordSymbol", "NoChord", "RomanNumeral")


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
    """The parts of a score, each with bars (a stream without bars is barred first)."""
    parts = list(score.parts) if isinstance(score, stream.Score) else [score]
    if not parts:
        raise SegueError("the score has no parts")
    barred = []
    for part in parts:
        if not part.recurse().getElementsByClass(meter.TimeSignature) or bars_overlap(part):
            part = rebarred(part)
        elif not part.getElementsByClass(stream.Measure):
            part = part.makeNotation()
        barred.append(part)
    return barred


def bars_overlap(part: stream.Stream) -> bool:
    """Whether a bar's notes run into the next bar (music21 does this with ABC `M:none`)."""
    measures = list(part.getElementsByClass(stream.Measure))
    return any(frac(a.offset) + frac(a.highestTime) > frac(b.offset)
               for a, b in itertools.pairwise(measures))


def rebarred(part: stream.Stream) -> stream.Part:
    """A part barred afresh from its notes' onsets, in its first meter or else 4/4.

    music21 bars an unmetered tune (ABC `M:none`) at its bar lines with no length to check
    them against, and its bars can overlap; the notes' onsets in the whole part are right.
    """
    result = stream.Part()
    first_meter = first_of(part, meter.TimeSignature)
    result.insert(0, meter.TimeSignature(first_meter.ratioString if first_meter else "4/4"))
    for kind in (key.KeySignature, tempo.MetronomeMark):
        mark = first_of(part, kind)
        if mark is not None:
            result.insert(0, mark)
    for element in part.flatten().notesAndRests:
        result.insert(element.offset, element)
    return result.makeNotation()


def first_of(part: stream.Stream, classes):
    found = part.recurse().getElementsByClass(classes)
    return found.first() if found else None


def voice_text_lines(bars: list[Bar], writer: VoiceWriter, bars_per_line: int) -> list[str]:
    """The lines of one voice, `bars_per_line` bars each, bar lines included.

    A bar that changes meter, key or tempo starts a new line, after its field lines.
    """
    writer.untied = false_ties(bars)
    lines: list[str] = []
    current = ""
    in_line = 0
    for index, bar_ in enumerate(bars):
        changes, text = writer.bar_text(bar_, first=(index == 0))
        closing, opening = bar_line(bars[index - 1] if index else None, bar_)
        if index and (in_line == bars_per_line or changes):
            lines.append(f"{current} {closing}".strip())
            lines += changes
            current, in_line = opening, 0
        else:
            joined = joined_bar_line(closing, opening)
            current += f" {joined}" if joined else ""
        current += " " + text
        in_line += 1
    closing, _ = bar_line(bars[-1], None)
    lines.append(f"{current} {closing}".strip())
    return lines


def write_abc(score: stream.Stream, *, reference: int = 1, title: str | None = None,
              unit: Fraction | None = None, bars_per_line: int = 4) -> str:
    """Write a music21 score (or part) as one ABC tune; see the module docstring."""
    parts = score_parts(score)
    time_signature = first_of(parts[0], meter.TimeSignature)
    key_signature = first_of(parts[0], key.KeySignature)
    mark = first_of(parts[0], tempo.MetronomeMark)
    unit = unit or unit_length(time_signature)
    if title is None and score.metadata is not None and score.metadata.title:
        title = score.metadata.title
    header = [f"X:{reference}"]
    if title:
        header.append(f"T:{' '.join(title.split())}")
    header += [f"M:{meter_text(time_signature)}",
               f"L:{unit.numerator}/{unit.denominator}"]
    if mark is not None and tempo_text(mark):
        header.append(f"Q:{tempo_text(mark)}")
    header.append(f"K:{key_text(key_signature)}")

    voice_lines = [
        voice_text_lines(bars, VoiceWriter(unit, time_signature, key_signature, mark),
                         bars_per_line)
        for part in parts for bars in voice_bars(part)
    ]
    body: list[str] = []
    if len(voice_lines) == 1:
        body = voice_lines[0]
    else:
        for row in range(max(len(lines) for lines in voice_lines)):
            for n, lines in enumerate(voice_lines):
                if row < len(lines):
                    body += [f"V:{n + 1}", lines[row]]
    return "\n".join(header + body) + "\n"
