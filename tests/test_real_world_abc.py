"""Real-world ABC (tests/data/abc, written by hand for these tests): every note and chord symbol
read and kept through conversion, voices with their names and clefs, lyrics dropped; each tune
continued bar-exactly in the meter and key in force at its end, and every answer accepted by
the reference tools abc2midi and abcm2ps without a message about bars or ties.

The model is conftest's tiny random GPT-2, told that it knows chord symbols: bar-exact decoding
must hold for any weights, so these tests check the grammar and the join, not the training.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from fractions import Fraction
from pathlib import Path

import pytest
from music21 import harmony, key, meter, stream
from server_helpers import check_bars

from engine.abc.music import chord_events, note_events, parse_abc, read_score
from engine.abc.writer import write_abc
from engine.models.continuation import Engine, Sampling

FIXTURES = Path(__file__).parent / "data" / "abc"
# What each fixture holds, counted by hand: note heads (chord notes each, tied notes twice,
# grace notes not), chord symbols, bar lengths of its meters in order, and its voices.
EXPECTED = {
    "additive_meter.abc": (27, 8, ["7/8"], [None]),
    "inline_fields.abc": (24, 10, ["3/4"], [None]),
    "interleaved_voices.abc": (31, 6, ["1"], ["Flute", "Cello"]),
    "lyrics.abc": (17, 8, ["1/2"], [None]),
    "meter_changes.abc": (23, 10, ["1", "3/4", "1/2", "3/4", "1"], [None]),
    "ornaments.abc": (47, 12, ["1"], [None]),
    "repeats_endings.abc": (66, 16, ["1"], [None]),
    "slur_as_tie.abc": (14, 5, ["3/4"], [None]),
    "staves.abc": (31, 6, ["3/4"], ["Right hand", "Left hand"]),
    "ties_chords.abc": (26, 8, ["3/4"], [None]),
}
NAMES = sorted(EXPECTED)
# abc2midi's chord table has no `add9` or `13`: it says so and plays the melody alone.
NOT_ABOUT_BARS_OR_TIES = ("Unrecognized chord name", "%MIDI chordname", "Line overfull",
                          "Line underfull", "Line too much shrunk", "Grace sequence exceeds",
                          "Different length notes in tuple")


def fixture(name: str) -> str:
    return (FIXTURES / name).read_text()


def heads(score) -> int:
    return sum(len(n.pitches) for n in score.recurse().notes
               if not isinstance(n, harmony.ChordSymbol) and not n.duration.isGrace)


def symbols(score) -> int:
    return sum(len(part) for part in chord_events(score))


def bar_lengths_of_meters(score) -> list[str]:
    lengths = [str(Fraction(ts.barDuration.quarterLength) / 4) for ts in
               score.parts[0].recurse().getElementsByClass(meter.TimeSignature)]
    return [x for i, x in enumerate(lengths) if i == 0 or x != lengths[i - 1]]


def reference_messages(abc: str) -> list[str]:
    """What abc2midi and abcm2ps (Debian abcmidi, abcm2ps) say about `abc`: every error and
    warning but those that are about neither bars nor ties (chord names, layout)."""
    with tempfile.TemporaryDirectory() as folder:
        source = Path(folder) / "tune.abc"
        source.write_text(abc)
        said = subprocess.run(["abc2midi", str(source), "-o", str(Path(folder) / "t.mid")],
                              capture_output=True, text=True, timeout=60)
        typeset = subprocess.run(["abcm2ps", str(source), "-O", str(Path(folder) / "t.ps")],
                                 capture_output=True, text=True, timeout=60)
        lines = (said.stdout + said.stderr + typeset.stdout + typeset.stderr).splitlines()
        missing = [] if (Path(folder) / "t.mid").exists() else ["abc2midi wrote no MIDI file"]
    return missing + [line for line in lines
                      if ("rror" in line or "arning" in line)
                      and not any(known in line for known in NOT_ABOUT_BARS_OR_TIES)]


@pytest.fixture(scope="module")
def chord_engine(tiny_engine: Engine) -> Engine:
    """The tiny model as one trained on Segue ABC v2 (chord symbols allowed)."""
    return Engine(tiny_engine.model, tiny_engine.tokenizer, block_size=tiny_engine.block_size,
                  name="tiny-v2", device="cpu", chord_symbols=True)


@pytest.mark.parametrize("name", NAMES)
def test_reader_keeps_every_note_chord_symbol_meter_and_voice(name: str):
    notes, chords, meters, voices = EXPECTED[name]
    score = parse_abc(fixture(name))
    assert heads(score) == notes
    assert symbols(score) == chords
    assert bar_lengths_of_meters(score) == meters
    assert [part.partName for part in score.parts] == voices


@pytest.mark.parametrize("name", NAMES)
def test_conversion_keeps_every_note_and_chord_symbol(name: str, tmp_path: Path):
    original = parse_abc(fixture(name))
    for suffix in (".abc", ".musicxml"):
        out = tmp_path / f"out{suffix}"
        done = subprocess.run([sys.executable, "-m", "bridge", "convert",
                               str(FIXTURES / name), str(out)], capture_output=True, text=True,
                              timeout=300)
        assert done.returncode == 0, done.stderr
        again = read_score(out)
        assert note_events(again) == note_events(original), suffix
        assert chord_events(again) == chord_events(original), suffix
    assert (tmp_path / "out.musicxml").read_text().count("<harmony") == EXPECTED[name][1]
    assert not reference_messages((tmp_path / "out.abc").read_text())


def test_lyrics_and_annotations_are_dropped_not_read_as_notes():
    text = write_abc(parse_abc(fixture("lyrics.abc")))
    assert "w:" not in text and "W:" not in text and "lark" not in text
    assert heads(parse_abc(text)) == EXPECTED["lyrics.abc"][0]


def test_a_tie_between_different_notes_is_dropped():
    text = write_abc(parse_abc(fixture("slur_as_tie.abc")))
    assert "-" not in text.split("K:", 1)[1]
    assert not reference_messages(text)


def test_two_voices_with_chords_and_a_meter_change_are_written_as_segue_abc_v2():
    abc = ("X:1\nT:Duet\nM:3/4\nL:1/8\nV:1 name=\"Violin\"\nV:2 name=\"Cello\" clef=bass\nK:G\n"
           "V:1\n\"G\"G2 B2 d2|\"D7\"c6|[M:2/4]\"G\"B4|z4|]\n"
           "V:2\nG,,6|D,6|[M:2/4]G,,4|z4|]\n")
    assert write_abc(parse_abc(abc)) == (
        "X:1\nT:Duet\nM:3/4\nL:1/8\n"
        'V:1 name="Violin" clef=treble\nV:2 name="Cello" clef=bass\nK:G\n'
        'V:1\n"G"G2 B2 d2 | "D7"c6 | [M:2/4] "G"B4 | Z |]\n'
        "V:2\nG,,6 | D,6 | [M:2/4] G,,4 | Z |]\n")


@pytest.mark.parametrize("name", NAMES)
def test_each_fixture_continues_bar_exactly_in_the_meter_and_key_at_its_end(
        chord_engine: Engine, name: str):
    prompt = parse_abc(fixture(name))
    bar = Fraction(EXPECTED[name][2][-1])
    last_key = prompt.parts[0].recurse().getElementsByClass(key.KeySignature).last().sharps
    for bars in (1, 4, 8):
        [result] = chord_engine.continue_score(prompt, bars, Sampling(seed=bars))
        check_bars(result.abc, bars)
        answer = parse_abc(result.abc)
        for part in answer.parts:
            lengths = [Fraction(m.duration.quarterLength) / 4
                       for m in part.getElementsByClass(stream.Measure)]
            assert lengths == [bar] * bars, (lengths, result.abc)
        assert answer.recurse().getElementsByClass(key.KeySignature).first().sharps == last_key
        assert len(answer.parts) == len(prompt.parts)
        for text in (result.abc, result.with_prompt):
            assert not reference_messages(text), (reference_messages(text), text)


def test_voice_names_and_clefs_reach_the_model_and_the_answer(chord_engine: Engine):
    [result] = chord_engine.continue_abc(fixture("staves.abc"), bars=4, sampling=Sampling(seed=1))
    head = 'V:1 name="Right hand" clef=treble\nV:2 name="Left hand" clef=bass\n'
    assert head in result.with_prompt and head in result.abc
    assert [p.partName for p in parse_abc(result.abc).parts] == ["Right hand", "Left hand"]


def test_a_prompt_that_ends_inside_a_bar_is_answered_by_completing_that_bar(
        chord_engine: Engine):
    prompt = "X:1\nM:3/4\nL:1/8\nK:D\nd2 f2 a2 | g2 e2 c2 | d2 |]\n"  # 2 of 6 eighths
    [result] = chord_engine.continue_abc(prompt, bars=2, sampling=Sampling(seed=5))
    answer = parse_abc(result.abc).parts[0].getElementsByClass(stream.Measure)
    assert [Fraction(m.duration.quarterLength) / 4 for m in answer] == [
        Fraction(1, 2), Fraction(3, 4), Fraction(3, 4)]
    whole = parse_abc(result.with_prompt).parts[0].getElementsByClass(stream.Measure)
    assert [Fraction(m.duration.quarterLength) / 4 for m in whole] == [Fraction(3, 4)] * 5
    assert not reference_messages(result.with_prompt), result.with_prompt


def test_answers_write_chord_symbols_only_for_a_model_trained_on_them(
        chord_engine: Engine, tiny_engine: Engine):
    prompt = fixture("meter_changes.abc")
    written = [symbols(parse_abc(r.abc)) for r in
               chord_engine.continue_abc(prompt, bars=8, sampling=Sampling(seed=2),
                                         variations=4)]
    assert sum(written) > 0  # a random model that may write them does, somewhere
    for result in tiny_engine.continue_abc(prompt, bars=8, sampling=Sampling(seed=2),
                                           variations=4):
        assert '"' not in result.with_prompt
        assert symbols(parse_abc(result.abc)) == 0


def test_cli_says_once_that_the_model_writes_no_chord_symbols(model_path: Path):
    done = subprocess.run([sys.executable, "-m", "bridge", "continue",
                           str(FIXTURES / "meter_changes.abc"), "--bars", "2", "--seed", "1",
                           "--variations", "2", "--model", str(model_path)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stderr.count("no chord symbols") == 1, done.stderr
    assert "10 chord symbols" in done.stderr


def test_events_keep_tuplets_other_than_triplets_exactly():
    from engine.abc.events import events_to_score, score_to_events

    quintuplet = [(Fraction(i, 20), Fraction(1, 20), 60 + i) for i in range(5)]
    septuplet = [(Fraction(7 + i, 28), Fraction(1, 28), 70 + i) for i in range(7)]
    events = {"time_signature": "2/4", "staves": [[
        {"onset": f"{onset}", "duration": f"{length}", "pitches": [pitch]}
        for onset, length, pitch in quintuplet + septuplet]]}
    abc = write_abc(events_to_score(events))
    assert "(5:4C^CD_E=E (7:4_B=B=c^cd_e=e |]" in abc
    back = score_to_events(parse_abc(abc))["staves"][0]
    assert [(Fraction(e["onset"]), Fraction(e["duration"]), *e["pitches"]) for e in back] == \
        quintuplet + septuplet


def test_events_carry_chord_symbols_both_ways():
    from engine.abc.events import events_to_score, score_to_events
    from engine.errors import SegueError

    events = {"time_signature": "3/4", "key": 1, "staves": [[
        {"onset": "0", "duration": "3/4", "pitches": [67]},
        {"onset": "3/4", "duration": "3/4", "pitches": [66]}]],
        "chords": [{"staff": 0, "onset": "0", "symbol": "G"},
                   {"staff": 0, "onset": "1/2", "symbol": "Em7"},  # inside the held G
                   {"staff": 0, "onset": "3/4", "symbol": "D/F#"}]}
    score = events_to_score(events)
    assert '"G"G4- "Em7"G2 | "D/F#"F6' in write_abc(score)
    assert score_to_events(score)["chords"] == [
        {"staff": 0, "onset": "0/1", "symbol": "G"}, {"staff": 0, "onset": "1/2", "symbol": "Em7"},
        {"staff": 0, "onset": "3/4", "symbol": "D/F#"}]
    read = score_to_events(parse_abc(fixture("staves.abc")))
    assert [c["symbol"] for c in read["chords"]] == ["F", "C7", "F", "Bb", "C7", "F"]
    assert [c["onset"] for c in read["chords"]][:2] == ["0/1", "3/4"]
    for bad in ([{"staff": 0, "onset": "0", "symbol": "Gmaj13#11"}],
                [{"staff": 3, "onset": "0", "symbol": "G"}], "G"):
        with pytest.raises(SegueError):
            events_to_score({**events, "chords": bad})
