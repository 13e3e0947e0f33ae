"""Training examples from canonical tunes: windows cut at bar lines, and fill-in-the-middle.

A model reads `block_size` tokens at a time, and a song or a quartet movement is many times
longer. `windows` cuts a tune into stretches of whole four-bar lines (every voice) that fit,
each under the head in force where it starts (meter, key, tempo, the voices' names and clefs)
and without a title, so every window reads as a tune of its own, as a prompt does.

`fill_example` turns a window into a fill-in-the-middle example: the bars before a gap, a
line naming the gap's length, the bars after it, then the gap's bars themselves:

    X:1 ... K:G            the head in force at the window's start
    <bars before the gap>
    %%segue gap 4          the gap: 4 bars
    <bars after the gap>
    %%segue fill
    <the 4 bars of the gap>

so a model trained on both learns to write bars that lead from the one side into the other,
with no token outside ABC's own characters (`%%` lines are directives that ABC readers skip).
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from engine.abc.layout import BARS_PER_LINE, Layout

GAP_LINE = "%%segue gap {bars}"
FILL_LINE = "%%segue fill"
MAX_GAP = 8


def windows(text: str, limit: int) -> list[tuple[Layout, int, int]]:
    """(layout, first bar, end bar) of each window of `text`: whole lines of bars from the
    start, as many as fit in `limit` characters with their head (at least one line each)."""
    layout = Layout.read(text)
    total = layout.bar_count
    found: list[tuple[Layout, int, int]] = []
    start = 0
    while start < total:
        stop = min(total, start + BARS_PER_LINE)
        while stop < total:
            wider = min(total, stop + BARS_PER_LINE)
            if len(layout.write(start, wider)) > limit:
                break
            stop = wider
        found.append((layout, start, stop))
        start = stop
    return found


@dataclass(frozen=True)
class Fill:
    """A fill-in-the-middle example in parts: the head and the bars before the gap
    (`before`), the text a model fills from (`prompt`, `fill_prompt`), and the gap's own bars
    (`middle`), `bars` of them."""

    before: str
    prompt: str
    middle: str
    bars: int

    @property
    def text(self) -> str:
        return self.prompt + self.middle


def fill_parts(layout: Layout, start: int, stop: int, rng: random.Random) -> Fill | None:
    """A fill-in-the-middle example from bars `start`..`stop` of `layout`, with a gap of 1 to
    `MAX_GAP` bars that has at least one bar on each side; None if the window is too short
    or every gap would cross a change of meter, key or unit length."""
    bars = stop - start
    if bars < 3:
        return None
    length = rng.randint(1, min(MAX_GAP, bars - 2))
    gap = rng.randint(start + 1, stop - length - 1)
    if layout.fields_at(gap) != layout.fields_at(gap + length):
        return None  # the bars after the gap would need a field the gap holds
    return Fill(layout.head_at(start, title=False) + layout.write_body(start, gap, after_head=True),
                fill_prompt(layout, start, gap, length, stop),
                layout.write_body(gap, gap + length), length)


def fill_example(layout: Layout, start: int, stop: int, rng: random.Random) -> str | None:
    """The text of `fill_parts`' example (see the module's docstring), or None."""
    fill = fill_parts(layout, start, stop, rng)
    return None if fill is None else fill.text


def fill_prompt(layout: Layout, start: int, gap: int, length: int, stop: int) -> str:
    """What a fill-in-the-middle example shows before the gap's bars: the head in force at
    `start`, bars `start`..`gap`, the gap line, the `length` bars after the gap up to `stop`,
    and the fill line (the text a model trained on `fill_example` fills from)."""
    return (layout.head_at(start, title=False) + layout.write_body(start, gap, after_head=True)
            + GAP_LINE.format(bars=length) + "\n" + layout.write_body(gap + length, stop)
            + FILL_LINE + "\n")


def training_texts(texts: list[str], limit: int, *, fill_share: float = 0.0,
                   seed: int = 0) -> list[str]:
    """Every window of every tune; `fill_share` of them (chosen with `seed`) made into
    fill-in-the-middle examples where they can be."""
    rng = random.Random(seed)
    examples: list[str] = []
    for text in texts:
        for layout, start, stop in windows(text, limit):
            example = None
            if fill_share and rng.random() < fill_share:
                example = fill_example(layout, start, stop, rng)
            examples.append(example or layout.write(start, stop, title=False))
    return examples
