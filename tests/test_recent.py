"""The most recent bars of a prompt, cut on its text (engine/abc/recent.py, engine/abc/events.py):
the notes kept are the last bars' notes, and what is in force where the cut falls comes
along."""

from __future__ import annotations

from fractions import Fraction

import pytest

from engine.abc.events import recent_events
from engine.abc.limits import TooLarge, check_events
from engine.abc.music import note_events, parse_abc
from engine.abc.recent import recent_abc, recent_musicxml
from engine.errors import SegueError


def last_bars(score, bars: int) -> list[list[tuple[Fraction, Fraction, int]]]:
    """Each part's (onset, duration, pitch) in its last `bars` bars, onsets from their start."""
    from music21 import stream

    result = []
    for part in score.parts:
        measures = list(part.getElementsByClass(stream.Measure))[-bars:]
        tail = stream.Score([stream.Part(measures)])
        start = Fraction(measures[0].offset)
        result.append([(onset - start, length, pitch)
                       for onset, length, pitch in note_events(tail)[0]])
    return result


def test_a_long_tune_keeps_its_last_bars_and_what_holds_there() -> None:
    tune = ("X:1\nT:Long\nM:4/4\nL:1/8\nQ:1/4=100\nK:G\n" + "GABc d2B2|c2A2 B2G2|" * 20
            + "\nL:1/16\nK:Dm\nQ:1/4=80\n" + "D4F4A4d4|d4c4A4F4|" * 10 + "\nw: la la la\n"
            + "F4E4D4C4|A16|]\n")
    cut = recent_abc(tune, bars=6)
    head = cut.split("K:", 1)[0]
    assert "M:4/4" in head and "L:1/16" in head and "Q:1/4=80" in head and "T:Long" in head
    assert "K:Dm" in cut and "w:" not in cut
    assert cut.count("|") == 6
    assert note_events(parse_abc(cut)) == last_bars(parse_abc(tune), 6)
    changed = recent_abc("X:1\nM:4/4\nL:1/8\nK:C\n" + "CDEF GABc|" * 40 + "[M:3/4]"
                         + "CDE FGA|" * 10, bars=4)
    assert "M:3/4" in changed.split("K:", 1)[0]


def test_voices_are_cut_alike_and_endings_are_not_split() -> None:
    tune = ("X:1\nM:2/4\nL:1/8\nK:C\nV:1\n" + "CDEF|GABc|" * 8 + "|1 cBAG:|2 c4|]\n"
            "V:2\n" + "C,4|G,4|" * 8 + "|1 G,4:|2 C,4|]\n")
    cut = recent_abc(tune, bars=3)
    assert "V:1" in cut and "V:2" in cut
    for voice in cut.split("V:")[1:]:
        assert voice.split("\n", 1)[1].lstrip().startswith(("GABc", "G,4"))  # before |1
    assert len(parse_abc(cut).parts) == 2


def test_a_short_tune_is_left_as_it_is() -> None:
    tune = "X:1\nM:6/8\nL:1/8\nK:D\nA2F D2F|A2d f2d|\n"
    assert recent_abc(tune) == tune


def test_events_keep_their_last_bars_and_what_reaches_into_them() -> None:
    events = {"time_signature": "3/4", "key": 0, "staves": [
        [{"onset": f"{i}/4", "duration": "1/4", "pitches": [60 + i % 12]} for i in range(300)]
        + [{"onset": "300/4", "duration": "6/4", "pitches": [72]}]]}
    cut = recent_events(events, bars=4)
    onsets = [Fraction(e["onset"]) for e in cut["staves"][0]]
    assert onsets[0] == 0 and len(cut["staves"][0]) == 6 + 1  # 2 bars of quarters, 1 held
    held = cut["staves"][0][-1]
    assert held["pitches"] == [72] and Fraction(held["duration"]) == Fraction(6, 4)
    straddling = {"time_signature": "4/4", "key": 0, "staves": [[
        {"onset": "0", "duration": "3/1", "pitches": [60]},
        {"onset": "3", "duration": "1/1", "pitches": [62]}]]}
    cut = recent_events(straddling, bars=2)["staves"][0]
    assert cut[0] == {"onset": "0/1", "duration": "1/1", "pitches": [60]}  # its last bar
    assert cut[1]["onset"] == "1/1"


def test_chord_symbols_are_cut_with_their_bars() -> None:
    events = {"time_signature": "4/4", "key": 0, "staves": [
        [{"onset": str(i), "duration": "1", "pitches": [60]} for i in range(40)]],
        "chords": [{"staff": 0, "onset": "0", "symbol": "C"},
                   {"staff": 0, "onset": "77/2", "symbol": "Am7"}]}
    cut = recent_events(events, bars=4)
    assert cut["chords"] == [{"staff": 0, "onset": "5/2", "symbol": "Am7"}]  # bar 37 is 0
    with pytest.raises(TooLarge, match="chord symbols"):
        check_events(dict(events, chords=[{"onset": "0", "symbol": "C"}] * 5_001))


def test_musicxml_keeps_the_chosen_part_and_bars() -> None:
    from music21 import corpus
    from music21.musicxml.m21ToXml import GeneralObjectExporter

    from engine.abc.music import parse_musicxml

    document = GeneralObjectExporter(corpus.parse("bach/bwv66.6")).parse().decode("utf-8")
    cut = parse_musicxml(recent_musicxml(document, part="Alto", measures=(3, 6), bars=2))
    assert [p.partName for p in cut.parts] == ["Alto"]
    measures = cut.parts[0].getElementsByClass("Measure")
    assert [m.number for m in measures] == [5, 6]
    assert measures[0].keySignature.sharps == 3  # carried from bar 1
    whole = parse_musicxml(document).parts[1].measures(5, 6)
    assert [n.pitch.midi for n in measures.stream().flatten().notes] == \
        [n.pitch.midi for n in whole.flatten().notes]
    with pytest.raises(SegueError, match="outside the score"):
        recent_musicxml(document, measures=(40, 50))
    with pytest.raises(SegueError, match="the score has parts 1 \\(Soprano\\)"):
        recent_musicxml(document, part="Tenor 2")
