"""Put Segue's plug-ins where MuseScore and FL Studio look for them, and take them away again.

    MuseScore 3   <Documents>/MuseScore3/Plugins/Segue.qml
    MuseScore 4   <Documents>/MuseScore4/Plugins/Segue.qml
    FL Studio     <Documents>/Image-Line/FL Studio/Settings/Hardware/Segue/device_Segue.py

<Documents> is the user's real Documents folder: on Windows the registry's "Personal" shell
folder (OneDrive may have moved it), on Linux XDG_DOCUMENTS_DIR from ~/.config/user-dirs.dirs,
on macOS ~/Documents. FL Studio on Linux runs under Wine: its Documents is the Wine prefix's.
A host gets its plug-in only once it has run here (its folder under Documents exists), unless
asked for all hosts.

Beside each MuseScore plug-in goes segue-launch.json: where this Segue is (the app, or this
Python with `-m bridge`), so that the plug-in can start `segue serve` itself when MuseScore,
started from a desktop menu, has no `segue` on its PATH.

Every file written is recorded with its SHA-256 in $SEGUE_HOME/installed-plugins.json, with
the folders made for it. So a second install changes nothing, an update replaces only files
still as Segue wrote them, a file Segue did not write is replaced only when the user says so,
and uninstall removes only Segue's own files (and folders it made, once empty).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from engine.errors import SegueError
from engine.files import write_bytes_atomic, write_text_atomic
from engine.home import segue_home

PLUGINS = Path(__file__).resolve().parent.parent / "plugins"  # also inside the built app
MANIFEST_FORMAT = 1
PERSONAL_KEY = r"Software\Microsoft\Windows\CurrentVersion\Explorer\User Shell Folders"
FL_HARDWARE = ("Image-Line", "FL Studio", "Settings", "Hardware")

SWITCH_ON = {
    "MuseScore 3": "MuseScore 3: Plugins > Plugin Manager, tick \"Segue\", OK; then select bars "
                   "and choose Plugins > Continue with Segue.",
    "MuseScore 4": "MuseScore 4: Home > Plugins, click \"Segue: Continue\", Enable; then select "
                   "bars and choose Plugins > Composing/arranging tools > Segue: Continue.",
    "FL Studio": "FL Studio: Options > MIDI settings: pick the input \"Segue Out\", set its "
                 "controller type to \"Segue\" and its port number to that of the output "
                 "\"Segue In\" (Windows: make those two ports with loopMIDI first).",
}
SERVER_NOTE = ("The MuseScore plug-in starts `segue serve` itself when it finds none (it stops "
               "after 30 minutes unused); FL Studio talks to `segue midi`: keep that running "
               "while you work.")
LAUNCH_FILE = "segue-launch.json"


@dataclass(frozen=True)
class Target:
    """One plug-in file and where its host looks for it."""

    host: str
    source: Path | None  # the file shipped with Segue (None: `content` is written)
    dest: Path  # where the host reads it
    host_folder: Path  # exists once the host has run on this machine
    content: bytes | None = None  # a file made at install time

    @property
    def host_found(self) -> bool:
        return self.host_folder.is_dir()

    def data(self) -> bytes:
        """The bytes to install; SegueError if the shipped file is missing."""
        if self.content is not None:
            return self.content
        if self.source is None or not self.source.is_file():
            raise SegueError(f"{self.source}: the {self.host} plug-in is missing from this "
                             "Segue (install Segue from its source folder or use the app)")
        return self.source.read_bytes()

    def sha256(self) -> str:
        """The SHA-256 of what is installed at `dest`."""
        return hashlib.sha256(self.data()).hexdigest()


@dataclass(frozen=True)
class Step:
    """What happened (or, in a dry run, would happen) to one file."""

    host: str
    path: Path
    outcome: str  # "installed", "updated", "up to date", "kept", "skipped", "removed"
    detail: str = ""
    changed: bool = False


def expand_windows(value: str, env: Mapping[str, str]) -> Path:
    """A REG_EXPAND_SZ path: %VARIABLES% from `env`, backslashes as this system's separator."""
    expanded = re.sub(r"%([^%]+)%", lambda m: env.get(m.group(1), m.group(0)), value)
    return Path(expanded.replace("\\", os.sep))


