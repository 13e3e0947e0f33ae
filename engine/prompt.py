"""The prompt the model reads: a score written as ABC in the models' dialect.

`make_prompt` writes a score with `engine.abc_writer`, without title and with its final bar
line made plain, and keeps the meter, unit length and key in force at its end for the head of
the answer. It needs music21 but not torch, so the server's reader processes make prompts and
only the model's process imports torch.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from engine.abc_text import split_head
from engine.abc_writer import write_abc
from engine.errors import SegueError

BARS_PER_LINE = 4


@dataclass
class Prompt:
    """A prompt split into what the model reads and what the answer's head needs."""

    head: str  # X, M, L, [Q], K lines, as the writer wrote them
    body: str  # the bars, ending with a bar line
    meter: str  # meter, unit length and key in force at the end of the prompt
    unit: str
    key: str
    voices: int

    @property
    def answer_head(self) -> str:
        tempo = re.search(r"^Q:.*$", self.head, re.MULTILINE)
        lines = ["X:1", f"M:{self.meter}", f"L:{self.unit}"]
        return "\n".join(lines + ([tempo.group(0)] if tempo else []) + [f"K:{self.key}"]) + "\n"


def last_field(text: str, name: str, default: str) -> str:
    """The value of the last `name:` field in force in `text` (header line or inline)."""
    values = re.findall(rf"(?:^|\[){name}:([^\]\n]*)", text, re.MULTILINE)
    return values[-1].strip() if values else default


def end_with_bar_line(line: str) -> str:
    """A line of bars ending with a plain bar line (a final `|]` or `||` becomes `|`)."""
    line = re.sub(r"\s*(\|\]|\|\|)\s*$", " |", line.rstrip())
    return line if line.endswith("|") else line + " |"


def make_prompt(score) -> Prompt:
    """The prompt for a score: our ABC, without title, its final bar line made plain."""
    try:
        abc = write_abc(score, title="", bars_per_line=BARS_PER_LINE)
    except SegueError:
        raise
    except Exception as error:  # music21 raises many kinds for durations it cannot express
        raise SegueError(f"the music cannot be written as ABC ({type(error).__name__}: "
                         f"{str(error)[:200]})") from None
    head, body = split_head(abc)
    lines = [line if line.startswith("V:") else end_with_bar_line(line)
             for line in body.strip().split("\n")]
    body = "\n".join(lines)
    voices = len({line for line in lines if line.startswith("V:")}) or 1
    return Prompt(
        head=head, body=body,
        meter=last_field(abc, "M", "4/4"), unit=last_field(abc, "L", "1/8"),
        key=last_field(abc, "K", "C"), voices=voices,
    )
