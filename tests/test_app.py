"""The app built by installers/build.sh (dist/segue/segue): skipped until it has been built.

Build it first (installers/build.sh, 3 to 10 minutes on 2 cores; .ci/run does), then
`python -m pytest tests/test_app.py -s` also prints its start-to-served-request time. The path a
musician takes is tested end to end: the app installs the MuseScore plug-in, and the plug-in, in
a real MuseScore 3, starts the app's own server.
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import socket
import subprocess
import time
from fractions import Fraction
from pathlib import Path

import pytest
from midi_helpers import (
    BARS,
    JACK_LATENCY,
    TRIGGER_CC,
    SegueProcess,
    call_and_response,
    jack_server,
)

from engine import __version__
from engine.models.checkpoint import DEFAULT_MODEL

ROOT = Path(__file__).resolve().parent.parent
APP = ROOT / "dist" / "segue" / ("segue.exe" if os.name == "nt" else "segue")
TUNE = "X:1\nT:Test\nM:6/8\nL:1/8\nK:D\nA|dfa afd|gbg fdB|AFA dfa|e3 e2A|\n"

pytestmark = pytest.mark.skipif(not APP.is_file(), reason=f"the app is not built ({APP})")


def app(*args: str, home: Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HOME": str(home), "SEGUE_HOME": str(home / ".segue")}
    return subprocess.run([str(APP), *args], env=env, capture_output=True, text=True,
                          timeout=timeout, check=False)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def health(port: int) -> dict | None:
    """GET /v1/health, or None while nothing answers yet."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
    try:
        connection.request("GET", "/v1/health")
        return json.loads(connection.getresponse().read())
    except OSError:
        return None
    finally:
        connection.close()


def test_version(tmp_path: Path) -> None:
    result = app("--version", home=tmp_path)
    assert result.returncode == 0 and result.stdout.strip() == f"segue {__version__}"


def test_continue_a_tune_with_the_model_inside(tmp_path: Path) -> None:
    tune = tmp_path / "tune.abc"
    tune.write_text(TUNE)
    result = app("continue", str(tune), "--bars", "2", "--seed", "1",
                 "-o", str(tmp_path / "next.musicxml"), home=tmp_path)
    assert result.returncode == 0, result.stderr
    assert f"({DEFAULT_MODEL} on cpu)" in result.stderr
    from engine.abc.music import read_score

    assert len(read_score(tmp_path / "next.musicxml").parts[0].getElementsByClass(
        "Measure")) == 2


def test_plugins_ship_in_the_app(tmp_path: Path) -> None:
    (tmp_path / "Documents" / "MuseScore3").mkdir(parents=True)
    result = app("install-plugins", "--dry-run", home=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "would install" in result.stdout and "Segue.qml" in result.stdout


def test_serve_answers_health(model_path: Path, tmp_path: Path) -> None:
    port = free_port()
    start = time.perf_counter()
    server = subprocess.Popen(
        [str(APP), "serve", "--model", str(model_path), "--port", str(port), "--no-osc"],
        env={**os.environ, "HOME": str(tmp_path), "SEGUE_HOME": str(tmp_path / ".segue")},
        stderr=subprocess.PIPE, text=True)
    try:
        answer = None
        while answer is None and server.poll() is None and time.perf_counter() - start < 240:
            answer = health(port)
            time.sleep(0.05)
        assert answer is not None, server.stderr.read() if server.poll() is not None else ""
        print(f"\napp start to served /v1/health: {time.perf_counter() - start:.2f} s")
        assert answer["status"] == "ok" and answer["version"] == __version__
        assert answer["model"] == model_path.name
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_midi_bridge_answers_with_the_model_inside() -> None:
    """`segue midi` in the app: its model runs in a worker process, which a frozen app must
    be able to start (multiprocessing.freeze_support)."""
    with jack_server():
        segue = SegueProcess(None, "app-test", "--bars", str(BARS), "--trigger-cc",
                             str(TRIGGER_CC), "--seed", "1", *JACK_LATENCY, program=(str(APP),))
        try:
            segue.wait_for(r"^listening", timeout=120)
            figures = call_and_response(segue, 120, "4/4")
        finally:
            assert segue.stop() == 130
    assert figures["errors_ms"]


@pytest.mark.skipif(shutil.which("mscore3") is None, reason="needs MuseScore 3 (musescore3)")
def test_the_plugin_starts_the_apps_own_server(tmp_path: Path) -> None:
    """A musician's path: the app puts the plug-in (and where the app is) into MuseScore's
    folder; with no server running, the plug-in in a real MuseScore 3 starts the app's
    `segue serve`, continues the selection with the model inside the app, and that server
    stops by itself once unused."""
    from test_musescore import flats_in_three, read, run_plugin, wait_for_text

    home = tmp_path / "home"
    (home / "Documents" / "MuseScore3").mkdir(parents=True)
    result = app("install-plugins", home=home)
    assert result.returncode == 0, result.stderr
    plugin = home / "Documents" / "MuseScore3" / "Plugins" / "Segue.qml"
    record = json.loads((plugin.parent / "segue-launch.json").read_text())
    assert record == {"program": str(APP), "args": [], "written_by": record["written_by"]}
    port = free_port()
    output = tmp_path / "result.musicxml"
    score = flats_in_three(tmp_path / "score.musicxml")
    run_plugin(score, {"server": f"http://127.0.0.1:{port}", "staff": 0, "first_measure": 1,
                       "last_measure": 2, "bars": 2, "seed": 5, "idle_exit": 0.05,
                       "output": str(output)}, tmp_path, plugin=plugin,
               env={"HOME": str(home), "SEGUE_HOME": str(home / ".segue")})
    assert not Path(f"{output}.error").exists(), Path(f"{output}.error").read_text()
    new_bars = list(read(output).parts[0].getElementsByClass("Measure"))[2:4]
    assert [Fraction(m.quarterLength) for m in new_bars] == [3, 3]
    log = wait_for_text(home / ".segue" / "serve.log", "segue serve: stopped", 240)
    assert f"{APP} serve --host 127.0.0.1 --port {port}" in log
    assert f"model {DEFAULT_MODEL} on cpu" in log and "POST /v1/continue 200" in log
    assert "unused for 0.05 minutes; stopping" in log
    assert health(port) is None