def registry_documents() -> str | None:
    """The registry's (unexpanded) Personal shell folder on Windows: None elsewhere or unset."""
    if sys.platform != "win32":
        return None
    import winreg

    try:
        with winreg.OpenKey(winreg.HKEY_CURRENT_USER, PERSONAL_KEY) as key:
            return str(winreg.QueryValueEx(key, "Personal")[0])
    except OSError:
        return None


def xdg_documents(home: Path, env: Mapping[str, str]) -> Path | None:
    """XDG_DOCUMENTS_DIR from user-dirs.dirs (the environment variable wins), if set."""
    value = env.get("XDG_DOCUMENTS_DIR")
    if not value:
        config = Path(env.get("XDG_CONFIG_HOME") or home / ".config") / "user-dirs.dirs"
        try:
            text = config.read_text("utf-8")
        except (OSError, UnicodeDecodeError):
            return None
        found = re.search(r'^\s*XDG_DOCUMENTS_DIR\s*=\s*"?([^"\n]*)"?', text, re.MULTILINE)
        value = found.group(1) if found else ""
    value = value.replace("${HOME}", str(home)).replace("$HOME", str(home))
    return Path(value) if value and Path(value) != home else None


def documents_folder(platform: str = sys.platform, home: Path | None = None,
                     env: Mapping[str, str] | None = None,
                     personal: str | None = None) -> Path:
    """The user's real Documents folder. `personal`: the registry's value (read if None)."""
    home = Path.home() if home is None else home
    env = os.environ if env is None else env
    if platform == "win32":
        personal = personal or registry_documents()
        return expand_windows(personal, env) if personal else home / "Documents"
    if platform.startswith("linux"):
        return xdg_documents(home, env) or home / "Documents"
    return home / "Documents"


def fl_documents(platform: str, home: Path, env: Mapping[str, str], documents: Path) -> Path:
    """The Documents folder FL Studio uses: the user's own, or the Wine prefix's on Linux."""
    if not platform.startswith("linux"):
        return documents
    prefix = Path(env.get("WINEPREFIX") or home / ".wine")
    user = env.get("USER") or home.name
    return prefix / "drive_c" / "users" / user / "Documents"


def targets(platform: str = sys.platform, home: Path | None = None,
            env: Mapping[str, str] | None = None, personal: str | None = None) -> list[Target]:
    """Every plug-in file Segue installs, on this machine (or the one described)."""
    home = Path.home() if home is None else home
    env = os.environ if env is None else env
    documents = documents_folder(platform, home, env, personal)
    fl = fl_documents(platform, home, env, documents)
    qml = PLUGINS / "musescore" / "Segue.qml"
    return [
        Target("MuseScore 3", qml, documents / "MuseScore3" / "Plugins" / qml.name,
               documents / "MuseScore3"),
        Target("MuseScore 4", qml, documents / "MuseScore4" / "Plugins" / qml.name,
               documents / "MuseScore4"),
        Target("FL Studio", PLUGINS / "flstudio" / "device_Segue.py",
               fl.joinpath(*FL_HARDWARE, "Segue", "device_Segue.py"),
               fl.joinpath(*FL_HARDWARE[:2])),
    ]


def launch_record() -> bytes:
    """segue-launch.json: the program (and leading arguments) that runs this Segue."""
    from bridge.launch import segue_program
    from engine import __version__

    program = segue_program()
    record = {"program": program[0], "args": program[1:],
              "written_by": f"segue install-plugins {__version__}"}
    return (json.dumps(record, indent=2) + "\n").encode("utf-8")


def launch_targets(chosen: list[Target]) -> list[Target]:
    """segue-launch.json beside each MuseScore plug-in among `chosen`."""
    record = launch_record()
    return [Target(t.host, None, t.dest.with_name(LAUNCH_FILE), t.host_folder, record)
            for t in chosen if t.host.startswith("MuseScore")]


def manifest_path() -> Path:
    """Where Segue records the files it installed."""
    return segue_home() / "installed-plugins.json"


