"""The MuseScore plug-in under Qt 6's own QML engine, as MuseScore 4 runs it (no MuseScore 4 can
be installed here: Debian has MuseScore 2 and 3 only, and no registry we reach has 4).

Debian's `qml` runtime loads plugins/musescore/Segue.qml, offscreen, against stand-in
`MuseScore 3.0` and `FileIO 3.0` modules (tests/qt6/) whose surface follows MuseScore 4's
plug-in API headers (src/engraving/api/v1/, src/framework/extensions/api/v1/) and nothing more,
with Qt.labs.settings out of reach as in MuseScore 4 (tests/qt6_runtime.py). A driver inside the
stand-in plays the musician: Continue, wait, Close. The plug-in talks to a real `segue serve`
(the tiny model of conftest.py) through a recording proxy. The stand-ins record every call, so
the tests check the MuseScore 4 branches (addRest, addTuplet, addNote(pitch, true), reading
ties with tieForward, startWithArgs) and what they wrote.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest
import qt6_runtime
from musescore_helpers import Recorder, free_port, recording

from bridge.launch import health

ROOT = Path(__file__).resolve().parents[1]
PLUGIN = ROOT / "plugins" / "musescore" / "Segue.qml"
WHOLE = 1920  # ticks

pytestmark = pytest.mark.skipif(not qt6_runtime.available(),
                                reason="needs Qt 6's QML runtime: Debian qml-qt6, "
                                       "qml6-module-qtquick, qt6-declarative-dev-tools")


# ----------------------------------------------------------------------- scores

def element(track: int, tick: int, duration: tuple[int, int], pitches: tuple[int, ...] = (),
            tpcs: tuple[int, ...] = (), tie: bool = False, ticks: int | None = None,
            tuplet: int | None = None) -> dict[str, Any]:
    return {"track": track, "tick": tick, "duration": list(duration),
            "ticks": ticks if ticks is not None else duration[0] * WHOLE // duration[1],
            "pitches": list(pitches), "tpcs": list(tpcs), "tie": tie, "tuplet": tuplet}


# Staff 0: E-flat major, 4/4; bars 1-4 hold chords, rests, ties (one across a bar line) and a
# triplet; bars 5-6 hold what the continuation replaces; chord symbols in bars 1, 3 and 5.
MELODY = [
    element(0, 0, (1, 4), (63,), (11,)),
    element(0, 480, (1, 4), (67, 70), (15, 12), tie=True),
    element(0, 960, (1, 4), (67, 70), (15, 12)),
    element(0, 1440, (1, 4)),
    element(0, 1920, (1, 8), (67,), (15,), ticks=160, tuplet=1),
    element(0, 2080, (1, 8), (68,), (10,), ticks=160, tuplet=1),
    element(0, 2240, (1, 8), (70,), (12,), ticks=160, tuplet=1),
    element(0, 2400, (1, 4), (72,), (14,)),
    element(0, 2880, (1, 2), (74,), (16,)),
    element(0, 3840, (1, 4)),
    element(0, 4320, (1, 4), (65,), (13,)),
    element(0, 4800, (1, 2), (75,), (11,), tie=True),
    element(0, 5760, (1, 4), (75,), (11,)),
    element(0, 6240, (1, 4)),
    element(0, 6720, (1, 2), (63, 67, 70), (11, 15, 12)),
    element(0, 7680, (1, 1), (60,), (14,)),
    element(0, 9600, (1, 1), (62,), (16,)),
]
MELODY_EVENTS = [  # what the plug-in must read from bars 1-4 (onset, duration, pitches, tie)
    ("0/1", "1/4", [63], False), ("1/4", "1/4", [67, 70], True), ("1/2", "1/4", [67, 70], False),
    ("3/4", "1/4", [], False), ("1/1", "1/12", [67], False), ("13/12", "1/12", [68], False),
    ("7/6", "1/12", [70], False), ("5/4", "1/4", [72], False), ("3/2", "1/2", [74], False),
    ("2/1", "1/4", [], False), ("9/4", "1/4", [65], False), ("5/2", "1/2", [75], True),
    ("3/1", "1/4", [75], False), ("13/4", "1/4", [], False), ("7/2", "1/2", [63, 67, 70], False),
]
# Staff 1: a B-flat clarinet (written a tone up: tpc2 = tpc1 + 2, key F written), two voices.
CLARINET = [
    element(4, 0, (1, 2), (58,), (12,)), element(4, 960, (1, 2)),
    element(4, 1920, (1, 1), (63,), (11,)),
    element(4, 3840, (1, 1), (58,), (12,)),
    element(5, 3840, (1, 2), (51,), (11,)), element(5, 4800, (1, 2), (50,), (16,)),
    element(4, 5760, (1, 1), (63,), (11,)),
    element(4, 7680, (1, 1)), element(4, 9600, (1, 1)),
]
CLARINET_EVENTS = [
    ("0/1", "1/2", [58], False, 0), ("1/2", "1/2", [], False, 0), ("1/1", "1/1", [63], False, 0),
    ("2/1", "1/1", [58], False, 0), ("3/1", "1/1", [63], False, 0),
    ("2/1", "1/2", [51], False, 1), ("5/2", "1/2", [50], False, 1),
]


def score(staves: int) -> dict[str, Any]:
    elements = MELODY + (CLARINET if staves == 2 else [])
    return {"name": f"{staves} staves", "measures": [{"nominal": [4, 4], "actual": [4, 4]}] * 6,
            "staves": [{"key": -3, "shift": 0}, {"key": -1, "shift": 2}][:staves],
            "elements": elements,
            "tuplets": [{"id": 1, "track": 0, "tick": 1920, "ticks": 480, "ratio": [3, 2]}],
            "harmonies": [{"tick": 0, "track": 0, "text": "Eb"},
                          {"tick": 3840, "track": 0, "text": "Cm7"},
                          {"tick": 7680, "track": 0, "text": "Ab"}],
            "selection": {"startTick": 0, "endTick": 7680, "startStaff": 0, "endStaff": staves}}


def fixture(staves: int, server: str, **script: Any) -> dict[str, Any]:
    return {"score": score(staves),
            "settings": {"Segue": {"bars": 4, "temperature": 1.0, "seed": "11", "server": server}},
            "script": {"click": True, "close": True, **script}}


# ------------------------------------------------------------------------ checks

def calls(report: dict[str, Any], name: str) -> list[list[Any]]:
    return [c["args"] for c in report["calls"] if c["call"] == name]


def no_qml_errors(stderr: str) -> None:
    """Qt prints QML errors (a missing function, a bad type) and goes on: none may appear."""
    problems = [line for line in stderr.splitlines()
                if re.search(r"Segue\.qml|Error|TypeError|ReferenceError|is not", line)]
    assert not problems, "\n".join(problems)


def check_read(request: dict[str, Any], staves: int) -> None:
    """The plug-in read bars 1-4 as they are: notes, chords, rests, the triplet, the ties
    (by tieForward), chord symbols, the concert key, and the meters of the bars it fills."""
    events = request["events"]
    assert events["time_signature"] == "4/4" and events["key"] == -3
    assert request["bar_meters"] == ["4/4"] * 4
    got = [(e["onset"], e["duration"], e["pitches"], e["tie"]) for e in events["staves"][0]]
    assert got == MELODY_EVENTS
    if staves == 2:
        got = [(e["onset"], e["duration"], e["pitches"], e["tie"], e["voice"])
               for e in events["staves"][1]]
        assert got == CLARINET_EVENTS
    assert events["chords"] == [{"staff": 0, "onset": "0/1", "symbol": "Eb"},
                                {"staff": 0, "onset": "2/1", "symbol": "Cm7"}]


def valid_tpc(tpc: int) -> int:
    while tpc > 33:
        tpc -= 12
    while tpc < -1:
        tpc += 12
    return tpc


def check_written(report: dict[str, Any], answer: dict[str, Any], staves: int) -> None:
    """Every event of the answer sounds in the new bars (from tick 7680) of its staff and
    voice, as written: its pitches spelled as the server spelled them (tpc1, and tpc2 within
    -1..33 a transposition away), rests as rests, tuplet notes in a tuplet at their exact
    onset; bars 5-6 are replaced and bars 7-8 added."""
    dump = report["score"]
    assert [m["tick"] for m in dump["measures"]] == [i * WHOLE for i in range(8)]
    shifts = [0, 2][:staves]
    for staff, events in enumerate(answer["events"]["staves"]):
        for event in events:
            onset = Fraction(event["onset"]) * WHOLE + 4 * WHOLE
            track = 4 * staff + event["voice"]
            [found] = [e for e in dump["elements"] if e["track"] == track and
                       e["tick"] <= onset < e["tick"] + e["ticks"]]
            assert sorted(found["pitches"]) == sorted(event["pitches"]), (event, found)
            for pitch, spelled in zip(event["pitches"], event["tpcs"], strict=True):
                tpc1 = found["tpc1"][found["pitches"].index(pitch)]
                tpc2 = found["tpc2"][found["pitches"].index(pitch)]
                assert tpc1 == spelled and tpc2 == valid_tpc(spelled + shifts[staff])
                assert -1 <= tpc2 <= 33
            if onset.denominator > 1 or (Fraction(event["duration"]) * WHOLE).denominator > 1 \
                    or Fraction(event["duration"]).denominator % 3 == 0:
                assert found["tuplet"] and found["tick"] == onset, (event, found)


# ------------------------------------------------------------------------ runs

@pytest.fixture(scope="module")
def runtime(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return qt6_runtime.make_runtime(tmp_path_factory.mktemp("qt6"))


@pytest.fixture
def recorder(tiny_url: str) -> Iterator[Recorder]:
    with recording(tiny_url) as proxy:
        yield proxy


def test_qt_labs_settings_is_out_of_reach(runtime: Path, tmp_path: Path) -> None:
    """As in MuseScore 4, whatever Debian has installed: a plug-in importing it fails."""
    probe = tmp_path / "Probe.qml"
    probe.write_text("import QtQuick 2.9\nimport Qt.labs.settings 1.0\n"
                     "Item { Component.onCompleted: Qt.quit() }\n")
    result = subprocess.run([str(runtime), str(probe)], capture_output=True, text=True,
                            timeout=60, env={**os.environ, "QT_QPA_PLATFORM": "offscreen"})
    assert 'module "Qt.labs.settings" is not installed' in result.stderr
    assert result.returncode != 0


def test_qmllint_finds_every_import_type_and_property(runtime: Path) -> None:
    """qmllint (Qt 6.4, Debian 12) warns about nothing in the plug-in but two things it gets
    wrong itself: XMLHttpRequest, a global of every QML engine it does not know, and `push` on
    an array literal, which its type propagation takes for void*."""
    warnings = qt6_runtime.lint_warnings(PLUGIN, runtime.parent.parent / "imports")
    known = (r'Property "push" not found on type "void\*"',)
    real = [w for w in warnings if not any(re.fullmatch(k, w["message"]) for k in known)
            and not (w["message"] == "Unqualified access" and "XMLHttpRequest" in w["code"])]
    assert not real, real


def test_qmllint_fails_on_the_plugin_before_this_check(runtime: Path, tmp_path: Path) -> None:
    """What this check found: the plug-in of MuseScore 3 days imported Qt.labs.settings."""
    old = tmp_path / "Segue.qml"
    old.write_text(PLUGIN.read_text("utf-8").replace(
        "import MuseScore 3.0\n", "import Qt.labs.settings 1.0\nimport MuseScore 3.0\n", 1))
    messages = [w["message"] for w in qt6_runtime.lint_warnings(old, runtime.parent.parent /
                                                                 "imports")]
    assert "Failed to import Qt.labs.settings. Are your import paths set up properly?" in messages


@pytest.mark.parametrize("staves", [1, 2], ids=["one-staff", "two-staves"])
def test_continues_on_the_musescore_4_branches(staves: int, runtime: Path, recorder: Recorder,
                                               tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{recorder.server_port}"

    def every_branch(answer: dict[str, Any]) -> None:
        """The answer's first bar made a rest, a chord, a triplet and a half note, so every
        writing branch runs whatever the model wrote; with two staves, a spelling whose
        transposed tpc2 would be 35 (MuseScore 4 would keep it)."""
        staff = [e for e in answer["events"]["staves"][0] if Fraction(e["onset"]) >= 1]
        bar = [("0", "1/8", [], []), ("1/8", "1/8", [60, 63], [14, 11]),
               ("1/4", "1/12", [67], [15]), ("1/3", "1/12", [65], [13]),
               ("5/12", "1/12", [63], [11]), ("1/2", "1/2", [62], [16])]
        answer["events"]["staves"][0] = [
            {"onset": onset, "duration": length, "pitches": pitches, "tpcs": tpcs,
             "tie": False, "voice": 0} for onset, length, pitches, tpcs in bar] + staff
        if staves == 2:
            first = answer["events"]["staves"][1][0]
            first.update(pitches=[61], tpcs=[33])          # C-sharp spelled B-double-sharp
    recorder.edit = every_branch
    report, stderr = qt6_runtime.run_plugin(runtime, PLUGIN, fixture(staves, url), tmp_path)
    no_qml_errors(stderr)
    assert report["reason"] == "closed", report
    assert "Added 4 bars after bar 4. Edit > Undo takes them back." in report["texts"]
    [(request, answer)] = recorder.exchanges
    check_read(request, staves)
    check_written(report, answer, staves)
    events = [e for staff in answer["events"]["staves"] for e in staff]
    assert any(not e["pitches"] for e in events) and calls(report, "Cursor.addRest")
    assert any(len(e["pitches"]) > 1 for e in events)
    assert any(args[1:] == [True] for args in calls(report, "Cursor.addNote"))
    assert any(Fraction(e["onset"]).denominator % 3 == 0 for e in events)
    assert calls(report, "Cursor.addTuplet")
    assert calls(report, "Score.startCmd") == [[]] and calls(report, "Score.endCmd") == [[False]]
    assert calls(report, "Score.appendMeasures") == [[2]]
    for absent in ("Chord.add", "writeScore", "newQProcess", "QProcess.start",
                   "QProcess.startWithArgs"):
        assert not calls(report, absent), absent           # MuseScore 3 fallbacks, batch mode
    assert calls(report, "quit") == [[]]                    # Close: quit(), never Qt.quit()
    assert {"bars": 4, "seed": "11", "server": url}.items() <= report["settings"][0].items()


def test_fills_on_the_musescore_4_branches(runtime: Path, shipped_url: str,
                                           tmp_path: Path) -> None:
    """Fill, with the shipped model: bars 5-6 selected go to /v1/fill with the four bars
    before them and the gap; the answer's gap is written over bars 5-6 in one command,
    appending nothing. (Bars 5-6 hold no tuplet: the stand-in does not write over one;
    whether MuseScore 4 does is untested.)"""
    with recording(shipped_url) as recorder:
        url = f"http://127.0.0.1:{recorder.server_port}"
        job = fixture(1, url, button="Fill")
        job["score"]["selection"] = {"startTick": 7680, "endTick": 11520, "startStaff": 0,
                                     "endStaff": 1}
        report, stderr = qt6_runtime.run_plugin(runtime, PLUGIN, job, tmp_path)
        no_qml_errors(stderr)
        assert report["reason"] == "closed", report
        assert "Wrote bars 5-6 anew. Edit > Undo takes them back." in report["texts"], \
            report["texts"]
        [(request, answer)] = recorder.exchanges
        assert request["gap"] == [5, 6] and "bars" not in request and "error" not in answer
        assert request["events"]["time_signature"] == "4/4" and request["events"]["key"] == -3
        assert calls(report, "Score.startCmd") == [[]]
        assert calls(report, "Score.endCmd") == [[False]]
        assert not calls(report, "Score.appendMeasures")
        assert calls(report, "Cursor.addNote") or calls(report, "Cursor.addRest")


def melody_and_empty_staff() -> dict[str, Any]:
    """The one-staff score with a second staff of whole rests below it."""
    spec = score(1)
    spec["staves"] = [{"key": -3, "shift": 0}, {"key": -3, "shift": 0}]
    spec["elements"] = MELODY + [element(4, bar * WHOLE, (1, 1)) for bar in range(6)]
    return spec


def test_adds_a_bass_into_the_empty_staff(runtime: Path, shipped_url: str,
                                          tmp_path: Path) -> None:
    """Add part, with the shipped model: bars 1-4 of the melody go to /v1/accompany; the
    answer's new part is written into staff 2 (empty there) in one command; the melody stays
    as it was."""
    with recording(shipped_url) as recorder:
        url = f"http://127.0.0.1:{recorder.server_port}"
        job = fixture(1, url, button="Add part")
        job["score"] = melody_and_empty_staff()
        job["settings"]["Segue"].update(part="bass", into="2")
        report, stderr = qt6_runtime.run_plugin(runtime, PLUGIN, job, tmp_path)
        no_qml_errors(stderr)
        assert report["reason"] == "closed", report
        assert "Wrote a bass line into staff 2, bars 1-4. Edit > Undo takes it back." in \
            report["texts"], report["texts"]
        [(request, answer)] = recorder.exchanges
        assert request["add"] == "bass" and "bars" not in request
        assert [(e["onset"], e["duration"], e["pitches"], e["tie"])
                for e in request["events"]["staves"][0]] == MELODY_EVENTS
        assert len(request["events"]["staves"]) == 1
        assert calls(report, "Score.startCmd") == [[]]
        assert calls(report, "Score.endCmd") == [[False]]
        assert not calls(report, "Score.appendMeasures")
        dump = report["score"]["elements"]
        melody = [e for e in dump if e["track"] == 0]
        assert [(e["tick"], e["pitches"]) for e in melody] == \
            [(e["tick"], e["pitches"]) for e in MELODY]
        [bass] = answer["events"]["staves"][1:]
        assert any(e["pitches"] for e in bass)
        for event in bass:
            onset = Fraction(event["onset"]) * WHOLE
            [found] = [e for e in dump if e["track"] == 4 + event["voice"]
                       and e["tick"] <= onset < e["tick"] + e["ticks"]]
            assert sorted(found["pitches"]) == sorted(event["pitches"]), (event, found)
        assert [e for e in dump if e["track"] == 4 and e["tick"] >= 4 * WHOLE] == \
            [{"track": 4, "tick": bar * WHOLE, "ticks": WHOLE, "duration": [1, 1], "pitches": [],
              "tpc1": [], "tpc2": [], "tie": False, "tuplet": None} for bar in (4, 5)]


def test_adds_chord_symbols_above_the_melody(runtime: Path, shipped_url: str,
                                             tmp_path: Path) -> None:
    """Add part with Chords, on the shipped model: the answer's chord symbols replace those
    of bars 1-4 above the melody, each on a note or rest of it; bar 5's symbol and every
    note stay as they were."""
    with recording(shipped_url) as recorder:
        job = fixture(1, f"http://127.0.0.1:{recorder.server_port}", button="Add part")
        job["settings"]["Segue"].update(part="chords")
        report, stderr = qt6_runtime.run_plugin(runtime, PLUGIN, job, tmp_path)
    no_qml_errors(stderr)
    assert "Wrote chord symbols above bars 1-4. Edit > Undo takes it back." in report["texts"], \
        report["texts"]
    [(request, answer)] = recorder.exchanges
    assert request["add"] == "chords"
    starts = {e["tick"] for e in MELODY}
    sent = [(Fraction(c["onset"]) * WHOLE, c["symbol"]) for c in answer["events"]["chords"]
            if c["staff"] == 0 and Fraction(c["onset"]) < 4]
    assert sent and all(tick in starts for tick, _ in sent)
    assert sorted((h["tick"], h["text"]) for h in report["score"]["harmonies"]) == \
        sorted([(int(tick), symbol) for tick, symbol in sent] + [(7680, "Ab")])
    assert [(e["tick"], e["pitches"]) for e in report["score"]["elements"]] == \
        [(e["tick"], e["pitches"]) for e in MELODY]


@pytest.mark.parametrize(("into", "message"), [
    ("", "Staff 2 has notes in bars 1-4, and Add part writes only into an empty staff."),
    ("1", "Staff 1 is selected: its notes are what the new part goes with."),
    ("3", "There is no staff 3 to write the new part into (the score has 2)."),
])
def test_add_part_writes_only_into_an_empty_staff(into: str, message: str, runtime: Path,
                                                  recorder: Recorder, tmp_path: Path) -> None:
    """A staff with notes in the selected bars, a selected staff, or one the score lacks:
    the dialog says so, asks the server nothing and writes nothing."""
    job = fixture(2, f"http://127.0.0.1:{recorder.server_port}", button="Add part")
    job["score"]["selection"]["endStaff"] = 1
    job["settings"]["Segue"].update(part="voice", into=into)
    report, stderr = qt6_runtime.run_plugin(runtime, PLUGIN, job, tmp_path)
    no_qml_errors(stderr)
    assert any(t.startswith(message) for t in report["texts"]), report["texts"]
    assert not recorder.exchanges and not calls(report, "Score.startCmd")


def test_the_model_field_names_the_model(runtime: Path, recorder: Recorder,
                                         tmp_path: Path) -> None:
    """The Model field goes to the server by name and is kept for the next run: a model the
    server does not have comes back as the server's message, and nothing is written."""
    job = fixture(1, f"http://127.0.0.1:{recorder.server_port}")
    job["settings"]["Segue"].update(model="no-such-model")
    report, stderr = qt6_runtime.run_plugin(runtime, PLUGIN, job, tmp_path)
    no_qml_errors(stderr)
    [(request, answer)] = recorder.exchanges
    assert request["model"] == "no-such-model"
    assert answer["error"]["code"] == "unknown_model"
    assert any("no-such-model" in t for t in report["texts"]), report["texts"]
    assert not calls(report, "Score.startCmd")
    assert report["settings"][0]["model"] == "no-such-model"


