"""Scores in and out: ABC, MusicXML and MIDI through music21, and selections of bars.

music21 is the hub: every reader returns a `music21.stream.Score` with parts and bars, every
writer takes one. Errors a user can cause (a missing file, junk, a selection outside the
score) raise `SegueError` with a one-line explanation. music21 is imported only when a
score is read or written, so the checks before that (a file's type, its presence) are instant.
"""

from __future__ import annotations

import contextlib
import copy
import io
import os
import re
import sys
import threading
import warnings
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.abc.text import read_header, split_tunes
from engine.errors import ParameterError, SegueError
from engine.files import atomic_path, write_text_atomic

if TYPE_CHECKING:
    from music21 import meter, stream

FORMATS = {
    ".abc": "abc",
    ".musicxml": "musicxml", ".xml": "musicxml", ".mxl": "musicxml",
    ".mid": "midi", ".midi": "midi",
}
# The grid MIDI is quantized to: sixteenth notes and eighth-note triplets.
MIDI_GRID = (4, 3)
# Meters a MIDI file without a time signature is tested against, in quarter notes a bar.
CANDIDATE_METERS = {"4/4": 4.0, "3/4": 3.0, "6/8": 3.0, "2/4": 2.0}


_quiet_lock = threading.Lock()
_quiet_depth = 0
_quiet_saved: tuple = ()


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """Silence music21's warnings and prints while it reads or writes.

    Safe across threads (the server converts on several): the first caller in silences
    stdout and warnings, the last one out restores them.
    """
    global _quiet_depth, _quiet_saved
    with _quiet_lock:
        if _quiet_depth == 0:
            catcher = warnings.catch_warnings()
            catcher.__enter__()
            warnings.simplefilter("ignore")
            _quiet_saved = (sys.stdout, catcher)
            sys.stdout = io.StringIO()
        _quiet_depth += 1
    try:
        yield
    finally:
        with _quiet_lock:
            _quiet_depth -= 1
            if _quiet_depth == 0:
                sys.stdout, catcher = _quiet_saved
                catcher.__exit__(None, None, None)


def format_of(path: str | os.PathLike[str]) -> str:
    """'abc', 'musicxml' or 'midi', from a file's extension."""
    suffix = Path(path).suffix.lower()
    if suffix not in FORMATS:
        known = ", ".join(sorted(FORMATS))
        raise SegueError(f"{path}: unknown file type {suffix or '(none)'!r}; use one of {known}")
    return FORMATS[suffix]


def has_notes(score: stream.Stream) -> bool:
    return any(True for _ in score.recurse().notes)


def parse_abc(text: str, rests_only: bool = False) -> stream.Score:
    """One ABC tune (the first if the text has several) as a music21 Score; SegueError for a
    tune with no notes, unless `rests_only` (an answer may be silent in every voice).

    The one reader of ABC text for the CLI, the server and the corpus: abc2xml, then music21's
    MusicXML importer (`engine.abc.reader`; docs/reference/abc.md, "Reading ABC", says why).
    """
    from music21 import stream

    from engine.abc.reader import read_abc

    tunes = split_tunes(text)
    if not tunes:
        raise SegueError("no ABC tune found (a tune starts with an X: line and has a K: line)")
    tune = tunes[0]
    if not read_header(tune).key:
        raise SegueError("the ABC tune has no K: (key) line")
    with quiet():
        score = read_abc(tune)
    if not (has_notes(score) or rests_only):
        raise SegueError("the ABC tune has no notes")
    for part in score.parts:
        if not part.getElementsByClass(stream.Measure):
            part.makeMeasures(inPlace=True)
        mark_short_bars(part)
    return score


def mark_short_bars(part: stream.Part) -> None:
    """Record short bars as pickups (first bar) or with padding, as MusicXML does.

    A short bar left unmarked would be filled with a rest by music21's MusicXML writer, moving
    every later note. Bars are numbered as musicians count them: a pickup is bar 0, the first
    full bar is 1 (abc2xml numbers the first bar 1 even when it is a pickup).
    """
    from music21 import stream

    measures = list(part.getElementsByClass(stream.Measure))
    for index, measure in enumerate(measures):
        if measure.timeSignature is None and index == 0:
            continue
        missing = measure.barDuration.quarterLength - measure.duration.quarterLength
        if missing > 0:
            if index == 0:
                measure.paddingLeft = missing
            else:
                measure.paddingRight = missing
    first = 0 if measures[0].paddingLeft else 1
    if measures[0].number != first:
        shift = first - measures[0].number
        for measure in measures:
            measure.number += shift


def choose_tune(text: str, tune: str | None) -> str:
    """The tune of an ABC file whose `X:` is `tune`, or the first one."""
    tunes = split_tunes(text)
    if not tunes:
        raise SegueError("no ABC tune found (a tune starts with an X: line)")
    if tune is None:
        return tunes[0]
    for candidate in tunes:
        if read_header(candidate).reference == str(tune):
            return candidate
    numbers = ", ".join(read_header(t).reference for t in tunes[:20])
    more = ", ..." if len(tunes) > 20 else ""
    raise SegueError(f"no tune X:{tune}; the file has X: {numbers}{more}")


