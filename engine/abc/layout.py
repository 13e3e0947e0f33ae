"""Segue's ABC as voices of bars: cut a tune at its bar lines, and write any stretch again.

The writer (`engine.abc.writer`) lays a tune out as a head, then lines of four bars; with
several voices, a `V:n` line comes before each voice's line, chunk after chunk. Training
windows, fill-in-the-middle examples and long prompts need other stretches of the same bars,
each under the head in force where it starts. `Layout.read` takes that text back into bars
(a multi-bar rest `Z3` becomes three bars of `Z`) and `Layout.write` lays out any range of
them in the writer's form again, four bars to a line counted from the range's first bar.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

BARS_PER_LINE = 4
# A bar line with what it may open: `:|[2`, `|[2`, `::`, `:|`, `|:`, `|]`, `||`, `|`, `[2`.
BAR_LINE = re.compile(r":\|\[\d[\d,]*|\|\[\d[\d,]*|::|:\||\|:|\|\]|\|\||\||\[\d[\d,]*")
INLINE_FIELD = re.compile(r"\[([A-Z]):([^\]]*)\]")
FIELD_LINE = re.compile(r"^([A-Za-z]):(.*)$")
LEADING_FIELDS = re.compile(r"^(?:\[[A-Z]:[^\]]*\]\s*)+")
BAR_REST = re.compile(r"^((?:\[[A-Z]:[^\]]*\]\s*)*)Z(\d*)$")
VOICE_LINE = re.compile(r"^V:\s*(\S+)\s*$")
# Head fields that inline fields can change, in the order the writer writes them.
CHANGING_FIELDS = ("M", "L", "Q", "K")


@dataclass(frozen=True)
class Bar:
    """One bar of one voice: what opens it (`|:`, `[2`), its music, what closes it."""

    opening: str
    music: str
    closing: str


def split_bar_line(token: str) -> tuple[str, str]:
    """A bar line between two bars as (what closes the first, what opens the second)."""
    if token == "::":
        return ":|", "|:"
    if token == "|:":
        return "|", "|:"
    if token.startswith("[") and token[1:2].isdigit():
        return "", token
    match = re.match(r"^(:?\|)(\[[\d,]+)$", token)
    if match:
        return match.group(1), match.group(2)
    return token, ""


def join_bar_lines(closing: str, opening: str) -> str:
    """The writer's way to write a closing and an opening bar line together inside a line."""
    if opening.startswith("|:") and closing:
        return ("::" if closing == ":|" else "|:") + opening[2:]
    return closing + opening


def read_line(line: str, opening: str = "") -> tuple[list[Bar], str]:
    """The bars of one line of music, and an opening left over for the next line."""
    bars: list[Bar] = []
    music: list[str] = []
    index = 0
    while index < len(line):
        ch = line[index]
        if ch == '"':  # a chord symbol or annotation: never a bar line
            end = line.find('"', index + 1)
            end = len(line) if end < 0 else end + 1
            music.append(line[index:end])
            index = end
            continue
        if ch == "[" and not line[index + 1:index + 2].isdigit():  # a chord or an inline field
            end = line.find("]", index + 1)
            end = len(line) if end < 0 else end + 1
            music.append(line[index:end])
            index = end
            continue
        token = BAR_LINE.match(line, index)
        if token is None:
            music.append(ch)
            index += 1
            continue
        closing, next_opening = split_bar_line(token.group(0))
        text = "".join(music).strip()
        if text:
            bars.extend(expand_rests(Bar(opening, text, closing)))
            opening = next_opening
        else:  # a bar line before any music: it opens the next bar
            opening += next_opening if closing in ("", "|") else closing + next_opening
        music = []
        index = token.end()
    text = "".join(music).strip()
    if text:
        bars.extend(expand_rests(Bar(opening, text, "")))
        opening = ""
    return bars, opening


def expand_rests(bar: Bar) -> list[Bar]:
    """A multi-bar rest `Z3` as three bars of `Z` (fields and opening on the first)."""
    match = BAR_REST.match(bar.music)
    if match is None or match.group(2) in ("", "1"):
        return [bar]
    count = int(match.group(2))
    first = Bar(bar.opening, f"{match.group(1)}Z", "|")
    middle = [Bar("", "Z", "|") for _ in range(count - 2)]
    return [first, *middle, Bar("", "Z", bar.closing)]