def test_a_model_name_with_a_path_in_it_is_refused(runtime: Path, recorder: Recorder,
                                                   tmp_path: Path) -> None:
    job = fixture(1, f"http://127.0.0.1:{recorder.server_port}")
    job["settings"]["Segue"].update(model="../elsewhere")
    report, stderr = qt6_runtime.run_plugin(runtime, PLUGIN, job, tmp_path)
    no_qml_errors(stderr)
    assert "Model: a model's name, such as segue-open, or empty for the default." in \
        report["texts"], report["texts"]
    assert not recorder.exchanges and not calls(report, "Score.startCmd")


def test_an_edit_in_the_target_bars_meanwhile_writes_nothing(runtime: Path, recorder: Recorder,
                                                            tmp_path: Path) -> None:
    """The dialog does not block the score: a note changed in bar 5 while the answer is on its
    way makes the plug-in refuse to write, rather than write over it or in the wrong place."""
    edit = {"track": 0, "tick": 7680, "pitch": 48}
    report, stderr = qt6_runtime.run_plugin(
        runtime, PLUGIN, fixture(1, f"http://127.0.0.1:{recorder.server_port}", edit=edit),
        tmp_path)
    no_qml_errors(stderr)
    assert len(recorder.exchanges) == 1
    assert any(t.startswith("The score changed while Segue was working") for t in report["texts"])
    assert not calls(report, "Score.startCmd")
    assert [e for e in report["score"]["elements"] if e["tick"] >= 7680] == [
        {"track": 0, "tick": 7680, "ticks": WHOLE, "duration": [1, 1], "pitches": [48],
         "tpc1": [14], "tpc2": [14], "tie": False, "tuplet": None},
        {"track": 0, "tick": 9600, "ticks": WHOLE, "duration": [1, 1], "pitches": [62],
         "tpc1": [16], "tpc2": [16], "tie": False, "tuplet": None}]