def read_score(path: str | os.PathLike[str], *, tune: str | None = None) -> stream.Score:
    """Read an ABC, MusicXML or MIDI file as a music21 Score (ABC: tune `tune` or the first)."""
    kind = format_of(path)
    file = Path(path)
    if not file.is_file():
        raise SegueError(f"{path}: no such file")
    if file.stat().st_size == 0:
        raise SegueError(f"{path}: the file is empty")
    if kind == "abc":
        text = file.read_bytes().decode("utf-8", errors="replace")
        if "\x00" in text:
            raise SegueError(f"{path}: not an ABC text file")
        try:
            return parse_abc(choose_tune(text, tune))
        except SegueError as error:
            raise SegueError(f"{path}: {error}") from None
    if kind == "midi":
        return read_midi(file)
    return read_musicxml(file)


def read_musicxml(path: Path) -> stream.Score:
    """A MusicXML file (.musicxml, .xml or compressed .mxl) as a music21 Score."""
    from music21 import converter

    from engine.abc.music21_mends import mend_music21

    mend_music21()
    try:
        with quiet():
            parsed = converter.parse(str(path), format="musicxml", forceSource=True)
    except Exception as error:
        raise SegueError(f"{path}: not a readable MusicXML file ({error})") from None
    return first_score(parsed, f"{path}: the MusicXML file")


def parse_musicxml(text: str) -> stream.Score:
    """A MusicXML document held in a string (never a path, as a server gets it) as a music21
    Score; a document that declares entities is refused."""
    from music21 import converter

    from engine.abc.music21_mends import mend_music21

    if "<!ENTITY" in text:
        raise SegueError("MusicXML with entity declarations is not accepted")
    mend_music21()
    try:
        with quiet():
            parsed = converter.parseData(text, format="musicxml")
    except Exception as error:  # music21 raises many kinds for broken XML
        raise SegueError(f"not a readable MusicXML document ({type(error).__name__}: "
                         f"{str(error)[:200]})") from None
    return first_score(parsed, "the MusicXML document")


def first_score(parsed: object, what: str) -> stream.Score:
    """The score music21 read from MusicXML (the first of an opus); SegueError when it has no
    notes (`what` names the document in the message)."""
    from music21 import stream

    if isinstance(parsed, stream.Opus):
        parsed = parsed.scores[0]
    if not isinstance(parsed, stream.Score) or not has_notes(parsed):
        raise SegueError(f"{what} has no notes")
    return parsed


def midi_declares(path: Path, meta_type: str) -> bool:
    """Whether a MIDI file carries a meta message of this type (e.g. 'time_signature')."""
    import mido

    try:
        midi = mido.MidiFile(str(path))
    except Exception as error:
        raise SegueError(f"{path}: not a readable MIDI file ({error})") from None
    return any(message.type == meta_type for track in midi.tracks for message in track)


def read_midi(path: Path) -> stream.Score:
    """A MIDI file as a Score quantized to sixteenths and triplet eighths.

    A file that declares no time signature gets the meter whose bar lines best match its
    strong onsets; one that declares no key gets the key music21's Krumhansl analysis finds.
    """
    from music21 import converter, key, meter, stream

    declares_meter = midi_declares(path, "time_signature")
    declares_key = midi_declares(path, "key_signature")
    try:
        with quiet():
            # a Score, typed Any: music21 types parse()'s result as Score | Part | Opus
            score: Any = converter.parse(str(path), format="midi", quantizePost=True,
                                         quarterLengthDivisors=MIDI_GRID)
    except Exception as error:
        raise SegueError(f"{path}: not a readable MIDI file ({error})") from None
    if not has_notes(score):
        raise SegueError(f"{path}: the MIDI file has no notes")
    if not declares_meter:
        score = rebar(score, meter.TimeSignature(estimate_meter(score)))
    if not declares_key:
        with quiet():
            estimated = score.analyze("key")
        assert isinstance(score, stream.Score)  # what music21 reads from a MIDI file
        for part in score.parts:
            first = part.getElementsByClass(stream.Measure).first()
            assert first is not None  # rebarred or barred by the reader
            for old in first.getElementsByClass(key.KeySignature):
                first.remove(old)
            first.insert(0, key.Key(estimated.tonic, estimated.mode))
    return score


def estimate_meter(score: stream.Score) -> str:
    """The candidate meter under which most of the music's weight falls on downbeats."""
    from engine.abc.writer import frac

    onsets: dict[Fraction, float] = {}
    for element in score.flatten().notes:
        onset = frac(element.offset)
        onsets[onset] = onsets.get(onset, 0.0) + float(element.duration.quarterLength) + 1.0
    best, best_score = "4/4", -1.0
    for name, bar_length in CANDIDATE_METERS.items():
        beat = 1.5 if name == "6/8" else 1.0
        bar = frac(bar_length)
        downbeat = sum(w for t, w in onsets.items() if t % bar == 0)
        on_beat = sum(w for t, w in onsets.items() if t % frac(beat) == 0)
        # favour meters whose beats carry the onsets, then whose downbeats carry the weight;
        # a short bar is penalized slightly so that 4/4 wins over 2/4 when both fit
        score_ = on_beat + 2 * downbeat - 0.05 * sum(onsets.values()) * (4 / bar_length)
        if score_ > best_score:
            best, best_score = name, score_
    return best