@dataclass
class Layout:
    """A tune as its head lines and, per voice, its bars."""

    head: list[str]
    voices: list[list[Bar]]

    @classmethod
    def read(cls, text: str) -> Layout:
        """Read a tune as the writer lays it out (head up to `K:`, then lines of bars)."""
        lines = text.strip("\n").split("\n")
        split = next((i for i, line in enumerate(lines) if line.startswith("K:")), None)
        if split is None:
            raise ValueError("the tune has no K: field")
        head, body = lines[: split + 1], lines[split + 1:]
        order: list[str] = []
        voices: dict[str, list[Bar]] = {}
        openings: dict[str, str] = {}
        fields: dict[str, str] = {}  # a field line waiting for the next bar, by voice
        current = "1"
        for line in body:
            voice = VOICE_LINE.match(line)
            if voice:
                current = voice.group(1)
                continue
            if not line.strip() or line.startswith("%"):
                continue
            field = FIELD_LINE.match(line)
            if field:  # an older layout's field line: an inline field on the next bar
                fields[current] = fields.get(current, "") + f"[{line.strip()}] "
                continue
            if current not in voices:
                order.append(current)
                voices[current] = []
            bars, openings[current] = read_line(fields.pop(current, "") + line,
                                                openings.get(current, ""))
            voices[current].extend(bars)
        return cls(head, [voices[name] for name in order])

    @property
    def bar_count(self) -> int:
        return max((len(bars) for bars in self.voices), default=0)

    def fields_at(self, index: int) -> dict[str, str]:
        """The value of each of M, L, Q, K in force at the start of bar `index` (after the
        inline fields that open that bar)."""
        fields: dict[str, str] = {}
        for line in self.head:
            match = FIELD_LINE.match(line)
            if match and match.group(1) in CHANGING_FIELDS:
                fields[match.group(1)] = match.group(2).strip()
        bars = self.voices[0] if self.voices else []
        texts = [bar.music for bar in bars[:index]]
        if index < len(bars):
            texts.append(leading_fields(bars[index].music))
        for text in texts:
            for name, value in INLINE_FIELD.findall(text):
                if name in CHANGING_FIELDS:
                    fields[name] = value.strip()
        return fields

    def head_at(self, index: int, *, title: bool | None = None) -> str:
        """The head for a stretch that starts at bar `index`: the fields in force there.

        The title is kept only for a stretch from the first bar (unless `title` says).
        """
        fields = self.fields_at(index)
        keep_title = index == 0 if title is None else title
        lines: list[str] = []
        for line in self.head:
            match = FIELD_LINE.match(line)
            name = match.group(1) if match else ""
            if name == "T" and not keep_title:
                continue
            if name in CHANGING_FIELDS:
                if name == "Q" or name not in fields:
                    continue  # Q is placed before the voices below, wherever it was
                line = f"{name}:{fields.pop(name)}"
            if name in ("V", "K") and "Q" in fields:
                lines.append(f"Q:{fields.pop('Q')}")
            lines.append(line)
        return "\n".join(lines) + "\n"

    def write_body(self, start: int, stop: int, *, after_head: bool = False) -> str:
        """Bars `start` to `stop` (not included) of every voice, in the writer's layout.

        `after_head`: the body follows `head_at(start)`, which already holds the fields that
        open bar `start`, so they are not written again.
        """
        several = len(self.voices) > 1
        lines: list[str] = []
        for first in range(start, stop, BARS_PER_LINE):
            last = min(stop, first + BARS_PER_LINE)
            for number, bars in enumerate(self.voices, 1):
                chunk = bars[first:last]
                if not chunk:
                    continue
                if after_head and first == start:
                    opening = chunk[0]
                    music = opening.music[len(leading_fields(opening.music)):]
                    chunk = [Bar(opening.opening, music, opening.closing), *chunk[1:]]
                if several:
                    lines.append(f"V:{number}")
                lines.append(write_line(chunk))
        return "\n".join(lines) + ("\n" if lines else "")

    def write(self, start: int = 0, stop: int | None = None, *,
              title: bool | None = None) -> str:
        """The tune from bar `start` to `stop`, under the head in force at `start` (with the
        title as `head_at` decides)."""
        stop = self.bar_count if stop is None else stop
        return self.head_at(start, title=title) + self.write_body(start, stop, after_head=True)


def leading_fields(music: str) -> str:
    """The inline fields (`[M:3/4] [K:D] `) that open a bar's music."""
    match = LEADING_FIELDS.match(music)
    return match.group(0) if match else ""


def write_line(bars: list[Bar]) -> str:
    """One line of bars, with runs of whole-bar rests written as one multi-bar rest."""
    merged: list[tuple[Bar, int]] = []
    for bar in bars:
        if merged and bar.music == "Z" and not bar.opening:
            previous, count = merged[-1]
            if BAR_REST.match(previous.music) and previous.closing == "|":
                merged[-1] = (Bar(previous.opening, previous.music, bar.closing), count + 1)
                continue
        merged.append((bar, 1))
    pieces: list[str] = []
    for index, (bar, count) in enumerate(merged):
        if index == 0:
            if bar.opening:
                pieces.append(bar.opening)
        else:
            joined = join_bar_lines(merged[index - 1][0].closing, bar.opening)
            if joined:
                pieces.append(joined)
        pieces.append(bar.music + (str(count) if count > 1 else ""))
    if merged[-1][0].closing:
        pieces.append(merged[-1][0].closing)
    return " ".join(pieces)
