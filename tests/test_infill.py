"""Infill and accompaniment with the shipped model, through the engine, `segue fill` and
`segue accompany`, POST /v1/fill and /v1/accompany, and OSC /segue/fill and /segue/accompany.

Every answer is the whole tune: bar-exact (abc2abc measures each bar, abc2midi reads it
without an error), the bars outside the gap (for a fill) and the given voices (for an
accompaniment) unchanged note for note.
"""

from __future__ import annotations

import json
import random
import shutil
import subprocess
import sys
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import pytest
from server_helpers import OscClient, abc2midi_errors, call, check_bars, running_server

from engine.abc.layout import Layout
from engine.abc.music import note_events, parse_abc
from engine.abc.windows import FILL_LINE, GAP_LINE, fill_example
from engine.abc.writer import write_abc
from engine.errors import SegueError
from engine.models.continuation import Engine, Sampling
from engine.models.infill import accompany_score, fill_plan, fill_score

SHIPPED = Path(__file__).resolve().parent.parent / "engine" / "checkpoints" / "segue-gpt2-6m"
JIG = ("X:1\nT:A Jig\nM:6/8\nL:1/8\nK:D\n"
       "A2d dcA|GBd c2A|A2d dcA|G3 G3|fed ecA|GBd c2A|A2d dcA|d3 d3|\n")
PICKUP = "X:1\nM:3/4\nL:1/8\nK:G\nD2|G2B2d2|g4 f2|e2c2A2|B6|G2B2d2|g6|\n"
DUET = ("X:1\nM:3/4\nL:1/8\nK:G\nV:1\nB2d2g2|f4 e2|B2d2g2|f4 e2|d2B2G2|A6|\n"
        "V:2\nG,4 D,2|D,6|G,4 D,2|D,6|G,2D,2B,,2|D,6|\n")


