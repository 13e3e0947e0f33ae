"""`segue doctor` on a fake home: what it finds, and what it tells the user to fix."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import rtmidi
from server_helpers import running_server

from bridge.midi.ports import APIS


def doctor(*args: str, home: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HOME": str(home), "SEGUE_HOME": str(home / ".segue"),
           "XDG_CONFIG_HOME": str(home / ".config"), "USER": "ada"}
    env.pop("XDG_DOCUMENTS_DIR", None)
    env.pop("WINEPREFIX", None)
    return subprocess.run([sys.executable, "-m", "bridge", "doctor", *args], env=env,
                          capture_output=True, text=True, timeout=120, check=False)


def test_doctor_reports_model_device_midi_hosts_and_server(model_path: Path,
                                                            tmp_path: Path) -> None:
    home = tmp_path / "home"
    (home / "Documents" / "MuseScore3").mkdir(parents=True)
    installed = subprocess.run([sys.executable, "-m", "bridge", "install-plugins"],
                               env={**os.environ, "HOME": str(home),
                                    "SEGUE_HOME": str(home / ".segue"),
                                    "XDG_CONFIG_HOME": str(home / ".config")},
                               capture_output=True, text=True, timeout=60, check=True)
    assert "installed" in installed.stdout

    with running_server(model_path) as server:
        result = doctor("--model", str(model_path), "--device", "cpu",
                        "--port", str(server.http_port), home=home)
    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    assert "model tiny-gpt2 loads and writes music on cpu" in out
    qml = home / "Documents" / "MuseScore3" / "Plugins" / "Segue.qml"
    assert f"plug-in installed: {qml}" in out
    assert f"MuseScore 4: not started here yet (no {home / 'Documents' / 'MuseScore4'})" in out
    assert f"answers at http://127.0.0.1:{server.http_port}/v1/health (model tiny-gpt2" in out
    compiled = set(rtmidi.get_compiled_api())
    for name, constant in APIS.items():
        assert (f"MIDI {name}" in out) == (getattr(rtmidi, f"API_{constant}") in compiled)


def test_doctor_says_what_to_fix_when_the_model_is_missing(tmp_path: Path) -> None:
    home = tmp_path / "home"
    (home / "Documents" / "MuseScore4").mkdir(parents=True)
    result = doctor("--model", str(tmp_path / "no-such-model"), "--port", "1", home=home)
    out = result.stdout
    assert result.returncode == 1
    assert "FAIL  the model does not load" in out and "no such checkpoint folder" in out
    assert "no `segue serve` on port 1" in out
    fixes = out.split("To fix:")[1]
    assert "--model" in fixes
    assert "run `segue install-plugins`" in fixes  # MuseScore 4 has run, has no plug-in
