"""`segue convert`: ABC, MusicXML and MIDI in every direction, selections, MIDI without a key
or meter, and one-line errors that leave no file behind."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import mido
import pytest

from engine.abc.music import note_events, parse_abc, read_score
from engine.abc.text import read_header

TUNE = "X:1\nM:6/8\nL:1/8\nK:Bb\nB2d fdB|c2e gec|d2f bfd|B3 B3|\n"
TWO_TUNES = TUNE + "\nX:7\nM:2/4\nL:1/16\nK:E\nE2G2 B2e2|B4 E4|\n"


def segue(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "bridge", *args], capture_output=True,
                          text=True, input=stdin, timeout=120)


def pitches(score) -> list[int]:
    return [p.midi for n in score.flatten().notes for p in n.pitches]


@pytest.mark.parametrize("middle", ["musicxml", "mxl", "mid"])
def test_abc_through_another_format_and_back_keeps_the_notes(tmp_path: Path, middle: str):
    source = tmp_path / "tune.abc"
    source.write_text(TUNE)
    there, back = tmp_path / f"tune.{middle}", tmp_path / "back.abc"
    assert segue("convert", str(source), str(there)).returncode == 0
    result = segue("convert", str(there), str(back))
    assert result.returncode == 0, result.stderr
    assert pitches(read_score(back)) == pitches(parse_abc(TUNE))
    header = read_header(back.read_text())
    assert header.meter == "6/8"
    if middle != "mid":  # MIDI keeps no spelling; its key is estimated (next test)
        assert note_events(read_score(back)) == note_events(parse_abc(TUNE))
        assert header.key == "Bb"


def test_a_whole_rest_between_chords_keeps_its_length_in_every_reader(tmp_path: Path):
    """music21 alone stretches a whole rest among chords to the bar (3/2: 7 quarters here);
    ABC, a MusicXML file and a MusicXML document all read the bar at 6 (`music21_mends`)."""
    from engine.abc.music import parse_musicxml, write_score

    tune = "X:1\nM:3/2\nL:1/8\nK:D\n[E,F,]2 z8 [E,E]2 | [DF]12 |\n"
    path = tmp_path / "rest.musicxml"
    write_score(parse_abc(tune), path)
    for score in (parse_abc(tune), read_score(path), parse_musicxml(path.read_text("utf-8"))):
        bars = score.parts[0].getElementsByClass("Measure")
        assert [bar.duration.quarterLength for bar in bars] == [6, 6]
        assert [r.quarterLength for r in score.recurse().getElementsByClass("Rest")] == [4]


def test_midi_without_key_or_meter_gets_them_estimated(tmp_path: Path):
    """A waltz in D major with no time-signature or key events: 3/4 and D are found."""
    track = mido.MidiTrack()
    bar = [(62, 4), (66, 2), (69, 4), (66, 2), (64, 4), (67, 2), (66, 6),
           (74, 4), (73, 2), (71, 4), (69, 2), (64, 4), (61, 2), (62, 6)]  # (pitch, eighths)
    for pitch, eighths in bar * 2:
        track.append(mido.Message("note_on", note=pitch, velocity=80, time=0))
        track.append(mido.Message("note_off", note=pitch, velocity=0, time=240 * eighths))
    midi = mido.MidiFile(ticks_per_beat=480)
    midi.tracks.append(track)
    source, out = tmp_path / "waltz.mid", tmp_path / "waltz.abc"
    midi.save(source)
    result = segue("convert", str(source), str(out))
    assert result.returncode == 0, result.stderr
    header = read_header(out.read_text())
    assert header.meter == "3/4", out.read_text()
    assert header.key == "D", out.read_text()
    assert pitches(read_score(out)) == [pitch for pitch, _ in bar * 2]


def test_measures_and_tune_select_what_is_converted(tmp_path: Path):
    source, out = tmp_path / "two.abc", tmp_path / "part.abc"
    source.write_text(TWO_TUNES)
    assert segue("convert", str(source), str(out), "--measures", "2-3").returncode == 0
    assert pitches(read_score(out)) == pitches(parse_abc(TUNE))[5:15]
    assert segue("convert", str(source), str(out), "--tune", "7").returncode == 0
    assert read_header(out.read_text()).meter == "2/4"
    missing = segue("convert", str(source), str(out), "--tune", "3")
    assert missing.returncode == 1 and "X: 1, 7" in missing.stderr


def test_part_takes_one_part_of_a_score(tmp_path: Path):
    source, out = tmp_path / "duet.abc", tmp_path / "lower.abc"
    source.write_text("X:1\nM:3/4\nL:1/8\nK:G\nV:1\nB2d2g2|\nV:2\nG,6|\n")
    result = segue("convert", str(source), str(out), "--part", "2")
    assert result.returncode == 0, result.stderr
    assert pitches(read_score(out)) == [55]


def test_standard_input_is_read_as_abc(tmp_path: Path):
    out = tmp_path / "tune.musicxml"
    assert segue("convert", "-", str(out), stdin=TUNE).returncode == 0
    assert pitches(read_score(out)) == pitches(parse_abc(TUNE))


@pytest.mark.parametrize(("name", "content", "output", "message"), [
    ("missing.abc", None, "out.abc", "no such file"),
    ("empty.abc", b"", "out.abc", "empty"),
    ("binary.abc", bytes(range(256)), "out.musicxml", "not an ABC"),
    ("broken.musicxml", b"<score-partwise><part", "out.abc", "broken.musicxml"),
    ("junk.mid", b"MThd junk", "out.abc", "junk.mid"),
    ("tune.abc", TUNE.encode(), "out.pdf", "unknown file type"),
    ("tune.txt", TUNE.encode(), "out.abc", "unknown file type"),
    ("notes.abc", b"X:1\nK:C\n", "out.abc", "no notes"),
])
def test_bad_input_is_one_clear_line_and_no_output(tmp_path: Path, name: str,
                                                   content: bytes | None, output: str,
                                                   message: str):
    source = tmp_path / name
    if content is not None:
        source.write_bytes(content)
    result = segue("convert", str(source), str(tmp_path / output))
    assert result.returncode == 1, result.stderr
    assert message in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ([name] if content is not None else [])
