"""Training windows and fill-in-the-middle examples: cut at bar lines, each under its own head."""

from __future__ import annotations

import random
import re

from engine.abc.layout import Layout
from engine.abc.windows import FILL_LINE, fill_example, training_texts, windows

QUARTET = """X:1
T:A piece
M:4/4
L:1/8
Q:1/4=100
V:1 name="Violin" clef=treble
V:2 name="Cello" clef=bass
K:G
V:1
|: "G"G2AB c2d2 | e8 | Z2 |
V:2
|: G,8 | C,8 | D,8 | Z |
V:1
[M:3/4] [K:D] d6 | e6 | f6 | g6 :|
V:2
[M:3/4] [K:D] D,6 | Z3 :|
V:1
a6 | b6 |]
V:2
A,6 | B,6 |]
"""


def bar_music(layout: Layout) -> list[list[str]]:
    return [[bar.music for bar in voice] for voice in layout.voices]


def test_a_tune_reads_as_bars_per_voice_and_writes_back_the_same():
    layout = Layout.read(QUARTET)
    assert layout.bar_count == 10
    assert [len(voice) for voice in layout.voices] == [10, 10]
    assert [bar.music for bar in layout.voices[1][5:8]] == ["Z", "Z", "Z"]  # `Z3`: 3 bars
    assert layout.write() == QUARTET


def test_a_stretch_gets_the_head_in_force_where_it_starts():
    layout = Layout.read(QUARTET)
    text = layout.write(4, 6)
    head, body = text.split("K:D\n")
    assert "M:3/4" in head and "Q:1/4=100" in head and "T:" not in head
    assert 'V:2 name="Cello" clef=bass' in head
    assert "[M:3/4]" not in body  # the head holds the change that opens the stretch
    assert body == "V:1\nd6 | e6 |\nV:2\nD,6 | Z |\n"
    assert Layout.read(text).bar_count == 2


def test_windows_are_whole_lines_that_fit_and_cover_every_bar():
    layout = Layout.read(QUARTET)
    limit = len(layout.write(0, 4)) + 5
    found = windows(QUARTET, limit)
    assert [(start, stop) for _, start, stop in found] == [(0, 4), (4, 10)]
    assert len(layout.write(0, 8)) > limit  # so the first window could not take more
    for window, start, stop in found:
        text = window.write(start, stop)
        assert len(text) <= limit
        assert bar_music(Layout.read(text))[0][-1] == layout.voices[0][stop - 1].music
    assert windows(QUARTET, 10_000)[0][1:] == (0, 10)  # a tune that fits is one window


def test_a_fill_example_holds_both_sides_then_the_gap():
    tune = ("X:1\nM:2/4\nL:1/8\nK:C\n" + " | ".join(f"{n}4" for n in "CDEFGABc") + " |]\n")
    layout = Layout.read(tune)
    rng = random.Random(3)
    example = fill_example(layout, 0, layout.bar_count, rng)
    assert example is not None
    before, rest = example.split("%%segue gap ")
    count, after = rest.split("\n", 1)
    after, middle = after.split(FILL_LINE + "\n")
    notes = re.findall(r"[A-Gc]4", before.split("K:C\n")[1] + " " + middle + " " + after)
    gap = int(count)
    assert 1 <= gap <= 6
    assert len(re.findall(r"[A-Gc]4", middle)) == gap
    assert sorted(notes) == sorted(f"{n}4" for n in "CDEFGABc")  # every bar once
    first_after = re.search(r"[A-Gc]4", after).group(0)
    last_middle = re.findall(r"[A-Gc]4", middle)[-1]
    order = [f"{n}4" for n in "CDEFGABc"]
    assert order.index(first_after) == order.index(last_middle) + 1


def test_training_texts_mix_in_fill_examples_reproducibly():
    tunes = [("X:1\nM:3/4\nL:1/8\nK:D\n" + " | ".join(["D6"] * 12) + " |\n")] * 20
    mixed = training_texts(tunes, 200, fill_share=0.5, seed=7)
    assert mixed == training_texts(tunes, 200, fill_share=0.5, seed=7)
    fills = sum(FILL_LINE in text for text in mixed)
    assert 0 < fills < len(mixed)
    assert all(len(text) <= 200 for text in training_texts(tunes, 200))


def test_training_windows_carry_no_title_as_prompts_carry_none():
    titled = "X:1\nT:Rêve d'un soir\nM:2/4\nL:1/8\nK:G\n" + "GABc | d2 B2 |\n" * 4
    for text in training_texts([titled], 64, fill_share=0.5, seed=3):
        assert "T:" not in text and text.startswith("X:1\nM:2/4")
