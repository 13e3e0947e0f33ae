"""The prompt the model reads: a score written as ABC in the models' dialect.

`make_prompt` writes a score with `engine.abc.writer`, without title and with its final bar
line made plain (or removed, when the last bar is unfinished: the answer completes it), and
keeps the meter, unit length, key and tempo in force at its end for the head of the answer.
It needs music21 but not torch, so the server's reader processes make prompts and only the
model's process imports torch.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from fractions import Fraction
from typing import TYPE_CHECKING

from engine.abc.text import split_head
from engine.abc.writer import frac, write_abc
from engine.errors import SegueError

if TYPE_CHECKING:
    from music21 import stream

BARS_PER_LINE = 4


@dataclass
class Prompt:
    """A prompt split into what the model reads and what the answer's head needs."""

    head: str  # X, M, L, [Q], [V...], K lines, as the writer wrote them
    body: str  # the bars, ending with a bar line (or, after an unfinished bar, a space)
    meter: str  # meter, unit length, key and tempo in force at the end of the prompt
    unit: str
    key: str
    tempo: str | None
    voices: int
    time_in_bar: Fraction = Fraction(0)  # where an unfinished last bar stops, in unit notes

    def answer_head(self, meter: str) -> str:
        """The head of an answer whose first bar is in `meter`: the prompt's voices, and the
        unit length, tempo and key in force at its end."""
        voices = re.findall(r"^V:.*$", self.head, re.MULTILINE)
        lines = ["X:1", f"M:{meter}", f"L:{self.unit}"]
        lines += [f"Q:{self.tempo}"] if self.tempo else []
        return "\n".join([*lines, *voices, f"K:{self.key}"]) + "\n"


def last_field(text: str, name: str, default: str) -> str:
    """The value of the last `name:` field in force in `text` (field line or inline); voice
    definitions (`V:1 name=... clef=...`) are not fields in force."""
    values = re.findall(rf"(?:^|\[){name}:([^\]\n]*)", text, re.MULTILINE)
    return values[-1].strip() if values else default


def end_with_bar_line(line: str) -> str:
    """A line of bars ending with a plain bar line (a final `|]` or `||` becomes `|`)."""
    line = re.sub(r"\s*(\|\]|\|\|)\s*$", " |", line.rstrip())
    return line if line.endswith("|") else line + " |"


def unfinished_bar(score: stream.Score | stream.Part, unit: str) -> Fraction:
    """How far the score's last bar gets, in unit notes, if it stops short of its meter (a
    pickup alone is a whole bar's start, not an unfinished bar); 0 for a full last bar."""
    from music21 import stream

    parts = list(score.parts) if isinstance(score, stream.Score) else [score]
    measures = list(parts[0].getElementsByClass(stream.Measure)) if parts else []
    if not measures or (len(measures) == 1 and measures[0].paddingLeft):
        return Fraction(0)
    last = measures[-1]
    length = frac(last.duration.quarterLength)
    if last.timeSignature is None and last.getContextByClass("TimeSignature") is None:
        return Fraction(0)
    if length >= frac(last.barDuration.quarterLength) or length == 0:
        return Fraction(0)
    return length / (Fraction(unit) * 4)


def write_prompt_abc(score: stream.Score | stream.Part, chord_symbols: bool) -> str:
    """The score in the models' dialect; SegueError for music the writer cannot express."""
    try:
        return write_abc(score, title="", bars_per_line=BARS_PER_LINE,
                         chord_symbols=chord_symbols)
    except SegueError:
        raise
    except Exception as error:  # music21 raises many kinds for durations it cannot express
        raise SegueError(f"the music cannot be written as ABC ({type(error).__name__}: "
                         f"{str(error)[:200]})") from None


def make_prompt(score: stream.Score | stream.Part, chord_symbols: bool = True) -> Prompt:
    """The prompt for a score: our ABC without title, its final bar line made plain, or
    removed when the last bar is unfinished (the answer completes it). `chord_symbols`:
    whether the model reads them (engine.models.continuation.Engine.chord_symbols)."""
    abc = write_prompt_abc(score, chord_symbols)
    head, body = split_head(abc)
    unit = last_field(head, "L", "1/8")
    time_in_bar = unfinished_bar(score, unit)
    lines = body.strip().split("\n")
    voices = len({line for line in lines if line.startswith("V:")}) or 1
    music = [index for index, line in enumerate(lines) if not line.startswith("V:")]
    for index in music:
        lines[index] = end_with_bar_line(lines[index])
    if time_in_bar:  # each voice's last line stops where its bar does
        for index in music[-voices:]:
            lines[index] = lines[index].removesuffix("|").rstrip() + " "
    tempo = last_field(abc, "Q", "")
    return Prompt(
        head=head, body="\n".join(lines),
        meter=last_field(abc, "M", "4/4"), unit=unit, key=last_field(abc, "K", "C"),
        tempo=tempo or None, voices=voices, time_in_bar=time_in_bar,
    )