@pytest.fixture(scope="module")
def plain_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The shipped weights under a config that says what the first shipped model's said:
    Segue ABC v1 (no chord symbols), no fill-in-the-middle windows."""
    folder = tmp_path_factory.mktemp("models") / "plain"
    shutil.copytree(SHIPPED, folder)
    config = json.loads((folder / "config.json").read_text("utf-8"))
    config.pop("abc_language", None)
    config["training"]["config"]["fill"] = 0
    (folder / "config.json").write_text(json.dumps(config), "utf-8")
    return folder


@pytest.fixture(scope="module")
def plain(plain_model: Path) -> Engine:
    return Engine.load(str(plain_model), device="cpu")


@pytest.fixture(scope="module")
def shipped() -> Engine:
    return Engine.load(str(SHIPPED), device="cpu")


def bars_of(abc: str) -> list[list[str]]:
    """The music of each bar of each voice (bar lines aside)."""
    return [[bar.music for bar in voice] for voice in Layout.read(abc).voices]


def written(tune: str) -> str:
    """`tune` as Segue writes it (the form an answer keeps the bars it does not change in)."""
    return write_abc(parse_abc(tune))


def check_answer(abc: str, bars: int, *, known_chords_only: bool = True) -> None:
    """Bar-exact, and read by abc2midi without an error (`known_chords_only` False: save
    abc2midi's "Unrecognized chord name" for qualities of Segue's list it lacks, add9)."""
    check_bars(abc, bars)
    errors = [e for e in abc2midi_errors(abc)
              if known_chords_only or "Unrecognized chord name" not in e]
    assert not errors, abc


@pytest.mark.parametrize(("tune", "gap", "index", "total"), [
    (JIG, (3, 6), 2, 8), (JIG, (1, 1), 0, 8), (JIG, (8, 8), 7, 8), (DUET, (2, 3), 1, 6),
])
def test_fill_rewrites_the_gap_alone_bar_exactly(shipped: Engine, tune: str,
                                                 gap: tuple[int, int], index: int,
                                                 total: int) -> None:
    [result] = fill_score(shipped, parse_abc(tune), gap, Sampling(seed=1))
    check_answer(result.abc, total)
    length = gap[1] - gap[0] + 1
    before, after = bars_of(written(tune)), bars_of(result.abc)
    for old, new in zip(before, after, strict=True):
        assert old[:index] == new[:index] and old[index + length:] == new[index + length:]
    assert result.bars == length
    assert "T:A Jig" in result.abc or "T:" not in tune


def test_fill_numbers_a_pickup_bar_zero(shipped: Engine) -> None:
    [result] = fill_score(shipped, parse_abc(PICKUP), (2, 3), Sampling(seed=2))
    old, new = bars_of(written(PICKUP))[0], bars_of(result.abc)[0]
    assert new[:2] == old[:2] and new[4:] == old[4:] and new[2:4] != old[2:4]
    assert not abc2midi_errors(result.abc)


def test_fill_same_seed_same_music_and_variations_differ(shipped: Engine) -> None:
    score = parse_abc(JIG)
    [one] = fill_score(shipped, score, (2, 3), Sampling(seed=5))
    [again] = fill_score(shipped, score, (2, 3), Sampling(seed=5))
    takes = fill_score(shipped, score, (2, 3), Sampling(seed=5), variations=3)
    assert one.abc == again.abc == takes[0].abc
    assert len({take.abc for take in takes}) == 3


@pytest.mark.parametrize(("gap", "message"), [
    ((0, 2), "gap 0-2 is outside the score, whose bars are numbered 1-8"),
    ((7, 9), "gap 7-9 is outside"),
])
def test_fill_outside_the_score_names_the_gap(shipped: Engine, gap: tuple[int, int],
                                              message: str) -> None:
    with pytest.raises(SegueError, match=message):
        fill_score(shipped, parse_abc(JIG), gap)


def test_a_fill_trained_model_reads_the_training_fill_format(shipped: Engine) -> None:
    """The prompt is the start of the very example `engine.abc.windows.fill_example` trains on:
    head, bars before, `%%segue gap N`, bars after, `%%segue fill`; and the answer is exact."""
    trained = Engine.__new__(Engine)
    trained.__dict__.update(shipped.__dict__, fill_trained=True)
    tune = Layout.read(written(JIG))
    prompt, _, note = fill_plan(trained, tune, 2, 4, tune.fields_at(2))
    text = prompt.head + prompt.body
    assert GAP_LINE.format(bars=2) in text and text.endswith(FILL_LINE)
    assert note == ""  # eight bars of a jig fit the context
    rng = random.Random()
    examples = {fill_example(tune, 0, 8, rng) for _ in range(400)}
    assert any(e and e.startswith(text + "\n") for e in examples)
    [result] = fill_score(trained, parse_abc(JIG), (3, 4), Sampling(seed=4))
    check_answer(result.abc, 8)
    assert bars_of(result.abc)[0][4:] == bars_of(tune.write())[0][4:]


def test_fill_of_a_long_tune_says_what_the_model_read(shipped: Engine) -> None:
    body = JIG.split("K:D\n")[1].strip()
    long_tune = JIG.replace(body, body * 8)  # 64 bars: more than any shipped model reads
    [result] = fill_score(shipped, parse_abc(long_tune), (40, 43), Sampling(seed=3))
    check_answer(result.abc, 64)
    assert "bars before the gap" in result.note


def test_http_fill_says_what_the_model_read(server) -> None:
    body = JIG.split("K:D\n")[1].strip()
    status, answer = call(server.http_port, "POST", "/v1/fill",
                          {"abc": JIG.replace(body, body * 8), "gap": "40-43", "seed": 1})
    assert status == 200 and "bars before the gap" in answer["note"], answer


@pytest.mark.parametrize(("tune", "add", "voices"), [
    (JIG, "bass", 2), (JIG, "voice", 2), (DUET, "bass", 3),
])
def test_accompany_keeps_the_given_voices_note_for_note(shipped: Engine, tune: str, add: str,
                                                        voices: int) -> None:
    score = parse_abc(tune)
    [result] = accompany_score(shipped, score, add, Sampling(seed=6))
    check_answer(result.abc, len(Layout.read(tune).voices[0]))
    answer = parse_abc(result.abc)
    assert len(answer.parts) == voices
    assert note_events(answer)[:voices - 1] == note_events(score)
    name, clef = {"bass": ("Bass", "bass"), "voice": ("Voice", "treble")}[add]
    assert f'V:{voices} name="{name}" clef={clef}' in result.abc


def test_accompany_a_part_longer_than_the_context(shipped: Engine) -> None:
    body = JIG.split("K:D\n")[1].strip()
    score = parse_abc(JIG.replace(body, body * 8))  # 64 bars: more than any shipped model reads
    [result] = accompany_score(shipped, score, "bass", Sampling(seed=7))
    check_answer(result.abc, 64)
    assert note_events(parse_abc(result.abc))[:1] == note_events(score)
    assert "longer than the model's context" in result.note


def test_accompany_refuses_more_bars_than_it_writes_at_once(shipped: Engine) -> None:
    body = JIG.split("K:D\n")[1].strip()
    with pytest.raises(SegueError, match="the music is 72 bars; a part can be added to at "
                                         "most 64 bars"):
        accompany_score(shipped, parse_abc(JIG.replace(body, body * 9)), "bass")


def test_chords_need_a_model_trained_on_them(plain: Engine) -> None:
    with pytest.raises(SegueError, match="add=\"chords\" needs a model trained on chord"):
        accompany_score(plain, parse_abc(JIG), "chords")
    with pytest.raises(SegueError, match="add must be one of bass, voice, chords"):
        accompany_score(plain, parse_abc(JIG), "drums")


def test_chords_put_a_symbol_on_every_bar_and_keep_the_melody(shipped: Engine) -> None:
    """With a model that reads chord symbols (the shipped one, told it does: the grammar, not
    the weights, makes the symbols valid), each bar gets one and the notes stay."""
    chordal = Engine.__new__(Engine)
    chordal.__dict__.update(shipped.__dict__, chord_symbols=True)
    score = parse_abc(JIG)
    [result] = accompany_score(chordal, score, "chords", Sampling(seed=8))
    check_answer(result.abc, 8, known_chords_only=False)
    assert all(music.count('"') == 2 for music in bars_of(result.abc)[0])
    assert note_events(parse_abc(result.abc)) == note_events(score)


def run_segue(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "bridge", *args], capture_output=True,
                          text=True, timeout=300)


def test_segue_fill_and_accompany_commands(tmp_path: Path, plain_model: Path) -> None:
    tune = tmp_path / "jig.abc"
    tune.write_text(JIG)
    for model, trained in ((SHIPPED, True), (plain_model, False)):
        filled = run_segue("fill", str(tune), "--measures", "5-8", "--seed", "1",
                           "--model", str(model))
        assert filled.returncode == 0, filled.stderr
        assert ("trained without fill-in-the-middle windows" in filled.stderr) != trained
        check_answer(filled.stdout, 8)
        assert bars_of(filled.stdout)[0][:4] == bars_of(written(JIG))[0][:4]
    out = tmp_path / "duet.musicxml"
    added = run_segue("accompany", str(tune), "--add", "bass", "--seed", "2", "-o", str(out))
    assert added.returncode == 0, added.stderr
    from engine.abc.music import read_score

    duet = read_score(str(out))
    assert len(duet.parts) == 2 and note_events(duet)[:1] == note_events(parse_abc(JIG))


@pytest.mark.parametrize(("args", "message"), [
    (("fill", "{tune}", "--measures", "9-12"), "gap 9-12 is outside the score"),
    (("fill", "{tune}", "--measures", "3-x"), "--measures '3-x'"),
    (("accompany", "{tune}", "--add", "chords", "--model", "{plain}"),
     "needs a model trained on chord symbols"),
])
def test_commands_fail_in_one_line(tmp_path: Path, plain_model: Path, args: tuple[str, ...],
                                   message: str) -> None:
    tune = tmp_path / "jig.abc"
    tune.write_text(JIG)
    result = run_segue(*(a.format(tune=tune, plain=plain_model) for a in args))
    assert result.returncode == 1 and message in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) <= 2 and "Traceback" not in result.stderr


def test_help_teaches_by_example() -> None:
    for command, example in (("fill", "segue fill tune.abc --measures 9-12"),
                             ("accompany", "segue accompany melody.abc --add bass")):
        result = run_segue(command, "--help")
        assert result.returncode == 0 and example in result.stdout


@pytest.fixture(scope="module")
def server() -> Iterator:
    with running_server(SHIPPED, max_wait_s=300) as running:
        yield running


def test_http_fill_and_accompany(server) -> None:
    status, answer = call(server.http_port, "POST", "/v1/fill",
                          {"abc": JIG, "gap": [3, 4], "seed": 1})
    assert status == 200, answer
    check_answer(answer["abc"], 8)
    assert answer["bars"] == 2
    old = bars_of(written(JIG))[0]
    assert bars_of(answer["abc"])[0][:2] == old[:2] and bars_of(answer["abc"])[0][4:] == old[4:]
    status, answer = call(server.http_port, "POST", "/v1/accompany",
                          {"abc": JIG, "add": "voice", "seed": 2})
    assert status == 200, answer
    check_answer(answer["abc"], 8)
    assert note_events(parse_abc(answer["abc"]))[:1] == note_events(parse_abc(JIG))


def test_http_accompany_events_adds_a_staff(server) -> None:
    events = {"time_signature": "3/4", "key": 1, "staves": [[
        {"onset": f"{i}/4", "duration": "1/4", "pitches": [67 + i % 5]} for i in range(12)]]}
    status, answer = call(server.http_port, "POST", "/v1/accompany",
                          {"events": events, "add": "bass", "seed": 3})
    assert status == 200, answer
    staves = answer["events"]["staves"]
    assert len(staves) == 2
    assert [(Fraction(e["onset"]), e["pitches"]) for e in staves[0]] == \
        [(Fraction(e["onset"]), e["pitches"]) for e in events["staves"][0]]
    assert sum(Fraction(e["duration"]) for e in staves[1]) == 3


@pytest.mark.parametrize(("path", "body", "message"), [
    ("/v1/fill", {"abc": JIG}, "give \"gap\""),
    ("/v1/fill", {"abc": JIG, "gap": [4, 2]}, "gap must be [first, last]"),
    ("/v1/fill", {"abc": JIG, "gap": [3, 4], "bars": 2}, "bars does not apply"),
    ("/v1/fill", {"abc": JIG, "gap": [3, 4], "drafts": 2}, "drafts does not apply here"),
    ("/v1/fill", {"abc": JIG, "gap": [30, 40]}, "gap 30-40 is outside the score"),
    ("/v1/accompany", {"abc": JIG, "add": "drums"}, "add must be"),
    ("/v1/accompany", {"abc": JIG}, "give \"add\""),
    ("/v1/continue", {"abc": JIG, "gap": [1, 2]}, "unknown field 'gap'"),
])
def test_http_errors_name_the_field(server, path: str, body: dict, message: str) -> None:
    status, answer = call(server.http_port, "POST", path, body)
    assert 400 <= status < 500 and message in answer["error"]["message"], answer


def test_osc_fill_and_accompany(server) -> None:
    client = OscClient(server.osc_port, timeout=120)
    try:
        client.send("/segue/set/seed", 4)
        address, [abc] = client.ask("/segue/fill", JIG, 5, 6)
        assert address == "/segue/fill/abc"
        check_answer(abc, 8)
        address, notes = client.receive()
        assert address == "/segue/fill/notes" and len(notes) % 3 == 0 and notes
        address, [abc] = client.ask("/segue/accompany", JIG, "bass")
        assert address == "/segue/accompany/abc"
        check_answer(abc, 8)
        assert note_events(parse_abc(abc))[:1] == note_events(parse_abc(JIG))
        assert client.receive()[0] == "/segue/accompany/notes"
        address, [where, message] = client.ask("/segue/accompany", JIG, "drums")
        assert address == "/segue/error" and where == "/segue/accompany" and "bass" in message
    finally:
        client.send("/segue/set/seed", -1)
        client.close()
