"""Note events, as hosts see them, to music21 scores and back.

An *events* document is what the MuseScore plug-in reads with its cursor and what the MIDI
bridge captures: a meter, a key, and per staff a list of events

    {"onset": "3/8", "duration": "1/8", "pitches": [60, 64], "tie": false, "voice": 0}

with onsets and durations as exact fractions of a whole note (MuseScore's own count), onsets
from the start of the first bar, rests as empty `pitches`, `tie` true when the event is tied
to the next one of the same voice. Answers add `"tpcs"`, MuseScore's tonal pitch classes
(C = 14, one step per fifth: G = 15, F = 13), so the host spells each note as the engine did.

Chord symbols travel in an optional top-level list, onsets counted like the events':

    "chords": [{"staff": 0, "onset": "1/2", "symbol": "Am7"}]

each symbol in Segue's normalized spelling (`engine.abc.chord_symbols`: root, `#`/`b`, a quality
such as `m7`, `/bass`). They belong to the staff's first voice. Answers carry the list only
when the model wrote chord symbols.

Each (staff, voice) becomes one part of the score, and so one ABC voice for the model.
"""

from __future__ import annotations

import copy
from fractions import Fraction
from typing import TYPE_CHECKING, Any

from engine.abc.chord_symbols import is_chord_symbol
from engine.abc.limits import (
    CONTEXT_BARS,
    CONTEXT_NOTES,
    MAX_BAR_NOTES,
    MAX_CHORDS,
    MAX_EVENTS,
    MAX_SPAN,
    MAX_STAVES,
    check_fraction,
    check_size,
)
from engine.abc.writer import frac
from engine.errors import SegueError

if TYPE_CHECKING:
    from music21 import key, pitch, stream

STEP_FIFTHS = {"F": -1, "C": 0, "G": 1, "D": 2, "A": 3, "E": 4, "B": 5}


def parse_fraction(value: Any, what: str) -> Fraction:
    """'3/8' (or an int, or '1') as a Fraction; SegueError for anything else."""
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise SegueError(f"{what} must be a fraction written as \"n/d\", not {value!r}")
    try:
        result = Fraction(value)
    except (ValueError, ZeroDivisionError):
        raise SegueError(f"{what} must be a fraction written as \"n/d\", not {value!r}") from None
    if result.denominator > 1024 or abs(result) > 10_000:
        raise SegueError(f"{what} {value!r} is out of range")
    return result


def fraction_text(value: Fraction) -> str:
    return f"{value.numerator}/{value.denominator}"


def tpc(pitch: pitch.Pitch) -> int:
    """MuseScore's tonal pitch class of a music21 pitch: C = 14, G = 15, F# = 20, Bb = 12."""
    return 14 + STEP_FIFTHS[pitch.step] + 7 * round(pitch.alter)


def time_signature_of(events: dict) -> str:
    return check_meter(events.get("time_signature", "4/4"), "time_signature")


def check_meter(text: Any, what: str) -> str:
    """A meter such as "3/4", normalized; SegueError naming `what` for anything else."""
    if not isinstance(text, str) or "/" not in text:
        raise SegueError(f"{what} must be written like \"3/4\", not {text!r}")
    numerator, _, denominator = text.partition("/")
    if not (numerator.strip().isdigit() and denominator.strip() in
            {"1", "2", "4", "8", "16", "32"} and 0 < int(numerator) <= 32):
        raise SegueError(f"{what} {text!r} is not a meter Segue can write")
    return f"{int(numerator)}/{int(denominator)}"


def key_of(events: dict) -> key.Key:
    from music21 import key

    fifths = events.get("key", 0)
    if isinstance(fifths, bool) or not isinstance(fifths, int) or not -7 <= fifths <= 7:
        raise SegueError(f"key must be a number of fifths from -7 to 7, not {fifths!r}")
    mode = events.get("mode", "major")
    if mode not in ("major", "minor"):
        raise SegueError(f"mode must be \"major\" or \"minor\", not {mode!r}")
    return key.KeySignature(fifths).asKey(mode)