def rebar(score: stream.Score, time_signature: meter.TimeSignature) -> stream.Score:
    """The score's notes barred again under another time signature."""
    from music21 import stream

    result = stream.Score()
    for part in score.parts:
        new_part = stream.Part()
        new_part.insert(0, copy.deepcopy(time_signature))
        for element in part.stripTies(matchByPitch=True).flatten().notesAndRests:
            new_part.insert(element.offset, element)  # whole notes, barred anew
        result.insert(0, new_part.makeNotation())
    return result


def parse_measures(text: str) -> tuple[int, int]:
    """'3-6' -> (3, 6); '5' -> (5, 5)."""
    match = re.fullmatch(r"\s*(\d+)\s*(?:-\s*(\d+))?\s*", text)
    if not match:
        raise ParameterError("measures", f"{text!r}: write a bar number or a range such as 1-8")
    first = int(match.group(1))
    last = int(match.group(2) or first)
    if last < first:
        raise ParameterError("measures", f"{text!r}: the range runs backwards")
    return first, last


def select(score: stream.Score, *, part: str | None = None,
           measures: tuple[int, int] | None = None) -> stream.Score:
    """Bars `measures` (numbered as in the score, both included) of part `part`.

    `part` is a number counted from 1 or a part's name; None keeps every part.
    """
    from music21 import stream

    parts = list(score.parts)
    if part is not None:
        chosen = None
        if str(part).isdigit() and 1 <= int(part) <= len(parts):
            chosen = parts[int(part) - 1]
        else:
            chosen = next((p for p in parts if (p.partName or "").lower() == str(part).lower()),
                          None)
        if chosen is None:
            names = ", ".join(f"{i + 1} ({p.partName or 'unnamed'})" for i, p in enumerate(parts))
            raise ParameterError("part", f"{part}: the score has parts {names}")
        selected = stream.Score([chosen])
        selected.metadata = score.metadata
        score = selected
    if measures is None:
        return score
    numbers = [m.number for m in score.parts[0].getElementsByClass(stream.Measure)]
    if not numbers:
        raise SegueError("the score has no numbered bars to select from")
    first, last = measures
    if first < min(numbers) or last > max(numbers):
        raise ParameterError("measures", f"{first}-{last} is outside the score, whose bars are "
                         f"numbered {min(numbers)}-{max(numbers)}")
    with quiet():
        excerpt = score.measures(first, last)
    if not has_notes(excerpt) and not any(True for _ in excerpt.recurse().notesAndRests):
        raise ParameterError("measures", f"{first}-{last}: the selection is empty")
    return excerpt


def write_score(score: stream.Score, path: str | os.PathLike[str]) -> None:
    """Write a Score to `path` in the format its extension names, whole or not at all."""
    from engine.abc.writer import write_abc

    kind = format_of(path)
    if kind == "abc":
        write_text_atomic(path, write_abc(score))
        return
    with atomic_path(path) as tmp, quiet():
        if kind == "midi":
            score.write("midi", fp=str(tmp))
        elif Path(path).suffix.lower() == ".mxl":
            score.write("mxl", fp=str(tmp))
        else:
            score.write("musicxml", fp=str(tmp))


def note_events(score: stream.Score) -> list[list[tuple[Fraction, Fraction, int]]]:
    """For each part, its sorted (onset, duration, MIDI pitch) triples, in quarter notes.

    Tied notes count as one. The measure of a faithful conversion: two scores that agree
    here sound the same.
    """
    from engine.abc.chord_symbols import is_chord_symbol
    from engine.abc.writer import frac

    events = []
    for part in score.parts:
        triples = []
        with quiet():
            merged = part.stripTies(matchByPitch=True)
        for element in merged.flatten().notes:
            if is_chord_symbol(element):
                continue
            onset, length = frac(element.offset), frac(element.duration.quarterLength)
            triples += [(onset, length, p.midi) for p in element.pitches]
        events.append(sorted(triples))
    return events


def chord_events(score: stream.Score) -> list[list[tuple[Fraction, str]]]:
    """For each part, its chord symbols as (onset in quarter notes, normalized text), sorted.

    With `note_events`, the measure of a faithful conversion: spelling is compared as Segue
    writes it (`engine.abc.chord_symbols`).
    """
    from music21 import harmony

    from engine.abc.chord_symbols import symbol_text
    from engine.abc.writer import frac

    events = []
    for part in score.parts:
        found = []
        for symbol in part.recurse().getElementsByClass(harmony.ChordSymbol):
            text = symbol_text(symbol)
            if text is not None:
                found.append((frac(symbol.getOffsetInHierarchy(part)), text))
        events.append(sorted(found))
    return events
