"""Each voice's register read off ABC text (engine/abc/registers.py), and the range decoding
keeps it in."""

from __future__ import annotations

import pytest

from engine.abc.registers import (
    REGISTER_MARGIN,
    guarded,
    note_pitches,
    voice_centres,
    voice_registers,
)


@pytest.mark.parametrize(("line", "pitches"), [
    ("C D E F | G A B c |", [60, 62, 64, 65, 67, 69, 71, 72]),
    ("C, c' c'' A,,", [48, 84, 96, 45]),
    ("^F _B =B ^^G __E", [66, 70, 71, 69, 62]),
    ('"Am" A2 "G7" G2 |', [69, 67]),  # chord symbols are not notes
    ("[CEG]2 {ag}f2 z2 Z |", [60, 64, 67, 81, 79, 77]),
    ("!trill! c2 [K:G] d2 +fermata+ e2 |", [72, 74, 76]),
])
def test_the_notes_of_a_line(line: str, pitches: list[int]):
    assert note_pitches(line) == pitches


def test_each_voice_has_its_lowest_and_highest_note():
    body = ("V:1\n\"C\" c2 e2 g2 c'2 |\nV:2\nC,2 E,2 G,2 C2 |\nV:3\nz8 |\n"
            "V:1\nd'2 B2 G2 D2 |\nV:2\nG,,2 B,,2 D,2 G,2 |\nV:3\nZ |")
    assert voice_registers(body) == {"1": (62, 86), "2": (43, 60)}  # voice 3 has no note
    # the centre is the mean of every note: voice 2, (48+52+55+60+43+47+50+55) / 8
    assert voice_centres(body) == {"1": pytest.approx(74.625), "2": pytest.approx(51.25)}


def test_the_guarded_range_is_the_register_and_the_margin_each_side():
    assert guarded((48, 72), 7) == (41, 79)
    assert guarded((60, 60)) == (60 - REGISTER_MARGIN, 60 + REGISTER_MARGIN)
