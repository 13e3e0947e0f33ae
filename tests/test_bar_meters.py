"""Continuing into bars in another meter (`bar_meters`): each new bar bar-exact in its own
meter, an inline `[M:]` field where the meter changes, through the engine and over HTTP.

A host such as the MuseScore plug-in may fill bars that exist already, in another meter than
the selection (MuseScore's demo score "Reunion" turns from 4/4 to 3/4). Bars are measured by
abc2abc (a reader not ours) and by music21 after `Continuation.score()`.
"""

from __future__ import annotations

import subprocess
import tempfile
from collections.abc import Iterator
from fractions import Fraction
from typing import Any

import pytest
from server_helpers import bar_lines, call, running_server

from engine.abc.music import parse_abc
from engine.errors import SegueError
from engine.models.continuation import Engine, Sampling, plan_segments

FOUR_FOUR = "X:1\nM:4/4\nL:1/8\nK:G\nGABc d2B2|c2A2 B2G2|\n"
TWO_VOICES = "X:1\nM:3/4\nL:1/8\nK:G\nV:1\nB2d2g2|f4 e2|\nV:2\nG,4 D,2|D,6|\n"


def abc2abc_report(abc: str) -> str:
    """What abc2abc (Debian abcmidi) says about a tune: `Bar N is x/y not ...` for a bar that
    is not as long as the meter in force, inline fields included."""
    with tempfile.NamedTemporaryFile("w", suffix=".abc") as file:
        file.write(abc)
        file.flush()
        result = subprocess.run(["abc2abc", file.name], capture_output=True, text=True,
                                check=True, timeout=30)
    return result.stdout + result.stderr


def bar_lengths(score) -> list[list[tuple[Fraction, str | None]]]:
    """(length in whole notes, time signature where one is set) of each bar of each part."""
    return [[(Fraction(m.quarterLength) / 4,
              m.timeSignature.ratioString if m.timeSignature else None)
             for m in part.getElementsByClass("Measure")] for part in score.parts]


def test_plan_forces_a_meter_field_where_the_meter_changes() -> None:
    plan = plan_segments(["3/4", "3/4", "4/4", "3/4"], 1, "4/4")
    assert [(s.text, s.in_answer, s.bars, s.meter) for s in plan] == [
        ("[M:3/4]", False, 0, ""), ("", True, 2, "3/4"),
        ("[M:4/4]", True, 0, ""), ("", True, 1, "4/4"),
        ("[M:3/4]", True, 0, ""), ("", True, 1, "3/4")]
    assert all(not s.text.startswith("[M:") for s in plan_segments(["4/4"] * 9, 2, "4/4"))


def test_each_bar_is_written_in_its_own_meter(tiny_engine: Engine) -> None:
    meters = ["3/4", "3/4", "4/4", "4/4", "4/4"]
    [result] = tiny_engine.continue_abc(FOUR_FOUR, bars=5, sampling=Sampling(seed=3),
                                        meters=["3/4", "3/4", "4/4"])
    assert result.meters == meters
    assert result.abc.split("\n")[1] == "M:3/4"          # the first new bar's meter
    assert result.abc.count("[M:") == 1 and "[M:4/4]" in result.abc
    assert "Bar" not in abc2abc_report(result.abc), result.abc
    assert "Bar" not in abc2abc_report(result.with_prompt), result.with_prompt
    assert "[M:3/4]" in result.with_prompt              # the prompt's bars stay 4/4
    assert bar_lines(result.abc) == {"1": 5}
    assert bar_lengths(result.score()) == [[(Fraction(3, 4), "3/4"), (Fraction(3, 4), None),
                                            (Fraction(1), "4/4"), (Fraction(1), None),
                                            (Fraction(1), None)]]


def test_every_voice_changes_meter_with_the_bars(tiny_engine: Engine) -> None:
    [result] = tiny_engine.continue_abc(TWO_VOICES, bars=6, sampling=Sampling(seed=5),
                                        meters=["2/4", "2/4", "2/4", "2/4", "3/4"])
    assert "Bar" not in abc2abc_report(result.abc), result.abc
    assert bar_lines(result.abc) == {"1": 6, "2": 6}
    expected = [(Fraction(1, 2), "2/4")] + [(Fraction(1, 2), None)] * 3 + \
        [(Fraction(3, 4), "3/4"), (Fraction(3, 4), None)]
    assert bar_lengths(result.score()) == [expected, expected]


def test_the_same_meter_throughout_is_the_prompts(tiny_engine: Engine) -> None:
    [given] = tiny_engine.continue_abc(FOUR_FOUR, bars=2, sampling=Sampling(seed=9),
                                       meters=["4/4"])
    [plain] = tiny_engine.continue_abc(FOUR_FOUR, bars=2, sampling=Sampling(seed=9))
    assert given.abc == plain.abc and "[M:" not in given.abc


@pytest.mark.parametrize(("meters", "message"), [
    (["3/4", "3/4", "3/4"], "names 3 bars"),
    (["3/x"], "not a meter"),
])
def test_impossible_meters_are_refused(tiny_engine: Engine, meters: list[str],
                                       message: str) -> None:
    with pytest.raises(SegueError, match=message):
        tiny_engine.continue_score(parse_abc(FOUR_FOUR), bars=2, meters=meters)


@pytest.fixture(scope="module")
def port(model_path) -> Iterator[int]:
    with running_server(model_path) as server:
        yield server.http_port


def events_request(**extra: Any) -> dict[str, Any]:
    return {"bars": 4, "seed": 2, "events": {"time_signature": "4/4", "key": 1, "staves": [[
        {"onset": "0", "duration": "1/2", "pitches": [67]},
        {"onset": "1/2", "duration": "1/2", "pitches": [71, 74]},
        {"onset": "1", "duration": "1", "pitches": [62]}]]}, **extra}


def test_http_events_answer_fills_each_bar_in_its_meter(port: int) -> None:
    status, answer = call(port, "POST", "/v1/continue",
                          events_request(bar_meters=["3/4", "3/4", "6/8"]))
    assert status == 200, answer
    events = answer["events"]
    assert events["bar_meters"] == ["3/4", "3/4", "6/8", "6/8"]
    assert events["time_signature"] == "3/4"
    ends = {}
    for event in events["staves"][0]:
        ends[event["voice"]] = Fraction(event["onset"]) + Fraction(event["duration"])
    assert set(ends.values()) == {Fraction(3, 4) * 4}
    assert "Bar" not in abc2abc_report(answer["abc"]), answer["abc"]
    assert "[M:6/8]" in answer["abc"]


def test_http_without_bar_meters_answers_as_before(port: int) -> None:
    status, answer = call(port, "POST", "/v1/continue", events_request())
    assert status == 200 and "bar_meters" not in answer["events"]


@pytest.mark.parametrize(("bar_meters", "message"), [
    ("3/4", "must be a list"),
    ([], "must be a list"),
    (["3/4"] * 5, "names 5 bars, but bars is 4"),
    (["3/4", "7/5"], "bar_meters[1] '7/5' is not a meter"),
    (["3/4", 3], "bar_meters[1] must be written like"),
])
def test_http_bad_bar_meters_are_400(port: int, bar_meters: Any, message: str) -> None:
    status, answer = call(port, "POST", "/v1/continue", events_request(bar_meters=bar_meters))
    assert status == 400 and answer["error"]["code"] == "bad_request"
    assert message in answer["error"]["message"]
