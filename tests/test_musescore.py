"""The MuseScore plug-in in a real MuseScore 3 (Debian's mscore3), against a real `segue serve`.

mscore3 runs plugins/musescore/Segue.qml headless in batch mode (SEGUE_PLUGIN_BATCH): the
plug-in selects bars, asks the server (what `segue serve` runs: bridge.service.server over a Worker,
here with a tiny random GPT-2) through a recording proxy, writes the answer into the score and
saves it as MusicXML, which music21 reads back. A QML error leaves mscore3's exit status at 0,
so every check is made on the files the plug-in writes.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest
from musescore_helpers import Recorder, free_port, recording

from bridge.launch import health
from engine.abc.events import events_to_score, part_layout, tpc

ROOT = Path(__file__).resolve().parents[1]
PLUGIN = ROOT / "plugins" / "musescore" / "Segue.qml"

pytestmark = pytest.mark.skipif(shutil.which("mscore3") is None,
                                reason="needs MuseScore 3 (Debian package musescore3)")


@pytest.fixture
def recorder(tiny_url: str) -> Iterator[Recorder]:
    """A recording proxy in front of a server with the tiny model."""
    with recording(tiny_url) as proxy:
        yield proxy


@pytest.fixture
def shipped(shipped_url: str) -> Iterator[Recorder]:
    """A recording proxy in front of a server with the shipped model (Fill and Add part)."""
    with recording(shipped_url) as proxy:
        yield proxy


def run_plugin(score: Path, job: dict[str, Any], folder: Path, plugin: Path = PLUGIN,
               env: dict[str, str] | None = None) -> None:
    """Run the plug-in in batch mode on `score`."""
    job_file = folder / "job.json"
    job_file.write_text(json.dumps(job))
    env = {**os.environ, "SEGUE_PLUGIN_BATCH": str(job_file), "QT_QPA_PLATFORM": "offscreen",
           "XDG_RUNTIME_DIR": str(folder), "HOME": str(folder), **(env or {})}
    subprocess.run(["mscore3", "-p", str(plugin), str(score)], env=env, timeout=300,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)


def to_mscx(source: Path, folder: Path) -> Path:
    """`source` saved by MuseScore 3 itself (as a user's score is: chord symbols with text)."""
    target = source.with_suffix(".mscx")
    subprocess.run(["mscore3", "-o", str(target), str(source)], timeout=120, check=True,
                   env={**os.environ, "QT_QPA_PLATFORM": "offscreen",
                        "XDG_RUNTIME_DIR": str(folder), "HOME": str(folder)},
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return target


# ------------------------------------------------------------------------ scores

def flats_in_three(path: Path) -> Path:
    """3/4 in E-flat: a triplet, a chord tied over the bar line, a rest, two voices."""
    from music21 import chord, key, meter, note, stream, tie

    part = stream.Part()
    bars = [stream.Measure(number=n) for n in range(1, 5)]
    bars[0].append([meter.TimeSignature("3/4"), key.KeySignature(-3), note.Note("E-4")])
    bars[0].append([note.Note(p, quarterLength=Fraction(1, 3)) for p in ("G4", "A-4", "B-4")])
    bars[0].append(chord.Chord(["E-4", "G4", "B-4"]))
    bars[0].notes[-1].tie = tie.Tie("start")
    bars[1].append(chord.Chord(["E-4", "G4", "B-4"]))
    bars[1].notes[0].tie = tie.Tie("stop")
    bars[1].append([note.Rest(quarterLength=0.5), note.Note("D5", quarterLength=0.5),
                    note.Note("C5")])
    upper, lower = stream.Voice(id="1"), stream.Voice(id="2")
    upper.append(note.Note("B-4", quarterLength=3))
    lower.append([note.Note("E-4", quarterLength=1.5), note.Note("F4", quarterLength=1.5)])
    bars[2].insert(0, upper)
    bars[2].insert(0, lower)
    bars[3].append([note.Note("A-4", quarterLength=2), note.Note("G4")])
    part.append(bars)
    score = stream.Score([part])
    score.write("musicxml", fp=str(path))
    return path


def two_staves(path: Path) -> Path:
    """Violin and cello in 4/4, D major, three bars."""
    from music21 import key, meter, note, stream

    score = stream.Score()
    for name, base in (("Violin", 74), ("Cello", 50)):
        part = stream.Part()
        part.partName = name
        part.append([meter.TimeSignature("4/4"), key.KeySignature(2)])
        for step in (0, 2, 4, 5, 7, 5, 4, 2, 0, -1, 0, 0):
            part.append(note.Note(base + step))
        score.insert(0, part.makeNotation())
    score.write("musicxml", fp=str(path))
    return path


def turning_meter(path: Path) -> Path:
    """Four bars of 4/4, then bars that exist already in 3/4, 3/4 and 6/8 (as MuseScore's demo
    "Reunion" turns from 4/4 to 3/4), with notes the continuation replaces."""
    from music21 import meter, note, stream

    part = stream.Part()
    signatures = ["4/4", None, None, None, "3/4", None, "6/8"]
    for number, (signature, beats) in enumerate(zip(signatures, [4, 4, 4, 4, 3, 3, 3],
                                                    strict=True), 1):
        bar = stream.Measure(number=number)
        if signature:
            bar.append(meter.TimeSignature(signature))
        bar.append([note.Note(60 + number + k) for k in range(beats)])
        part.append(bar)
    stream.Score([part]).write("musicxml", fp=str(path))
    return path


def with_chords(path: Path) -> Path:
    """4/4, four bars with chord symbols (Am7, G, C, E7), as a user's MuseScore score has them."""
    from music21 import harmony, meter, note, stream

    part = stream.Part()
    for number, (symbol, base) in enumerate([("Am7", 57), ("G", 55), ("C", 60), ("E7", 64)], 1):
        bar = stream.Measure(number=number)
        if number == 1:
            bar.append(meter.TimeSignature("4/4"))
        bar.insert(0, harmony.ChordSymbol(symbol))
        bar.append([note.Note(base + step) for step in (0, 4, 7, 12)])
        part.append(bar)
    stream.Score([part]).write("musicxml", fp=str(path))
    return to_mscx(path, path.parent)


def clarinet_resting(path: Path) -> Path:
    """A B-flat clarinet in concert F major: two bars of rests, then notes (written in G)."""
    from music21 import instrument, key, meter, note, stream

    part = stream.Part()
    part.insert(0, instrument.Clarinet())
    bars = [stream.Measure(number=n) for n in range(1, 5)]
    bars[0].append([meter.TimeSignature("4/4"), key.KeySignature(-1), note.Rest(quarterLength=4)])
    bars[1].append(note.Rest(quarterLength=4))
    bars[2].append([note.Note(p) for p in ("F4", "A4", "C5", "B-4")])
    bars[3].append(note.Note("A4", quarterLength=4))
    part.append(bars)
    part.atSoundingPitch = True
    stream.Score([part]).write("musicxml", fp=str(path))
    return path


def chorale(path: Path) -> Path:
    """One of music21's own MusicXML scores: Bach's BWV 66.6 (four staves, a pickup bar)."""
    from music21 import corpus

    corpus.parse("bach/bwv66.6").write("musicxml", fp=str(path))
    return path


# ------------------------------------------------------------------------ checks

def read(path: Path):
    from music21 import converter

    return converter.parse(str(path), format="musicxml", forceSource=True)


def notes_of(part, until: Fraction | None = None,
             since: Fraction = Fraction(0)) -> list[tuple[Fraction, Fraction, int]]:
    """(onset, length, MIDI pitch) of each note of a part from `since` to before `until`,
    in quarter notes (chord symbols are no notes)."""
    found = []
    for element in part.flatten().notes:
        onset = Fraction(element.offset)
        if since <= onset and (until is None or onset < until) \
                and "ChordSymbol" not in element.classes:
            found += [(onset, Fraction(element.quarterLength), p.midi) for p in element.pitches]
    return sorted(found)


def starts_tie(element) -> bool:
    notes = element.notes if element.isChord else (element,)
    return any(n.tie is not None and n.tie.type in ("start", "continue") for n in notes)


def sounding(notes: list[tuple[Fraction, Fraction, Any]], at: Fraction) -> set[Any]:
    return {p for onset, length, p in notes if onset <= at < onset + length}


def check_continuation(before, after, staves: list[int], first: int, last: int, bars: int,
                       exchange: tuple[dict[str, Any], dict[str, Any]]) -> None:
    """The plug-in sent the selected bars; the answer's bars follow them in the same staves,
    in the selection's meter and key, as the server wrote them (pitches, rhythm, spelling);
    every bar before them, every bar after them and every other staff is untouched, and the
    score grew by just the bars it lacked."""
    request, answer = exchange
    assert "error" not in answer, answer
    measures = list(before.parts[staves[0]].getElementsByClass("Measure"))
    begin = Fraction(measures[first - 1].offset)
    target = Fraction(measures[last - 1].offset) + Fraction(measures[last - 1].quarterLength)
    meter, fifths = request["events"]["time_signature"], request["events"]["key"]
    assert request["bar_meters"] == [meter] * bars          # the bars after are in that meter
    bar = Fraction(meter) * 4
    beyond = target + bars * bar
    for index, (old, new) in enumerate(zip(before.parts, after.parts, strict=True)):
        assert len(new.getElementsByClass("Measure")) == max(len(measures), last + bars)
        if index in staves:
            assert notes_of(new, target) == notes_of(old, target)
            assert notes_of(new, since=beyond) == notes_of(old, since=beyond)
        else:
            assert notes_of(new) == notes_of(old)
    pickup = bar - Fraction(measures[first - 1].quarterLength)   # sent as a bar with a rest
    sent = events_to_score(request["events"])
    for index, staff in enumerate(staves):
        selected = [(o - begin + pickup, d, p) for o, d, p in notes_of(before.parts[staff])
                    if begin <= o < target]
        got = [note for part, (s, _) in zip(sent.parts, part_layout(sent), strict=True)
               if s == index for note in notes_of(part)]
        assert sorted(got) == selected
        tied = {Fraction(e.offset) - begin + pickup for e in before.parts[staff].flatten().notes
                if begin <= Fraction(e.offset) < target and starts_tie(e)}
        assert {Fraction(e["onset"]) * 4 for e in request["events"]["staves"][index]
                if e["tie"]} == tied
        check_written(after.parts[staff], target, [meter] * bars, fifths,
                      answer["events"]["staves"][index])


def check_written(part, target: Fraction, meters: list[str], fifths: int | None,
                  events: list[dict[str, Any]]) -> None:
    """The new bars from `target` (quarter notes) are one a meter, each as long as its meter
    says and marked with it, in the key `fifths` (None: not checked), and every note of
    `events` (the answer) sounds there as the server spelled it."""
    span = sum(Fraction(meter) * 4 for meter in meters)
    new_bars = [m for m in part.getElementsByClass("Measure")
                if target <= Fraction(m.offset) < target + span]
    assert len(new_bars) == len(meters)
    for measure, meter in zip(new_bars, meters, strict=True):
        assert Fraction(measure.quarterLength) == Fraction(meter) * 4
        signature = measure.timeSignature or measure.getContextByClass("TimeSignature")
        assert signature.ratioString == meter
        if fifths is not None:
            key = measure.keySignature or measure.getContextByClass("KeySignature")
            assert key.sharps == fifths
    written = [(Fraction(element.offset) - target, Fraction(element.quarterLength),
                (pitch.midi, tpc(pitch)))
               for element in part.flatten().notes if Fraction(element.offset) >= target
               for pitch in element.pitches]
    assert events
    for event in events:
        onset, length = Fraction(event["onset"]) * 4, Fraction(event["duration"]) * 4
        if onset >= span:
            continue                          # past the bars asked for: not written
        if any(f.denominator & (f.denominator - 1) for f in (onset, length)):
            continue                          # a tuplet: MuseScore 3.2 rounds it to plain values
        heard = sounding(written, onset)
        for pitch, spelling in zip(event["pitches"], event["tpcs"], strict=True):
            assert (pitch, spelling) in heard, (event, sorted(heard))


def voice_ends(events: list[dict[str, Any]]) -> set[Fraction]:
    """Where each voice of a staff's events ends, in whole notes."""
    ends: dict[int, Fraction] = {}
    for event in events:
        ends[event["voice"]] = max(ends.get(event["voice"], Fraction(0)),
                                   Fraction(event["onset"]) + Fraction(event["duration"]))
    return set(ends.values())


def wait_for_text(path: Path, text: str, seconds: float) -> str:
    """The file's text once it holds `text` (pytest.fail after `seconds`)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if path.exists() and text in (found := path.read_text()):
            return found
        time.sleep(0.2)
    pytest.fail(f"{path} does not say {text!r} after {seconds} s")


# ------------------------------------------------------------------------ tests

@pytest.mark.parametrize(("make", "staff", "last_staff", "first", "last", "bars"), [
    (flats_in_three, 0, 0, 1, 3, 3),      # made here: 3/4, flats, the last bar rewritten
    (chorale, 0, 0, 1, 3, 2),             # music21's Bach chorale, from its pickup bar
    (two_staves, 0, 1, 2, 3, 2),          # two staves at once, bars added at the end
], ids=["flats-3-4", "bach-chorale", "two-staves"])
def test_continues_selection(make, staff: int, last_staff: int, first: int, last: int,
                             bars: int, recorder: Recorder, tmp_path: Path) -> None:
    score = make(tmp_path / "score.musicxml")
    output = tmp_path / "result.musicxml"
    run_plugin(score, {"server": f"http://127.0.0.1:{recorder.server_port}", "staff": staff,
                       "last_staff": last_staff, "first_measure": first, "last_measure": last,
                       "bars": bars, "seed": 7, "output": str(output)}, tmp_path)
    error = Path(f"{output}.error")
    assert not error.exists(), error.read_text()
    assert output.exists()
    assert len(recorder.exchanges) == 1
    check_continuation(read(score), read(output), list(range(staff, last_staff + 1)), first,
                       last, bars, recorder.exchanges[0])


def test_fill_rewrites_the_selected_bars_between_the_bars_around_them(shipped: Recorder,
                                                                    tmp_path: Path) -> None:
    """With the shipped model: Fill sends the selection with the bars around it and the gap
    to /v1/fill, and writes the answer's gap over the selection: the bars before and after
    stay note for note, and the gap's bars hold what the server wrote there."""
    score = flats_in_three(tmp_path / "score.musicxml")
    output = tmp_path / "result.musicxml"
    run_plugin(score, {"server": f"http://127.0.0.1:{shipped.server_port}", "staff": 0,
                       "first_measure": 2, "last_measure": 3, "action": "fill", "seed": 5,
                       "output": str(output)}, tmp_path)
    assert not Path(f"{output}.error").exists(), Path(f"{output}.error").read_text()
    [(request, answer)] = shipped.exchanges
    assert request["gap"] == [2, 3] and "bars" not in request and "error" not in answer
    before, after = read(score).parts[0], read(output).parts[0]
    bar = Fraction(3)  # 3/4, in quarter notes
    assert len(after.getElementsByClass("Measure")) == 4
    assert notes_of(after, bar) == notes_of(before, bar)
    assert notes_of(after, since=3 * bar) == notes_of(before, since=3 * bar)
    # every note the server wrote in the gap sounds there (pitch; spelling is not checked:
    # mscore3 kept E-flat for a D-sharp of a random model's chord once)
    written = [(Fraction(n.offset), Fraction(n.quarterLength), p.midi)
               for n in after.flatten().notes for p in n.pitches]
    gap = [e for e in answer["events"]["staves"][0]
           if Fraction(3, 4) <= Fraction(e["onset"]) < Fraction(9, 4) and e["pitches"]]
    assert gap
    for event in gap:
        onset = Fraction(event["onset"]) * 4
        if onset.denominator & (onset.denominator - 1) == 0:  # not inside a tuplet
            assert set(event["pitches"]) <= sounding(written, onset), event
    for measure in after.getElementsByClass("Measure"):
        assert Fraction(measure.quarterLength) == bar


def melody_over_empty_staff(path: Path) -> Path:
    """A violin melody in D major, 4/4, three bars, over a cello staff of rests."""
    from music21 import key, meter, note, stream

    score = stream.Score()
    for name, steps in (("Violin", (0, 2, 4, 5, 7, 5, 4, 2, 0, -1, 0, 0)), ("Cello", ())):
        part = stream.Part()
        part.partName = name
        part.append([meter.TimeSignature("4/4"), key.KeySignature(2)])
        part.append([note.Note(74 + step) for step in steps] or
                    [note.Rest(quarterLength=4) for _ in range(3)])
        score.insert(0, part.makeNotation())
    score.write("musicxml", fp=str(path))
    return path


def test_add_part_writes_the_new_part_into_the_empty_staff(shipped: Recorder,
                                                          tmp_path: Path) -> None:
    """With the shipped model: Add part sends the selected staff to /v1/accompany and writes
    the answer's new part into the empty staff below it, in the same bars; the melody stays
    note for note."""
    score = melody_over_empty_staff(tmp_path / "score.musicxml")
    output = tmp_path / "result.musicxml"
    run_plugin(score, {"server": f"http://127.0.0.1:{shipped.server_port}", "staff": 0,
                       "first_measure": 1, "last_measure": 3, "action": "accompany",
                       "add": "bass", "into_staff": 1, "seed": 4, "output": str(output)},
               tmp_path)
    assert not Path(f"{output}.error").exists(), Path(f"{output}.error").read_text()
    [(request, answer)] = shipped.exchanges
    assert request["add"] == "bass" and len(request["events"]["staves"]) == 1
    before, after = read(score), read(output)
    assert notes_of(after.parts[0]) == notes_of(before.parts[0])
    bars = list(after.parts[1].getElementsByClass("Measure"))
    assert [Fraction(m.quarterLength) for m in bars] == [Fraction(4)] * 3
    written = notes_of(after.parts[1])
    new_part = answer["events"]["staves"][-1]
    assert written and any(e["pitches"] for e in new_part)
    for event in new_part:
        onset, length = Fraction(event["onset"]) * 4, Fraction(event["duration"]) * 4
        if not any(f.denominator & (f.denominator - 1) for f in (onset, length)):
            assert set(event["pitches"]) <= sounding(written, onset), event


def test_add_part_chords_writes_chord_symbols_above_the_melody(shipped: Recorder,
                                                               tmp_path: Path) -> None:
    """Add part with chords, on the shipped model (trained on chord symbols): the answer's
    symbols replace those of the selected bars, the other bars keep theirs, and every note
    stays as it was."""
    score = with_chords(tmp_path / "score.musicxml")
    output = tmp_path / "result.musicxml"
    run_plugin(score, {"server": f"http://127.0.0.1:{shipped.server_port}", "staff": 0,
                       "first_measure": 1, "last_measure": 2, "action": "accompany",
                       "add": "chords", "seed": 4, "output": str(output)}, tmp_path)
    assert not Path(f"{output}.error").exists(), Path(f"{output}.error").read_text()
    [(request, answer)] = shipped.exchanges
    assert request["add"] == "chords"
    sent = sorted((Fraction(c["onset"]) * 4, c["symbol"]) for c in answer["events"]["chords"]
                  if Fraction(c["onset"]) < 2)
    assert sent and all(onset.denominator == 1 for onset, _ in sent)   # on the quarter notes
    symbols = sorted((Fraction(h.offset), h.figure) for h in
                     read(output).parts[0].flatten().getElementsByClass("ChordSymbol"))
    assert symbols == [*sent, (Fraction(8), "C"), (Fraction(12), "E7")]
    assert notes_of(read(output).parts[0]) == \
        notes_of(read(tmp_path / "score.musicxml").parts[0])


def test_answer_past_the_bars_asked_for_is_not_written(recorder: Recorder,
                                                       tmp_path: Path) -> None:
    """An answer holding more than the bars asked for (it should not) is cut at their end:
    the bars after them stay as they were and the score gets no bar it did not need."""
    def overlong(answer: dict[str, Any]) -> None:
        answer["events"]["staves"][0] += [
            {"onset": "1/2", "duration": "1/2", "pitches": [62], "tpcs": [16], "tie": True,
             "voice": 1},
            {"onset": "3/4", "duration": "3/2", "pitches": [60], "tpcs": [14], "tie": False,
             "voice": 0}]

    recorder.edit = overlong
    score = flats_in_three(tmp_path / "score.musicxml")
    output = tmp_path / "result.musicxml"
    run_plugin(score, {"server": f"http://127.0.0.1:{recorder.server_port}", "staff": 0,
                       "first_measure": 1, "last_measure": 2, "bars": 1, "seed": 3,
                       "output": str(output)}, tmp_path)
    assert not Path(f"{output}.error").exists(), Path(f"{output}.error").read_text()
    check_continuation(read(score), read(output), [0], 1, 2, 1, recorder.exchanges[0])


def test_bars_in_another_meter_are_filled_each_in_its_own(recorder: Recorder,
                                                         tmp_path: Path) -> None:
    """The bars after the selection exist in 3/4, 3/4 and 6/8: each new bar is written full,
    in its own meter, nothing cut; the bar added after them takes the last one's meter."""
    score = turning_meter(tmp_path / "score.musicxml")
    output = tmp_path / "result.musicxml"
    run_plugin(score, {"server": f"http://127.0.0.1:{recorder.server_port}", "staff": 0,
                       "first_measure": 1, "last_measure": 4, "bars": 4, "seed": 5,
                       "output": str(output)}, tmp_path)
    assert not Path(f"{output}.error").exists(), Path(f"{output}.error").read_text()
    request, answer = recorder.exchanges[0]
    meters = ["3/4", "3/4", "6/8", "6/8"]
    assert request["events"]["time_signature"] == "4/4"
    assert request["bar_meters"] == meters and answer["events"]["bar_meters"] == meters
    events = answer["events"]["staves"][0]
    assert voice_ends(events) == {sum(Fraction(m) for m in meters)}    # bar-exact, all of it
    before, after = read(score).parts[0], read(output).parts[0]
    assert len(after.getElementsByClass("Measure")) == 8
    assert notes_of(after, Fraction(16)) == notes_of(before, Fraction(16))
    check_written(after, Fraction(16), meters, None, events)


def test_chord_symbols_are_sent_and_written(recorder: Recorder, tmp_path: Path) -> None:
    """The selection's chord symbols go with the notes (onsets counted as theirs); the
    answer's go into the new bars, replacing the ones those bars held; one past them is not
    written."""
    placed: list[Fraction] = []

    def chords_in_answer(answer: dict[str, Any]) -> None:
        events = [e for e in answer["events"]["staves"][0] if e["voice"] == 0]
        second = next(Fraction(e["onset"]) for e, before in zip(events[1:], events, strict=False)
                      if not before["tie"] and Fraction(e["onset"]).denominator in (1, 2, 4, 8))
        placed.append(second)
        answer["events"]["chords"] = [
            {"staff": 0, "onset": "0/1", "symbol": "Dm7"},
            {"staff": 0, "onset": f"{second.numerator}/{second.denominator}", "symbol": "G7"},
            {"staff": 0, "onset": "3/1", "symbol": "C"}]

    recorder.edit = chords_in_answer
    score = with_chords(tmp_path / "score.musicxml")
    output = tmp_path / "result.musicxml"
    run_plugin(score, {"server": f"http://127.0.0.1:{recorder.server_port}", "staff": 0,
                       "first_measure": 1, "last_measure": 2, "bars": 2, "seed": 2,
                       "output": str(output)}, tmp_path)
    assert not Path(f"{output}.error").exists(), Path(f"{output}.error").read_text()
    request, _ = recorder.exchanges[0]
    assert request["events"]["chords"] == [{"staff": 0, "onset": "0/1", "symbol": "Am7"},
                                           {"staff": 0, "onset": "1/1", "symbol": "G"}]
    symbols = [(Fraction(h.offset), h.figure)
               for h in read(output).parts[0].flatten().getElementsByClass("ChordSymbol")]
    assert sorted(symbols) == [(Fraction(0), "Am7"), (Fraction(4), "G"), (Fraction(8), "Dm7"),
                               (8 + placed[0] * 4, "G7")]


def test_a_transposing_staff_of_rests_sends_its_concert_key(recorder: Recorder,
                                                           tmp_path: Path) -> None:
    """A B-flat clarinet in concert F (written in G): a selection of rests holds no note to
    tell the transposition, so the plug-in asks the staff's other notes."""
    score = clarinet_resting(tmp_path / "score.musicxml")
    output = tmp_path / "result.musicxml"
    run_plugin(score, {"server": f"http://127.0.0.1:{recorder.server_port}", "staff": 0,
                       "first_measure": 1, "last_measure": 2, "bars": 1, "seed": 1,
                       "output": str(output)}, tmp_path)
    assert not Path(f"{output}.error").exists(), Path(f"{output}.error").read_text()
    request, answer = recorder.exchanges[0]
    assert not any(e["pitches"] for e in request["events"]["staves"][0])
    assert request["events"]["key"] == -1
    assert answer["events"]["key"] == -1
    sounding_score = read(output).toSoundingPitch()
    check_written(sounding_score.parts[0], Fraction(8), ["4/4"], None,
                  answer["events"]["staves"][0])


def test_starts_segue_when_none_runs_and_segue_stops_when_unused(tmp_path: Path) -> None:
    """No server runs. The plug-in, put in place by `segue install-plugins`, starts one from
    the program that command recorded, continues the selection with it, and that server
    (in its own session, so MuseScore's exit does not end it) stops once unused."""
    home = tmp_path / "home"
    (home / "Documents" / "MuseScore3").mkdir(parents=True)
    env = {"HOME": str(home), "SEGUE_HOME": str(home / ".segue"), "PYTHONPATH": str(ROOT),
           "XDG_CONFIG_HOME": str(home / ".config")}
    subprocess.run([sys.executable, "-m", "bridge", "install-plugins"], check=True,
                   env={**os.environ, **env}, stdout=subprocess.DEVNULL, timeout=120)
    plugin = home / "Documents" / "MuseScore3" / "Plugins" / "Segue.qml"
    assert (plugin.parent / "segue-launch.json").is_file()
    port = free_port()
    score = flats_in_three(tmp_path / "score.musicxml")
    output = tmp_path / "result.musicxml"
    run_plugin(score, {"server": f"http://127.0.0.1:{port}", "staff": 0, "first_measure": 1,
                       "last_measure": 2, "bars": 2, "seed": 4, "idle_exit": 0.05,
                       "output": str(output)}, tmp_path, plugin=plugin, env=env)
    assert not Path(f"{output}.error").exists(), Path(f"{output}.error").read_text()
    new_bars = list(read(output).parts[0].getElementsByClass("Measure"))[2:4]
    assert [Fraction(m.quarterLength) for m in new_bars] == [3, 3]
    assert all(m.notes for m in new_bars)
    log = wait_for_text(home / ".segue" / "serve.log", "segue serve: stopped", 120)
    assert f"--port {port} " in log and "--idle-exit 0.05" in log and "--no-osc" in log
    assert re.search(r"POST /v1/continue 200 .*form=events bars=2", log), log
    assert "unused for 0.05 minutes; stopping" in log
    assert health("127.0.0.1", port) is None


def test_no_server_changes_nothing(tmp_path: Path) -> None:
    score = flats_in_three(tmp_path / "score.musicxml")
    output = tmp_path / "result.musicxml"
    run_plugin(score, {"server": f"http://127.0.0.1:{free_port()}", "staff": 0,
                       "first_measure": 1, "last_measure": 2, "bars": 2,
                       "output": str(output)}, tmp_path)
    assert not output.exists()
    message = Path(f"{output}.error").read_text()
    assert "not running" in message and "segue serve" in message
    assert "segue install-plugins" in message   # this copy of the plug-in has no launch record


def test_bars_outside_the_score_are_refused(tmp_path: Path) -> None:
    score = flats_in_three(tmp_path / "score.musicxml")
    output = tmp_path / "result.musicxml"
    run_plugin(score, {"server": "http://127.0.0.1:9", "staff": 0, "first_measure": 3,
                       "last_measure": 9, "bars": 2, "output": str(output)}, tmp_path)
    assert not output.exists()
    assert "not in the score" in Path(f"{output}.error").read_text()


def test_plugin_header_and_musescore_4_api() -> None:
    """MuseScore 4.4 reads title and category from `//4.4` comments (MuseScore 3 refuses
    them as properties), and MuseScore 4 lacks writeScore/readScore/closeScore (and Qt.quit
    crashes it): those may appear only in the batch-mode function."""
    text = PLUGIN.read_text("utf-8")
    assert re.search(r"^\s*//4\.4 title: \"[^\"]+\"$", text, re.M)
    assert re.search(r"^\s*//4\.4 categoryCode: \"[^\"]+\"$", text, re.M)
    code = "\n".join(re.sub(r"(^|\s)//.*$", "", line) for line in text.splitlines())
    assert not re.search(r"^\s*(title|categoryCode|thumbnailName)\s*:", code, re.M)
    batch = function_body(code, "runBatch")
    rest = code.replace(batch, "")
    for name in ("writeScore", "readScore", "closeScore", "newQProcess"):
        assert not re.search(rf"\b{name}\s*\(", rest), name
    assert re.search(r"\bwriteScore\s*\(", batch)
    assert re.findall(r"Qt\.quit\(\)", code) == ["Qt.quit()"]          # the MuseScore 3 fallback
    assert 'typeof quit === "function"' in code


def function_body(code: str, name: str) -> str:
    start = code.index("{", code.index(f"function {name}("))
    depth = 0
    for index in range(start, len(code)):
        depth += {"{": 1, "}": -1}.get(code[index], 0)
        if depth == 0:
            return code[start:index + 1]
    raise AssertionError(f"function {name} never closes")
