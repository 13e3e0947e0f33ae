"""`segue install-plugins` against fake home folders laid out as Windows, macOS and Linux."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bridge.plugins_install import PLUGINS, install, read_manifest, targets, uninstall
from engine import __version__

QML = PLUGINS / "musescore" / "Segue.qml"
FL_SCRIPT = PLUGINS / "flstudio" / "device_Segue.py"
FL_HARDWARE = Path("Image-Line", "FL Studio", "Settings", "Hardware")


def layout(system: str, home: Path) -> tuple[dict, Path, Path]:
    """A fake home where each host has run once: (targets() arguments, Documents, FL's one)."""
    if system == "windows-onedrive":  # Documents moved into OneDrive; the old folder remains
        (home / "Documents" / "MuseScore4").mkdir(parents=True)
        documents = home / "OneDrive" / "Documents"
        system_args = {"platform": "win32", "personal": r"%USERPROFILE%\OneDrive\Documents",
                       "env": {"USERPROFILE": str(home)}}
        fl = documents
    elif system == "windows":
        documents = home / "Documents"
        system_args = {"platform": "win32", "personal": r"%USERPROFILE%\Documents",
                       "env": {"USERPROFILE": str(home)}}
        fl = documents
    elif system == "macos":
        documents = home / "Documents"
        system_args = {"platform": "darwin", "env": {}}
        fl = documents
    else:  # Linux with a localized Documents folder, FL Studio under Wine
        documents = home / "Dokumente"
        (home / ".config").mkdir(parents=True)
        (home / ".config" / "user-dirs.dirs").write_text(
            '# written by xdg-user-dirs-update\nXDG_DESKTOP_DIR="$HOME/Schreibtisch"\n'
            'XDG_DOCUMENTS_DIR="$HOME/Dokumente"\n')
        system_args = {"platform": "linux", "env": {"USER": "ada"}}
        fl = home / ".wine" / "drive_c" / "users" / "ada" / "Documents"
    for folder in (documents / "MuseScore3", documents / "MuseScore4",
                   fl / FL_HARDWARE.parent):  # what each host makes when it first runs
        folder.mkdir(parents=True, exist_ok=True)
    return {"home": home, **system_args}, documents, fl


SYSTEMS = ["windows-onedrive", "windows", "macos", "linux"]


def snapshot(root: Path) -> dict[str, tuple[bytes, int]]:
    """Every file under `root` with its bytes and modification time."""
    return {str(p.relative_to(root)): (p.read_bytes(), p.stat().st_mtime_ns)
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("system", SYSTEMS)
def test_install_lands_where_hosts_look_then_is_a_no_op_then_uninstalls(
        system: str, tmp_path: Path) -> None:
    home, manifest = tmp_path / "home", tmp_path / "segue" / "installed-plugins.json"
    system_args, documents, fl = layout(system, home)
    expected = {documents / "MuseScore3" / "Plugins" / "Segue.qml": QML,
                documents / "MuseScore4" / "Plugins" / "Segue.qml": QML,
                fl / FL_HARDWARE / "Segue" / "device_Segue.py": FL_SCRIPT}
    empty_folders = {p for p in home.rglob("*") if p.is_dir()}

    steps = install(targets(**system_args), manifest)
    assert [s.outcome for s in steps] == ["installed"] * 3
    for dest, source in expected.items():
        assert dest.read_bytes() == source.read_bytes()
    assert set(read_manifest(manifest)["files"]) == {str(p) for p in expected}
    if system == "windows-onedrive":
        assert not (home / "Documents" / "MuseScore4" / "Plugins").exists()

    before = snapshot(tmp_path)
    steps = install(targets(**system_args), manifest)
    assert [s.outcome for s in steps] == ["up to date"] * 3
    assert not any(s.changed for s in steps)
    assert snapshot(tmp_path) == before

    steps = uninstall(manifest)
    assert [s.outcome for s in steps] == ["removed"] * 3
    assert not any(p.is_file() for p in home.rglob("*") if p.name != "user-dirs.dirs")
    assert {p for p in home.rglob("*") if p.is_dir()} == empty_folders
    assert not manifest.exists()


def test_a_file_segue_did_not_write_is_kept_unless_the_user_says(tmp_path: Path) -> None:
    system_args, documents, _ = layout("macos", tmp_path / "home")
    manifest = tmp_path / "manifest.json"
    foreign = documents / "MuseScore4" / "Plugins" / "Segue.qml"
    foreign.parent.mkdir()
    foreign.write_text("// someone else's Segue.qml\n")
    asked = []

    steps = install(targets(**system_args), manifest, ask=lambda p: asked.append(p) or False)
    assert asked == [foreign]
    assert {s.path: s.outcome for s in steps}[foreign] == "kept"
    assert foreign.read_text() == "// someone else's Segue.qml\n"
    assert str(foreign) not in read_manifest(manifest)["files"]

    uninstall(manifest)
    assert foreign.read_text() == "// someone else's Segue.qml\n"

    steps = install(targets(**system_args), manifest, ask=lambda p: True)
    assert {s.path: s.outcome for s in steps}[foreign] == "updated"
    assert foreign.read_bytes() == QML.read_bytes()


def test_uninstall_removes_only_segues_own_files(tmp_path: Path) -> None:
    system_args, documents, _ = layout("windows", tmp_path / "home")
    manifest = tmp_path / "manifest.json"
    plugins3, plugins4 = documents / "MuseScore3" / "Plugins", documents / "MuseScore4" / "Plugins"
    install(targets(**system_args), manifest)
    (plugins3 / "Other.qml").write_text("// another plug-in\n")
    (plugins4 / "Segue.qml").write_text("// the user's own edit\n")

    steps = uninstall(manifest)
    outcomes = {s.path: s.outcome for s in steps}
    assert outcomes[plugins3 / "Segue.qml"] == "removed"
    assert outcomes[plugins4 / "Segue.qml"] == "kept"
    assert (plugins3 / "Other.qml").read_text() == "// another plug-in\n"
    assert (plugins4 / "Segue.qml").read_text() == "// the user's own edit\n"
    assert list(read_manifest(manifest)["files"]) == [str(plugins4 / "Segue.qml")]

    assert uninstall(manifest, force=True)[0].outcome == "removed"
    assert not (plugins4 / "Segue.qml").exists()
    assert read_manifest(manifest)["files"] == {}
    assert plugins3.is_dir()  # made by Segue, but another plug-in lives there now


def test_an_update_of_segue_replaces_its_own_older_file(tmp_path: Path) -> None:
    system_args, documents, _ = layout("macos", tmp_path / "home")
    manifest = tmp_path / "manifest.json"
    install(targets(**system_args), manifest)
    installed = documents / "MuseScore3" / "Plugins" / "Segue.qml"
    old = b"// Segue 0.0.9\n"
    installed.write_bytes(old)  # as if an older Segue had installed it
    data = read_manifest(manifest)
    data["files"][str(installed)]["sha256"] = __import__("hashlib").sha256(old).hexdigest()
    manifest.write_text(__import__("json").dumps(data))

    steps = install(targets(**system_args), manifest, ask=lambda p: pytest.fail("asked"))
    assert {s.path: s.outcome for s in steps}[installed] == "updated"
    assert installed.read_bytes() == QML.read_bytes()


def segue(*args: str, home: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HOME": str(home), "SEGUE_HOME": str(home / ".segue"),
           "XDG_CONFIG_HOME": str(home / ".config"), "USER": "ada"}
    env.pop("XDG_DOCUMENTS_DIR", None)
    env.pop("WINEPREFIX", None)
    return subprocess.run([sys.executable, "-m", "bridge", "install-plugins", *args],
                          env=env, capture_output=True, text=True, timeout=60, check=False,
                          stdin=subprocess.DEVNULL)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the command on this system")
def test_the_command_on_linux(tmp_path: Path) -> None:
    home = tmp_path / "home"
    _, documents, fl = layout("linux", home)
    (documents / "MuseScore4").rmdir()  # MuseScore 4 never ran here
    qml3 = documents / "MuseScore3" / "Plugins" / "Segue.qml"

    dry = segue("--dry-run", home=home)
    assert dry.returncode == 0, dry.stderr
    assert f"would install: {qml3}" in dry.stdout and "MuseScore4" in dry.stdout
    assert not qml3.exists() and not (home / ".segue").exists()

    first = segue(home=home)
    assert first.returncode == 0, first.stderr
    assert qml3.read_bytes() == QML.read_bytes()
    assert (fl / FL_HARDWARE / "Segue" / "device_Segue.py").is_file()
    assert not (documents / "MuseScore4").exists()
    assert "Plugin Manager" in first.stdout and "MIDI settings" in first.stdout

    again = segue(home=home)
    assert again.returncode == 0 and "Nothing to change." in again.stdout

    qml3.write_text("// changed by hand\n")
    kept = segue("--all", home=home)
    assert kept.returncode == 1 and "--force" in kept.stdout
    assert qml3.read_text() == "// changed by hand\n"
    assert (documents / "MuseScore4" / "Plugins" / "Segue.qml").is_file()

    gone = segue("--uninstall", "--force", home=home)
    assert gone.returncode == 0, gone.stderr
    assert not any(p.is_file() for p in home.rglob("*") if p.name != "user-dirs.dirs")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the command on this system")
def test_the_musescore_plugins_learn_where_segue_is(tmp_path: Path) -> None:
    """segue-launch.json beside each Segue.qml names a program that runs this Segue, so the
    plug-in can start `segue serve` from a MuseScore whose PATH lacks `segue`."""
    home = tmp_path / "home"
    _, documents, _ = layout("linux", home)
    assert segue(home=home).returncode == 0
    for version in ("MuseScore3", "MuseScore4"):
        record = json.loads((documents / version / "Plugins" / "segue-launch.json").read_text())
        assert record["program"] == sys.executable and record["args"] == ["-m", "bridge"]
        ran = subprocess.run([record["program"], *record["args"], "--version"],
                             capture_output=True, text=True, timeout=60, check=True,
                             cwd=tmp_path)
        assert ran.stdout.strip() == f"segue {__version__}"
    assert segue(home=home).stdout.count("up to date") == 5      # 2 plug-ins, 2 records, FL
    assert segue("--uninstall", home=home).returncode == 0
    assert not list(documents.rglob("segue-launch.json"))