def install_plugin(home: Path, env: dict[str, str]) -> Path:
    """`segue install-plugins` into a MuseScore 4 that has run once; the installed Segue.qml."""
    (home / "Documents" / "MuseScore4").mkdir(parents=True)
    subprocess.run([sys.executable, "-m", "bridge", "install-plugins"], check=True,
                   env={**os.environ, **env}, stdout=subprocess.DEVNULL, timeout=120)
    return home / "Documents" / "MuseScore4" / "Plugins" / "Segue.qml"


def test_starts_segue_with_start_with_args(runtime: Path, tmp_path: Path) -> None:
    """No server runs: the plug-in starts `segue serve --detach` with startWithArgs (Qt 6 would
    take a whole command line for a program's name), from the program install-plugins
    recorded, says so, then continues."""
    home = tmp_path / "home"
    env = {"HOME": str(home), "SEGUE_HOME": str(home / ".segue"), "PYTHONPATH": str(ROOT),
           "XDG_CONFIG_HOME": str(home / ".config")}
    plugin = install_plugin(home, env)
    port = free_port()
    report, stderr = qt6_runtime.run_plugin(runtime, plugin,
                                            fixture(1, f"http://127.0.0.1:{port}"), tmp_path,
                                            env=env)
    try:
        no_qml_errors(stderr)
        [(program, args)] = calls(report, "QProcess.startWithArgs")
        assert [program, *args] == [sys.executable, "-m", "bridge", "serve", "--detach",
                                    "--port", str(port), "--no-osc", "--idle-exit", "30"]
        assert not calls(report, "QProcess.start")
        assert any(t.startswith("Starting Segue… The first start takes a few seconds.")
                   for t in report["seen"]), report["seen"]
        assert "Added 4 bars after bar 4. Edit > Undo takes them back." in report["texts"]
        assert health("127.0.0.1", port)                     # it outlived the plug-in
    finally:
        for process in report.get("processes", []):
            found = re.search(r"\(process (\d+),", process["output"])
            if found:
                os.kill(int(found.group(1)), signal.SIGTERM)


def test_a_flatpak_musescore_asks_to_start_segue_by_hand(runtime: Path, tmp_path: Path) -> None:
    home = tmp_path / "home"
    env = {"HOME": str(home), "SEGUE_HOME": str(home / ".segue"), "PYTHONPATH": str(ROOT)}
    plugin = install_plugin(home, env)
    report, stderr = qt6_runtime.run_plugin(
        runtime, plugin, fixture(1, f"http://127.0.0.1:{free_port()}"), tmp_path,
        fake_files={"/.flatpak-info": "[Application]\nname=org.musescore.MuseScore\n"}, env=env)
    no_qml_errors(stderr)
    assert any("is a Flatpak" in t and "segue serve" in t for t in report["texts"]), report["texts"]
    assert not calls(report, "QProcess.startWithArgs") and not calls(report, "Score.startCmd")