def read_manifest(path: Path) -> dict:
    """{"files": {path: {"host", "sha256"}}, "folders": [paths Segue made]}; empty if none."""
    try:
        manifest = json.loads(path.read_text("utf-8"))
    except FileNotFoundError:
        return {"format": MANIFEST_FORMAT, "files": {}, "folders": []}
    except (OSError, ValueError) as error:
        raise SegueError(f"{path}: cannot read the list of installed plug-ins ({error}); "
                         "move it aside and install again") from None
    if not isinstance(manifest.get("files"), dict) or not isinstance(manifest.get("folders"),
                                                                      list):
        raise SegueError(f"{path}: not a list of installed plug-ins; move it aside")
    return manifest


def write_manifest(path: Path, manifest: dict, before: dict) -> None:
    """Save the manifest if it changed; remove it once it lists nothing."""
    if manifest == before:
        return
    if manifest["files"] or manifest["folders"]:
        write_text_atomic(path, json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    else:
        path.unlink(missing_ok=True)


def sha256(path: Path) -> str | None:
    """The file's SHA-256, or None if it does not exist."""
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except FileNotFoundError:
        return None


def make_folders(folder: Path) -> list[Path]:
    """Create `folder` and its missing parents; return those created, outermost first."""
    missing = [p for p in (folder, *folder.parents) if not p.exists()][::-1]
    for path in missing:
        path.mkdir()
    return missing


def install(chosen: list[Target], manifest_file: Path, *, dry_run: bool = False,
            force: bool = False, ask: Callable[[Path], bool] | None = None) -> list[Step]:
    """Copy each target's plug-in into place; return what happened to each file.

    A file at the destination that Segue did not write (or that was changed since) is replaced
    only with `force` or when `ask(path)` says yes.
    """
    before = read_manifest(manifest_file)
    manifest = json.loads(json.dumps(before))
    steps = []
    for target in chosen:
        data = target.data()
        wanted = target.sha256()
        key = str(target.dest)
        present = sha256(target.dest)
        recorded = manifest["files"].get(key, {}).get("sha256")
        if present == wanted:
            steps.append(Step(target.host, target.dest, "up to date"))
            manifest["files"][key] = {"host": target.host, "sha256": wanted}
            continue
        ours = present is None or present == recorded
        if not (ours or force or (ask is not None and not dry_run and ask(target.dest))):
            steps.append(Step(target.host, target.dest, "kept",
                              "a file Segue did not write is there; --force replaces it"))
            continue
        outcome = "installed" if present is None else "updated"
        if not dry_run:
            made = [str(p) for p in make_folders(target.dest.parent)]
            manifest["folders"] += [p for p in made if p not in manifest["folders"]]
            write_bytes_atomic(target.dest, data)
            manifest["files"][key] = {"host": target.host, "sha256": wanted}
        steps.append(Step(target.host, target.dest, outcome, changed=True))
    if not dry_run:
        write_manifest(manifest_file, manifest, before)
    return steps


def uninstall(manifest_file: Path, *, dry_run: bool = False, force: bool = False) -> list[Step]:
    """Remove the files Segue installed, unless changed since (`force` removes them anyway)."""
    before = read_manifest(manifest_file)
    manifest = json.loads(json.dumps(before))
    steps = []
    for key, entry in before["files"].items():
        path = Path(key)
        present = sha256(path)
        if present is None:
            steps.append(Step(entry["host"], path, "removed", "it was already gone"))
        elif present != entry["sha256"] and not force:
            steps.append(Step(entry["host"], path, "kept",
                              "changed since Segue wrote it; --force removes it"))
            continue
        else:
            if not dry_run:
                path.unlink()
            steps.append(Step(entry["host"], path, "removed", changed=True))
        del manifest["files"][key]
    for folder in sorted(before["folders"], key=len, reverse=True):
        path = Path(folder)
        if not dry_run:
            try:
                path.rmdir()
            except FileNotFoundError:
                pass
            except OSError:  # not empty: something else lives there now
                continue
        manifest["folders"].remove(folder)
    if not dry_run:
        write_manifest(manifest_file, manifest, before)
    return steps
