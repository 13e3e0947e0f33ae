"""The ABC writer: faithful round trips (corpus, MusicXML), every notation feature, and
acceptance by the reference tool abc2midi."""

from __future__ import annotations

import shutil
from fractions import Fraction
from pathlib import Path

import pytest
from music21 import bar, chord, corpus, key, meter, note, spanner, stream, tempo
from server_helpers import abc2midi_errors

from engine.abc.music import note_events, parse_abc
from engine.abc.writer import write_abc
from engine.training.corpus import iter_tunes, roundtrip_report

ROUNDTRIP_SAMPLE = 500  # tunes, evenly spaced through the corpus
ABC2MIDI_SAMPLE = 150


def roundtrip(score) -> tuple[str, object]:
    text = write_abc(score)
    return text, parse_abc(text)


def corpus_sample(size: int) -> list:
    tunes = list(iter_tunes())
    step = len(tunes) / size
    return [tunes[int(i * step)] for i in range(size)]


def test_corpus_roundtrip_keeps_every_note_in_at_least_98_percent_of_tunes():
    report = roundtrip_report(corpus_sample(ROUNDTRIP_SAMPLE), workers=2)
    assert report.total == ROUNDTRIP_SAMPLE
    assert report.rate >= 0.98, report.failures


@pytest.mark.skipif(shutil.which("abc2midi") is None, reason="abc2midi (Debian abcmidi) missing")
def test_abc2midi_accepts_our_abc_without_errors():
    failures = [(tune.source, errors[:2]) for tune in corpus_sample(ABC2MIDI_SAMPLE)
                if (errors := abc2midi_errors(write_abc(parse_abc(tune.text))))]
    assert not failures, failures[:5]


def bundled_multipart_scores() -> list[str]:
    return ["bach/bwv66.6", "bach/bwv269", "bach/bwv347", "bach/bwv438",
            "monteverdi/madrigal.3.1.mxl", "corelli/opus3no1/1grave"]


@pytest.mark.parametrize("name", bundled_multipart_scores())
def test_musicxml_to_abc_to_musicxml_keeps_notes(name: str, tmp_path: Path):
    original = corpus.parse(name)
    text = write_abc(original)
    assert "V:2" in text
    reread = parse_abc(text)
    musicxml = tmp_path / "again.musicxml"
    reread.write("musicxml", fp=str(musicxml))
    from engine.abc.music import read_score

    assert note_events(read_score(musicxml)) == note_events(original)


def make_part(*elements, time_signature="4/4", key_signature=None) -> stream.Score:
    part = stream.Part()
    part.append(meter.TimeSignature(time_signature))
    if key_signature is not None:
        part.append(key_signature)
    for element in elements:
        part.append(element)
    score = stream.Score([part.makeNotation()])
    return score


def notes(*specs: str) -> list[note.GeneralNote]:
    """'C4/1', 'r/0.5', 'C4+E4/1' (chord) -> music21 objects with those quarter lengths."""
    made = []
    for spec in specs:
        pitch, _, length = spec.partition("/")
        ql = Fraction(length)
        if pitch == "r":
            made.append(note.Rest(quarterLength=ql))
        elif "+" in pitch:
            made.append(chord.Chord(pitch.split("+"), quarterLength=ql))
        else:
            made.append(note.Note(pitch, quarterLength=ql))
    return made


def test_every_key_and_mode_keeps_its_pitches():
    for sharps in range(-7, 8):
        for mode in ("major", "minor", "dorian", "mixolydian", "lydian", "phrygian"):
            k = key.KeySignature(sharps).asKey(mode)
            scale = [p.nameWithOctave for p in k.pitches]
            score = make_part(*notes(*[f"{p}/0.5" for p in scale]), key_signature=k)
            text, again = roundtrip(score)
            assert note_events(again) == note_events(score), text


def test_accidentals_are_scoped_by_bar_and_key():
    # F# then F natural in one bar; F# again in the next bar needs its sharp again.
    score = make_part(*notes("F#4/1", "F4/1", "F#4/1", "G4/1", "F#4/4"))
    text, again = roundtrip(score)
    assert note_events(again) == note_events(score)
    body = text.split("K:C\n")[1]
    assert body.count("^F") == 3 and "=F" in body


def test_rests_dots_ties_across_bars_tuplets_chords_and_graces():
    triplet = notes("E4/1/3", "F4/1/3", "G4/1/3")
    grace = note.Note("B4", quarterLength=0.5).getGrace()
    score = make_part(*notes("C4/1.5", "D4/0.5", "r/1"), *triplet,
                      *notes("C4+E4+G4/2", "A4/3"), grace, *notes("C5/1", "r/2"))
    text, again = roundtrip(score)
    assert note_events(again) == note_events(score), text
    for fragment in ("C3", "(3EFG", "[CEG]4", "-", "z2", "{B}"):
        assert fragment in text, (fragment, text)


def test_several_parts_become_voices():
    upper = stream.Part([meter.TimeSignature("3/4"), *notes("E5/1", "D5/1", "C5/1", "B4/3")])
    lower = stream.Part([meter.TimeSignature("3/4"), *notes("C3/3", "G2/3")])
    score = stream.Score([upper.makeNotation(), lower.makeNotation()])
    text, again = roundtrip(score)
    assert "V:1" in text and "V:2" in text
    assert note_events(again) == note_events(score)


def test_anacrusis_meter_and_key_changes_tempo_and_repeats():
    abc = ("X:1\nM:6/8\nL:1/8\nQ:3/8=100\nK:D\nA | d2d fed | A3 A2 :|\n"
           "|: f2f afd |1 e3 e2 :|2 d3 d2 ||\nM:3/4\nK:Bb\nB2 c2 d2 | e6 |]\n")
    score = parse_abc(abc)
    text, again = roundtrip(score)
    assert note_events(again) == note_events(score), text
    assert "Q:3/8=100" in text
    for fragment in ("::", "[1", ":|[2", "M:3/4", "K:Bb", "B2 c2 d2"):
        assert fragment in text, (fragment, text)
    assert text.split("K:D\n")[1].startswith("A |")  # the pickup bar stays short


def test_repeat_brackets_from_music21_objects():
    score = make_part(*notes("C4/4", "D4/4", "E4/4"))
    measures = list(score.parts[0].getElementsByClass(stream.Measure))
    measures[0].leftBarline = bar.Repeat(direction="start")
    measures[1].rightBarline = bar.Repeat(direction="end")
    score.parts[0].insert(0, spanner.RepeatBracket(measures[1], number=1))
    score.parts[0].insert(0, spanner.RepeatBracket(measures[2], number=2))
    text = write_abc(score)
    assert "|: C8 |[1 D8 :|[2 E8 |]" in text, text


def test_tidy_text_four_bars_a_line():
    score = make_part(*notes(*["C4/4"] * 9))
    lines = write_abc(score).strip().split("\n")
    body = lines[lines.index("K:C") + 1:]
    assert [line.count("|") for line in body] == [4, 4, 1]


def test_tempo_mark_uses_its_own_beat():
    score = make_part(*notes("C4/2", "D4/2"))
    score.parts[0].getElementsByClass(stream.Measure).first().insert(
        0, tempo.MetronomeMark(number=88, referent=note.Note(type="half")))
    assert "Q:1/2=88" in write_abc(score)
