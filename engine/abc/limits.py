"""What one prompt may hold, checked on its text before any reader runs.

music21's readers and the ABC writer can take minutes and gigabytes on small hostile input
(`C1000000|`, `M:1000000/1`, thousands of `1/1023` events), so music is measured as text
first: sizes over a limit raise `TooLarge` (HTTP 413), values no reader or grammar should
meet (a meter of 5/7, a unit length of -1/8, a tempo of 0) raise SegueError (HTTP 422, exit
status 1 in the CLI). The server checks every request here before parsing it, and the CLI
checks ABC from standard input (files are the user's own; the corpus is not held to these
limits, so the training text does not depend on them).
`engine.abc.recent` then cuts the music to the bars the model can read (CONTEXT_*), so only
those are parsed.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from fractions import Fraction
from typing import TYPE_CHECKING

from engine.errors import SegueError

if TYPE_CHECKING:
    from engine.abc.prompt import Prompt

# Sizes of what a request may send.
MAX_MUSIC_CHARS = 1_000_000  # characters of an ABC tune or a MusicXML document
MAX_TUNE_BARS = 5_000  # bars of one voice
MAX_BAR_CHARS = 1_000  # characters of one bar of one ABC voice
MAX_BAR_NOTES = 256  # notes and rests in one bar of one voice (free rhythm has long bars)
MAX_CHORD_NOTES = 16  # notes sounding at once in one voice
MAX_PARTS = 16  # voices of ABC, parts of MusicXML, (staff, voice) pairs of events
MAX_EVENTS = 20_000  # events of an events document
MAX_STAVES = 16  # staves of an events document
MAX_CHORDS = 5_000  # chord symbols of an events document
MAX_SPAN = 4_096  # whole notes from the start of an events document to its last end
MAX_NUMBER = 64  # the largest number in ABC music: note lengths, rests, tuplets, endings
MAX_SLASHES = 4  # `C////` (a sixteenth of the unit) and no shorter
MAX_TEMPO = 1_000  # beats per minute
MAX_DIVISIONS = 10_080  # MusicXML divisions of a quarter note (what notation programs use)
# bars the model writes for one request: bars x voices x variations (x drafts, which are
# fewer where they would pass it: engine.models.continuation)
MAX_WORK_BARS = 256
# Meters and unit lengths Segue reads: beats add up to at most 32, of these note values.
MAX_BEATS = 32
NOTE_VALUES = frozenset({1, 2, 4, 8, 16, 32, 64})
METER_VALUES = frozenset({1, 2, 4, 8, 16, 32})
# The most recent music a prompt keeps, far more than any model's context (a 256-token model
# reads about 190 characters): engine.abc.recent cuts every prompt to this before it is parsed.
CONTEXT_BARS = 32
CONTEXT_CHARS = 4_000  # of ABC, for all voices together
CONTEXT_NOTES = 512  # of events and MusicXML, for all parts together

FIELD_LINE = re.compile(r"^([A-Za-z]):(.*)$")
INLINE_FIELD = re.compile(r"\[([A-Za-z]):([^\]\n]*)\]")
METER = re.compile(r"\(?(\d{1,3}(?:\+\d{1,3})*)\)?/(\d{1,3})")
BAR_LINE = re.compile(r":*\[?\|[|\]:]*")
NUMBER = re.compile(r"\d+")


class TooLarge(SegueError):
    """The music is larger than a request may send."""


def check_size(count: int, limit: int, what: str, advice: str = "") -> None:
    """TooLarge unless count <= limit: '12,000 events; at most 5,000 ...'."""
    if count > limit:
        raise TooLarge(f"{what}: {count:,}; at most {limit:,}" + (f" ({advice})" if advice
                                                                  else ""))


def check_meter(value: str) -> None:
    """An `M:` value Segue reads: C, C|, none, N/D or (N+N+...)/D with D a note value."""
    text = value.strip()
    if text in ("", "C", "C|", "none"):
        return
    match = METER.fullmatch(text.replace(" ", ""))
    if match is None:
        raise SegueError(f"M:{text[:40]} is not a meter Segue reads; write it like M:6/8")
    beats = sum(int(part) for part in match.group(1).split("+"))
    if not 0 < beats <= MAX_BEATS or int(match.group(2)) not in METER_VALUES:
        raise SegueError(f"M:{text} is not a meter Segue can write: at most {MAX_BEATS} beats "
                         "of a whole, half, quarter, eighth, 16th or 32nd note")


def check_unit(value: str) -> None:
    """An `L:` value Segue reads: 1/1, 1/2, ... 1/64."""
    text = value.strip().replace(" ", "")
    numerator, _, denominator = text.partition("/")
    if numerator != "1" or (denominator and (not denominator.isascii() or
                                             not denominator.isdigit() or
                                             int(denominator) not in NOTE_VALUES)):
        raise SegueError(f"L:{value.strip()[:40]} is not a unit note length Segue reads; "
                         "write it like L:1/8 (1/1 to 1/64)")


def check_tempo(value: str) -> None:
    """A `Q:` value with beats per minute from 1 to MAX_TEMPO and plain note values."""
    text = re.sub(r'"[^"]*"', "", value).strip()
    if not text:
        return
    beats, equals, speed = text.rpartition("=")
    speed = speed.strip() if equals else text
    if not (speed.isascii() and speed.isdigit() and 0 < int(speed) <= MAX_TEMPO):
        raise SegueError(f"Q:{value.strip()[:40]}: the tempo must be 1 to {MAX_TEMPO} beats "
                         "per minute, written like Q:1/4=120")
    for beat in beats.split():
        numerator, _, denominator = beat.partition("/")
        if not (numerator.isdigit() and denominator.isdigit() and
                0 < int(numerator) <= MAX_NUMBER and int(denominator) in NOTE_VALUES):
            raise SegueError(f"Q:{value.strip()[:40]}: the beat must be a note value such "
                             "as 1/4 or 3/8")


FIELD_CHECKS = {"M": check_meter, "L": check_unit, "Q": check_tempo}


def check_field(name: str, value: str) -> None:
    """Check an M:, L: or Q: field (other fields are the readers' to judge)."""
    if name in FIELD_CHECKS:
        FIELD_CHECKS[name](value)


def strip_comment(line: str) -> str:
    """A line without its `%` comment (an escaped `\\%` stays)."""
    match = re.search(r"(?<!\\)%", line)
    return line[: match.start()] if match else line


def music_only(line: str) -> str:
    """A music line with strings, decorations and inline fields blanked (same length), so
    that what is left is notes, rests, lengths and bar lines."""
    line = re.sub(r'"[^"\n]*"|![^!\n]*!|\+[^+\n]*\+', lambda m: " " * len(m.group(0)), line)
    return INLINE_FIELD.sub(lambda m: " " * len(m.group(0)), line)


def voice_lines(body: str) -> Iterator[tuple[str, str, str]]:
    """(voice, kind, text) for each line of a tune (or its body): kind "field" (text is
    "M:3/4"), or "music" (comment stripped); comments, directives and lyrics are left out."""
    voice = "1"
    for raw in body.split("\n"):
        if raw.startswith("%"):
            continue
        line = strip_comment(raw).rstrip()
        field = FIELD_LINE.match(line)
        if field is not None and not line.startswith("|"):
            if field.group(1) == "V":
                voice = field.group(2).split()[0] if field.group(2).split() else "1"
            if field.group(1) not in "wW":
                yield voice, "field", line
            continue
        inline_voice = re.match(r"^\[V:\s*([^\]\s]+)[^\]]*\]", line)
        if inline_voice:
            voice = inline_voice.group(1)
        if line.strip():
            yield voice, "music", line


def check_abc(text: str) -> None:
    """Check an ABC tune's text (its first tune, if it holds several) against the limits.

    TooLarge for sizes (characters, bars, characters or notes of a bar, voices, chords);
    SegueError for meters, unit lengths, tempi and note lengths Segue cannot read.
    """
    from engine.abc.text import split_tunes

    check_size(len(text), MAX_MUSIC_CHARS, "characters of ABC")
    tunes = split_tunes(text)
    if not tunes:
        return  # the reader says what is missing
    bars: dict[str, int] = {}
    bar_chars: dict[str, int] = {}
    bar_notes: dict[str, int] = {}
    for voice, kind, line in voice_lines(tunes[0]):  # a head line that is no field is music
        if kind == "field" and line[0] not in FIELD_CHECKS:
            continue
        bars.setdefault(voice, 0)
        check_size(len(bars), MAX_PARTS, "voices", "continue fewer voices at once")
        if kind == "field":
            check_field(line[0], line[2:])
            continue
        for name, value in INLINE_FIELD.findall(line):
            check_field(name, value)
        music = music_only(line)
        check_numbers(music, line)
        for chord in re.findall(r"\[([^\]|]*)\]", music):
            check_size(len(re.findall(r"[A-Ga-g]", chord)), MAX_CHORD_NOTES,
                       "notes in one ABC chord")
        pieces = BAR_LINE.split(music)
        for index, piece in enumerate(pieces):
            if index:  # a bar line came before this piece
                bars[voice] += 1
                bar_chars[voice] = bar_notes[voice] = 0
            bar_chars[voice] = bar_chars.get(voice, 0) + len(piece) + 1
            bar_notes[voice] = bar_notes.get(voice, 0) + len(re.findall(r"[A-Ga-gzxZX]",
                                                                         piece))
            check_size(bar_chars[voice], MAX_BAR_CHARS, f"characters in bar {bars[voice] + 1} "
                       f"of voice {voice}", "a bar line | ends each bar")
            check_size(bar_notes[voice], MAX_BAR_NOTES, f"notes in bar {bars[voice] + 1} of "
                       f"voice {voice}")
        check_size(bars[voice], MAX_TUNE_BARS, f"bars in voice {voice}",
                   "the model reads the last few only")


def check_numbers(music: str, line: str = "") -> None:
    """Note lengths and other numbers of a music line (strings blanked) within limits, and
    no number of 5 digits in the line even in strings (chord symbols are read as chords)."""
    for run in NUMBER.findall(music) + re.findall(r"\d{5,}", line):
        if len(run) > 3 or int(run) > MAX_NUMBER:
            raise SegueError(f"the number {run[:12]}{'...' if len(run) > 12 else ''} in the "
                             f"music is too large: note lengths are at most {MAX_NUMBER} units")
    if "/" * (MAX_SLASHES + 1) in music:
        raise SegueError(f"a note length of more than {MAX_SLASHES} slashes is too short "
                         "to read")


def check_musicxml(text: str, *, part_chosen: bool = False) -> None:
    """Check a MusicXML document's text: size, no entities, parts, bars, meters, divisions.

    A document of more than MAX_PARTS parts is accepted when the request chooses one part.
    """
    check_size(len(text), MAX_MUSIC_CHARS, "characters of MusicXML")
    if "<!ENTITY" in text:
        raise SegueError("MusicXML with entity declarations is not accepted")
    parts = len(re.findall(r"<score-part[\s>]", text))
    if not part_chosen:
        check_size(parts, MAX_PARTS, "parts", "choose one with \"part\"")
    measures = len(re.findall(r"<measure[\s>]", text))
    check_size(measures, MAX_TUNE_BARS * max(1, min(parts, MAX_PARTS)), "bars (all parts)")
    for beats, beat_type in re.findall(
            r"<beats>\s*([^<]{0,40}?)\s*</beats>\s*<beat-type>\s*([^<]{0,40}?)\s*</beat-type>",
            text):
        check_meter(f"{beats}/{beat_type}")
    for value in re.findall(r"<divisions>\s*([^<]{0,40}?)\s*</divisions>", text):
        if not (value.isascii() and value.isdigit() and 0 < int(value) <= MAX_DIVISIONS):
            raise SegueError(f"<divisions>{value}</divisions>: divisions of a quarter note "
                             f"must be 1 to {MAX_DIVISIONS}")


def check_events(events: object) -> None:
    """Check an events document's sizes: staves, events, chord symbols, (staff, voice)
    pairs, notes of a chord.

    Its values (fractions, pitches, meter) are checked by engine.abc.recent and engine.abc.events.
    """
    if not isinstance(events, dict) or not isinstance(events.get("staves"), list):
        return  # engine.abc.events says what is wrong
    staves = events["staves"]
    check_size(len(staves), MAX_STAVES, "staves")
    check_size(sum(len(s) for s in staves if isinstance(s, list)), MAX_EVENTS, "events",
               "the model reads the last few bars only")
    chords = events.get("chords")
    if isinstance(chords, list):
        check_size(len(chords), MAX_CHORDS, "chord symbols")
    voices = set()
    for index, staff in enumerate(staves):
        for event in staff if isinstance(staff, list) else ():
            if not isinstance(event, dict):
                continue
            voice = event.get("voice", 0)
            voices.add((index, voice if isinstance(voice, int) else 0))
            pitches = event.get("pitches")
            if isinstance(pitches, list):
                check_size(len(pitches), MAX_CHORD_NOTES, "pitches in one event")
    check_size(len(voices), MAX_PARTS, "voices (staves x voices)",
               "continue fewer voices at once")


def check_fraction(value: Fraction, what: str) -> None:
    """An onset or duration (whole notes) on a grid music notation uses: a note value down
    to 1/128, within tuplets of 3, 5, 7 or 9 (and their products)."""
    denominator = value.denominator
    twos = 0
    while denominator % 2 == 0:
        denominator //= 2
        twos += 1
    odd = denominator
    for prime in (3, 5, 7):
        while odd % prime == 0:
            odd //= prime
    if odd != 1 or twos > 7 or denominator > 63:
        raise SegueError(f"{what} {value} is not a note length music notation writes "
                         "(note values down to 1/128, tuplets of 3, 5, 7 or 9)")


def check_fillable(meter: str, unit: str) -> Fraction:
    """The bar length in unit notes of a meter the grammar can fill; SegueError otherwise."""
    from engine.abc.bars import bar_units, grid_for

    check_meter(meter)
    check_unit(unit)
    bar = bar_units(meter, unit)
    if bar <= 0 or bar % grid_for(unit):
        raise SegueError(f"a bar of M:{meter} cannot be written in notes of L:{unit}")
    return bar


def check_prompt(prompt: Prompt) -> None:
    """SegueError for a prompt the grammar cannot continue: its meter cannot be filled, or its
    unfinished last bar stops where no note the grammar writes can complete it (inside a
    tuplet, or after a note shorter than a 32nd)."""
    from engine.abc.bars import grid_for, ticks_for

    bar = check_fillable(prompt.meter, prompt.unit)
    if prompt.time_in_bar and not ticks_for(grid_for(prompt.unit)).fills(bar, prompt.time_in_bar):
        beats = prompt.time_in_bar * Fraction(prompt.unit) * 4
        raise SegueError(f"the music stops {beats} quarter notes into its last bar, where no "
                         "note can complete the bar: end it at a bar line or after a whole "
                         "tuplet")


def check_work(bars: int, voices: int, variations: int) -> None:
    """TooLarge when a request asks the model for more than MAX_WORK_BARS bars in all."""
    check_size(bars * voices * variations, MAX_WORK_BARS, f"bars to write ({bars} bars x "
               f"{voices} voices x {variations} variations)", "ask for fewer")
