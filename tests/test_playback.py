"""abc2midi plays Segue's answers with chord symbols in every meter without a warning: the
`%%MIDI gchord` line is written exactly where the real abc2midi has no pattern of its own."""

from __future__ import annotations

import pytest

from engine.abc.bars import bar_units
from engine.abc.music import parse_abc
from engine.abc.playback import gchord_line, playable
from engine.abc.text import length_text
from engine.models.continuation import Engine, Sampling
from engine.study.abc2midi import abc2midi_messages

METERS = ["C", "C|", *(f"{n}/{d}" for d in (2, 4, 8, 16) for n in range(1, 13))]


def lead_sheet(meter: str, chords: bool = True) -> str:
    """Two full bars of `meter`, each one note under a chord symbol (or none)."""
    length = length_text(bar_units(meter, "1/16"))
    symbols = ('"G"', '"D7"') if chords else ("", "")
    return (f"X:1\nM:{meter}\nL:1/16\nK:G\n{symbols[0]}G{length} | {symbols[1]}A{length} |]\n")


@pytest.mark.parametrize("meter", METERS)
def test_the_line_is_written_where_abc2midi_has_no_pattern_and_silences_it(meter: str) -> None:
    tune = lead_sheet(meter)
    warned = any("gchord" in line for line in abc2midi_messages(tune))
    assert warned == bool(gchord_line(meter))  # the set agrees with the real abc2midi
    assert abc2midi_messages(playable(tune)) == []
    assert playable(lead_sheet(meter, chords=False)) == lead_sheet(meter, chords=False)


DUET = ('X:1\nM:3/2\nL:1/8\nV:1\nV:2 clef=bass\nK:D\nV:1\nd12 | f12 |\nV:2\n"D"D,12 | "Bm"B,,12 |\n'
        'V:1\na12 |]\nV:2\n"A7"A,,12 |]\n')


@pytest.mark.parametrize("tune", [lead_sheet("3/2"), DUET], ids=["one voice", "two voices"])
def test_abc2midi_is_silent_and_other_readers_skip_the_line(tune: str) -> None:
    assert abc2midi_messages(tune) != [] and abc2midi_messages(playable(tune)) == []
    plain, played = parse_abc(tune), parse_abc(playable(tune))
    assert [n.fullName for n in plain.recurse().notes] == \
        [n.fullName for n in played.recurse().notes]


def test_the_line_goes_in_the_head_or_once_into_each_voice() -> None:
    assert "%%MIDI gchord fzczcz\nK:G" in playable(lead_sheet("3/2"))
    assert playable(DUET).count("%%MIDI gchord fzczcz") == 2  # V:1 and V:2, first lines
    assert "V:1\n%%MIDI gchord fzczcz\nd12" in playable(DUET)


def test_a_continuation_in_three_two_is_silent_in_abc2midi() -> None:
    engine = Engine.load(None, device="cpu")
    tune = ('X:1\nM:3/2\nL:1/8\nK:D\n"D"d4 f4 a4|"A"e4 c4 A4|"G"B4 d4 g4|"D"f8 d4|\n')
    [answer] = engine.continue_abc(tune, 4, Sampling(seed=1))
    assert '"' in answer.abc.partition("K:D\n")[2]  # the answer has chord symbols
    assert "%%MIDI gchord" in answer.abc and "%%MIDI gchord" in answer.with_prompt
    assert abc2midi_messages(answer.abc) == [] and abc2midi_messages(answer.with_prompt) == []
