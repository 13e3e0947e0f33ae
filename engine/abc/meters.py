"""The meter of each bar of an answer, when a host asks for bars in other meters.

A host whose next bars already exist in another meter names the meter of each new bar
(`bar_meters`); the engine writes an inline `[M:]` field where it changes, and
`answer_score` reads the answer back with a time signature at each change (music21's ABC
reader ignores inline meter fields). No torch here: the server's reader processes use it.
"""

from __future__ import annotations

import re
from fractions import Fraction
from typing import TYPE_CHECKING

from engine.errors import SegueError

if TYPE_CHECKING:
    from music21 import stream


def answer_score(abc: str, meters: list[str]) -> stream.Score:
    """An answer's ABC as a music21 Score, bar i in `meters[i]` (when they differ)."""
    from engine.abc.music import parse_abc

    score = parse_abc(abc, rests_only=True)
    if len(set(meters)) > 1:
        set_bar_meters(score, meters)
    return score


def set_bar_meters(score: stream.Score, meters: list[str]) -> None:
    """Re-bar each part of `score` so that bar i lasts `meters[i]`, with a time signature
    where the meter changes (music21's ABC reader ignores inline `[M:]` fields)."""
    from music21 import meter, stream

    changes: stream.Stream = stream.Stream()
    offset = 0.0
    for index, value in enumerate(meters):
        signature = meter.TimeSignature(value)
        if index == 0 or value != meters[index - 1]:
            changes.insert(offset, signature)
        offset += signature.barDuration.quarterLength
    for part in list(score.parts):
        flat: stream.Part = part.flatten().getElementsNotOfClass(meter.TimeSignature).stream()
        barred = flat.makeMeasures(meterStream=changes)
        barred.makeTies(inPlace=True)
        if isinstance(part.id, str):
            barred.id = part.id
        barred.partName = part.partName
        score.replace(part, barred)


def bar_meters(requested: list[str] | None, bars: int, meter: str) -> list[str]:
    """The meter of each of `bars` new bars: `requested` (its last meter repeated when it is
    shorter), else the prompt's `meter` throughout. SegueError for a meter it cannot write."""
    if not requested:
        return [meter] * bars
    if len(requested) > bars:
        raise SegueError(f"bar_meters names {len(requested)} bars, but only {bars} are asked for")
    meters = [*requested, *[requested[-1]] * (bars - len(requested))]
    for value in set(meters):
        if not re.fullmatch(r"[1-9][0-9]?/(1|2|4|8|16|32)", value):
            raise SegueError(f"bar meter {value!r} is not a meter Segue can write "
                             "(write it like \"3/4\")")
    return meters


def beat_count(meter: str) -> int:
    """Beats in a bar of an `M:` value, as music21 counts them: 4/4 has 4, 3/8 one, 6/8 and 6/4
    two (compound meters beat in dotted notes), 3+2/8 two (one a group)."""
    meter = {"C": "4/4", "C|": "2/2"}.get(meter.strip(), meter.strip())
    numerator, _, denominator = meter.partition("/")
    if "+" in numerator:
        return numerator.count("+") + 1
    count = int(numerator.strip("()") or 4)
    compound = count % 3 == 0 and (count > 3 or int(denominator or 4) >= 8)
    return count // 3 if compound else count


def strong_beats(bar: Fraction, beats: int) -> set[Fraction]:
    """Where a bar's strong beats fall, from its start, in the unit `bar` is given in: the
    downbeat, and the middle of the bar in meters of an even number of beats (2/4, 4/4, 6/8,
    12/8, 2/2)."""
    return {Fraction(0), bar / 2} if beats % 2 == 0 else {Fraction(0)}