def events_to_score(events: dict) -> stream.Score:
    """A music21 Score from an events document, one part per (staff, voice), each filled
    with rests to the end of the last bar that any event reaches."""
    from music21 import chord, meter, note, stream, tie

    if not isinstance(events, dict):
        raise SegueError("events must be an object with time_signature, key and staves")
    time_signature = time_signature_of(events)
    key_signature = key_of(events)
    staves = events.get("staves")
    if not isinstance(staves, list) or not staves:
        raise SegueError("events.staves must be a non-empty list of staves")
    if len(staves) > MAX_STAVES:
        raise SegueError(f"at most {MAX_STAVES} staves can be continued at once")
    if sum(len(s) for s in staves if isinstance(s, list)) > MAX_EVENTS:
        raise SegueError(f"at most {MAX_EVENTS} events can be sent at once")
    voices: dict[tuple[int, int], list] = {}
    for staff_index, staff in enumerate(staves):
        if not isinstance(staff, list):
            raise SegueError(f"staff {staff_index} must be a list of events")
        for event_index, event in enumerate(staff):
            where = f"staff {staff_index}, event {event_index}"
            if not isinstance(event, dict):
                raise SegueError(f"{where}: an event must be an object")
            onset = parse_fraction(event.get("onset"), f"{where}: onset")
            length = parse_fraction(event.get("duration"), f"{where}: duration")
            if onset < 0 or length <= 0:
                raise SegueError(f"{where}: onset must be >= 0 and duration > 0")
            pitches = event.get("pitches", [])
            if not isinstance(pitches, list) or not all(
                    isinstance(p, int) and not isinstance(p, bool) and 0 <= p <= 127
                    for p in pitches):
                raise SegueError(f"{where}: pitches must be a list of MIDI numbers 0-127")
            voice = event.get("voice", 0)
            if isinstance(voice, bool) or not isinstance(voice, int) or not 0 <= voice <= 3:
                raise SegueError(f"{where}: voice must be 0, 1, 2 or 3")
            voices.setdefault((staff_index, voice), []).append(
                (onset, length, sorted(set(pitches)), bool(event.get("tie", False))))

    symbols = chords_of(events, len(staves))
    bar = Fraction(time_signature)
    last = max((onset + length for items in voices.values() for onset, length, *_ in items),
               default=bar)
    end = -(-last // bar) * bar  # events describe time: a bar they reach into is whole
    score = stream.Score()
    first_voice: dict[int, int] = {}
    for staff_index, voice in sorted(voices):
        first_voice.setdefault(staff_index, voice)
    for (staff_index, voice), items in sorted(voices.items()):
        part = stream.Part(id=f"staff{staff_index}-voice{voice}")
        part.insert(0, meter.TimeSignature(time_signature))
        part.insert(0, copy.deepcopy(key_signature))
        items.sort(key=lambda item: item[0])
        position = Fraction(0)
        tied_pitches: set[int] = set()
        for onset, length, pitches, tied in items:
            element: note.GeneralNote
            if onset < position:
                continue  # overlaps the previous event of this voice: the host sent a chord late
            if pitches:
                element = note.Note(pitches[0]) if len(pitches) == 1 else chord.Chord(pitches)
                ending = tied_pitches & set(pitches)
                if tied:
                    element.tie = tie.Tie("continue" if ending else "start")
                elif ending:
                    element.tie = tie.Tie("stop")
                tied_pitches = set(pitches) if tied else set()
            else:
                element = note.Rest()
                tied_pitches = set()
            element.duration.quarterLength = length * 4
            part.insert(onset * 4, element)
            position = onset + length
        if position < end:  # the time after a voice's last event is silence
            part.insert(position * 4, note.Rest(quarterLength=(end - position) * 4))
        part.makeRests(fillGaps=True, inPlace=True, timeRangeFromBarDuration=False)
        part = part.makeNotation()
        if first_voice[staff_index] == voice:
            for onset, symbol in symbols.get(staff_index, []):
                measure = part.getElementAtOrBefore(onset * 4, [stream.Measure])
                if measure is not None:
                    measure.insert(onset * 4 - frac(measure.offset), symbol)
        score.insert(0, part)
    return score


def chords_of(events: dict, staves: int) -> dict[int, list]:
    """The optional "chords" list as music21 ChordSymbols by staff: [(onset, symbol)]."""
    from engine.abc.chord_symbols import from_text

    chords = events.get("chords", [])
    if not isinstance(chords, list):
        raise SegueError("chords must be a list of {staff, onset, symbol} objects")
    if len(chords) > MAX_CHORDS:
        raise SegueError(f"at most {MAX_CHORDS} chord symbols can be sent at once")
    by_staff: dict[int, list] = {}
    for index, item in enumerate(chords):
        where = f"chord {index}"
        if not isinstance(item, dict):
            raise SegueError(f"{where}: a chord must be an object with staff, onset and symbol")
        staff = item.get("staff", 0)
        if isinstance(staff, bool) or not isinstance(staff, int) or not 0 <= staff < staves:
            raise SegueError(f"{where}: staff must be a staff number from 0 to {staves - 1}")
        onset = parse_fraction(item.get("onset"), f"{where}: onset")
        if onset < 0:
            raise SegueError(f"{where}: onset must be >= 0")
        symbol = item.get("symbol")
        try:
            parsed = from_text(symbol if isinstance(symbol, str) else repr(symbol))
        except ValueError as error:
            raise SegueError(f"{where}: {error}") from None
        by_staff.setdefault(staff, []).append((onset, parsed))
    return by_staff


def part_layout(score: stream.Score) -> list[tuple[int, int]]:
    """(staff, voice) of each part of a score made by `events_to_score` ((i, 0) otherwise)."""
    from music21 import stream

    layout = []
    for index, part in enumerate(score.getElementsByClass(stream.Part)):
        name = str(part.id)
        if name.startswith("staff") and "-voice" in name:
            staff_text, voice_text = name[5:].split("-voice")
            layout.append((int(staff_text), int(voice_text)))
        else:
            layout.append((index, 0))
    return layout


def score_to_events(score: stream.Score, layout: list[tuple[int, int]] | None = None) -> dict:
    """An events document (with tpcs) from a score.

    `layout` gives the (staff, voice) of each part in order — pass the prompt's
    `part_layout` to map a continuation (whose parts come back in the prompt's order)
    onto the staves it continues; by default it is read from the parts themselves.
    """
    from music21 import key, meter, stream

    flat_first = score.parts[0].flatten()
    time_signature = flat_first.getElementsByClass(meter.TimeSignature).first()
    key_signature = flat_first.getElementsByClass(key.KeySignature).first()
    staves: dict[int, list[dict]] = {}
    parts = list(score.getElementsByClass(stream.Part))
    layout = layout or part_layout(score)
    if len(layout) != len(parts):
        raise SegueError(f"the score has {len(parts)} parts but the layout names {len(layout)}")
    for part, (staff, voice) in zip(parts, layout, strict=True):
        events = staves.setdefault(staff, [])
        for element in part.flatten().notesAndRests:
            if element.duration.isGrace or is_chord_symbol(element):
                continue
            pitches = list(element.pitches) if not element.isRest else []
            tie_ = getattr(element, "tie", None)
            events.append({
                "onset": fraction_text(frac(element.offset) / 4),
                "duration": fraction_text(frac(element.duration.quarterLength) / 4),
                "pitches": [p.midi for p in pitches],
                "tpcs": [tpc(p) for p in pitches],
                "tie": bool(tie_ is not None and tie_.type in ("start", "continue")),
                "voice": voice,
            })
    chords = [{"staff": staff, "onset": fraction_text(onset / 4), "symbol": text}
              for staff, onset, text in sorted(chord_symbols(parts, layout))]
    result = {
        "time_signature": time_signature.ratioString if time_signature else "4/4",
        "key": key_signature.sharps if key_signature else 0,
        "staves": [staves.get(i, []) for i in range(max(staves) + 1)] if staves else [],
    }
    if isinstance(key_signature, key.Key):
        result["mode"] = "minor" if key_signature.mode == "minor" else "major"
    if chords:
        result["chords"] = chords
    return result


def recent_events(events: dict, bars: int = CONTEXT_BARS, notes: int = CONTEXT_NOTES) -> dict:
    """The events of the most recent whole bars, onsets counted from the first of them: at
    most `bars` bars and `notes` events in all (at least one bar). An event that starts
    before the cut keeps its part after it. Onsets and durations are checked on the way
    (engine.abc.limits.check_fraction, MAX_SPAN, MAX_BAR_NOTES); other errors are left to
    `events_to_score`. Chord symbols before the cut are dropped, the others moved with it."""
    if not isinstance(events, dict) or not isinstance(events.get("staves"), list):
        return events
    bar = Fraction(time_signature_of(events))
    timed: list[list[tuple[Fraction, Fraction, dict]]] = []
    per_bar: dict[tuple[int, Any, int], int] = {}
    end = Fraction(0)
    for staff_index, staff in enumerate(events["staves"]):
        timed.append([])
        for event_index, event in enumerate(staff if isinstance(staff, list) else ()):
            if not isinstance(event, dict):
                return events
            where = f"staff {staff_index}, event {event_index}"
            onset = parse_fraction(event.get("onset"), f"{where}: onset")
            length = parse_fraction(event.get("duration"), f"{where}: duration")
            check_fraction(onset, f"{where}: onset")
            check_fraction(length, f"{where}: duration")
            end = max(end, onset + length)
            check_size(int(end), MAX_SPAN, "whole notes from the start of the events")
            key = (staff_index, repr(event.get("voice", 0)), int(onset // bar))
            per_bar[key] = per_bar.get(key, 0) + 1
            check_size(per_bar[key], MAX_BAR_NOTES, f"events in bar {key[2] + 1} of staff "
                       f"{staff_index}")
            timed[-1].append((onset, length, event))
    total_bars = max(1, -(-end // bar))
    first = max(0, total_bars - bars)

    def count(first_bar: int) -> int:
        cut = first_bar * bar
        return sum(1 for staff in timed for onset, length, _ in staff if onset + length > cut)

    while first < total_bars - 1 and count(first) > notes:
        first += 1
    if first == 0:
        return events
    cut = first * bar
    staves = [[dict(event, onset=fraction_text(max(onset, cut) - cut),
                    duration=fraction_text(onset + length - max(onset, cut)))
               for onset, length, event in staff if onset + length > cut] for staff in timed]
    return dict(events, staves=staves, **recent_chords(events, cut))


def recent_chords(events: dict, cut: Fraction) -> dict:
    """{"chords": the chord symbols at or after `cut`, onsets counted from it} ({} if the
    document has no list of chords; what is wrong inside one is `chords_of`'s to say)."""
    chords = events.get("chords")
    if not isinstance(chords, list):
        return {}
    kept = []
    for index, item in enumerate(chords):
        if not isinstance(item, dict):
            return {"chords": chords}
        onset = parse_fraction(item.get("onset"), f"chord {index}: onset")
        check_fraction(onset, f"chord {index}: onset")
        if onset >= cut:
            kept.append(dict(item, onset=fraction_text(onset - cut)))
    return {"chords": kept}


def chord_symbols(parts: list, layout: list[tuple[int, int]]) -> list[tuple[int, Fraction, str]]:
    """(staff, onset in quarter notes, normalized symbol) of every chord symbol of the parts."""
    from music21 import harmony

    from engine.abc.chord_symbols import symbol_text

    found = []
    for part, (staff, _) in zip(parts, layout, strict=True):
        for symbol in part.recurse().getElementsByClass(harmony.ChordSymbol):
            text = symbol_text(symbol)
            if text is not None:
                found.append((staff, frac(symbol.getOffsetInHierarchy(part)), text))
    return found
