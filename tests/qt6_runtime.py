"""Qt 6's own QML engine, set up as MuseScore 4 runs plug-ins: Debian's `qml` runtime
(offscreen) and `qmllint`, with the stand-in `MuseScore 3.0` and `FileIO 3.0` modules of
tests/qt6/, and of Qt's own modules only QtQml and QtQuick.

Qt modules MuseScore 4 does not ship (Qt.labs.settings above all) must stay out of reach even
where Debian has them installed: the runtime is a copy of `qml` beside a qt.conf whose QML
import path is a folder holding QtQml and QtQuick alone, and qmllint runs with --bare.

A broker (an HTTP server in the test process) gives the stand-ins their score and does what
QML cannot: read and write files for FileIO, run programs for QProcess, take the report.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

STAND_INS = Path(__file__).resolve().parent / "qt6"
QT6_BIN = Path("/usr/lib/qt6/bin")


def qt6_folders() -> tuple[Path, Path] | None:
    """(Qt 6's QML modules folder, its plugins folder), or None if Qt 6's QML is missing."""
    for qml in sorted(Path("/usr/lib").glob("*/qt6/qml")):
        plugins = qml.parent / "plugins"
        if (qml / "QtQuick" / "qmldir").is_file() and \
                (plugins / "platforms" / "libqoffscreen.so").is_file():
            return qml, plugins
    return None


def available() -> bool:
    return (QT6_BIN / "qml").is_file() and (QT6_BIN / "qmllint").is_file() and \
        qt6_folders() is not None


def make_runtime(folder: Path) -> Path:
    """A `qml` runtime in `folder` that finds only QtQml and QtQuick of Qt's modules."""
    found = qt6_folders()
    assert found, "Qt 6's QML modules are not installed"
    qml, plugins = found
    imports = folder / "imports"
    imports.mkdir(parents=True)
    for name in ("QtQml", "QtQuick", "builtins.qmltypes", "jsroot.qmltypes"):
        if (qml / name).exists():
            (imports / name).symlink_to(qml / name)
    runtime = folder / "bin" / "qml"
    runtime.parent.mkdir()
    shutil.copy2(QT6_BIN / "qml", runtime)      # qt.conf is read beside the real executable
    (runtime.parent / "qt.conf").write_text(
        f"[Paths]\nPrefix=/usr\nLibraries={plugins.parent.parent}\nPlugins={plugins}\n"
        f"QmlImports={imports}\n")
    return runtime


def lint_warnings(plugin: Path, imports: Path) -> list[dict[str, Any]]:
    """qmllint's warnings on `plugin`, with the stand-ins and the reachable Qt modules only:
    [{"line", "message", "code"}] (code: the line of the plug-in it points at)."""
    result = subprocess.run([str(QT6_BIN / "qmllint"), "--bare", "-I", str(imports), "-I",
                             str(STAND_INS), "--json", "-", str(plugin)], capture_output=True,
                            text=True, timeout=120, check=False)
    lines = plugin.read_text("utf-8").splitlines()
    found = []
    for report in json.loads(result.stdout)["files"]:
        for warning in report["warnings"]:
            if "jsroot.qmltypes" in warning["message"] or \
                    warning["message"].startswith("Warnings occurred while importing base"):
                continue                       # Debian ships no jsroot.qmltypes: qrc's is used
            line = warning.get("line")
            found.append({"line": line, "message": warning["message"],
                          "code": lines[line - 1] if line else ""})
    return found


class Broker(ThreadingHTTPServer):
    """What the stand-ins cannot do in QML, and the report they end with."""

    daemon_threads = True

    def __init__(self, fixture: dict[str, Any], fake_files: dict[str, str],
                 env: dict[str, str]) -> None:
        super().__init__(("127.0.0.1", 0), BrokerHandler)
        self.fixture, self.fake_files, self.env = fixture, fake_files, env
        self.report: dict[str, Any] | None = None
        self.qml_pid = 0
        self.processes: list[dict[str, Any]] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def file(self, op: str, path: str, data: Any) -> Any:
        """FileIO's operations, on this machine's files (and the fake ones)."""
        if path == "/proc/self/environ":                  # the plug-in's process, not ours
            path = f"/proc/{self.qml_pid}/environ"
        if path in self.fake_files:
            return {"exists": True, "read": self.fake_files[path]}.get(op, False)
        target = Path(path)
        try:
            if op == "exists":
                return target.exists()
            if op == "read":
                return target.read_bytes().decode("utf-8", "replace")
            if op == "write":
                target.write_text(str(data))
                return True
            if op == "remove":
                target.unlink()
                return True
            if op == "modifiedTime":
                return int(target.stat().st_mtime)
        except OSError:
            return "" if op == "read" else False
        return {"homePath": self.env.get("HOME", ""), "tempPath": "/tmp"}.get(op, "")

    def start(self, program: str, args: list[str]) -> int:
        """Run a program as QProcess would; its standard output is collected."""
        entry: dict[str, Any] = {"program": program, "args": args, "output": b"", "read": 0,
                                 "process": None}
        self.processes.append(entry)
        try:
            process = subprocess.Popen([program, *args], stdout=subprocess.PIPE,
                                       stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL,
                                       env=self.env)
        except OSError:
            return len(self.processes) - 1                # failed to start: no output, ever
        entry["process"] = process

        def collect() -> None:
            for chunk in iter(lambda: process.stdout.read1(4096), b""):  # type: ignore[union-attr]
                entry["output"] += chunk

        threading.Thread(target=collect, daemon=True).start()
        return len(self.processes) - 1


class BrokerHandler(BaseHTTPRequestHandler):
    server: Broker

    def do_GET(self) -> None:
        self.answer(self.server.fixture)

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])) or b"null")
        broker = self.server
        if self.path == "/file":
            self.answer({"result": broker.file(body["op"], body["path"], body.get("data"))})
        elif self.path == "/process/start":
            self.answer({"id": broker.start(body["program"], body["args"])})
        elif self.path == "/process/read":
            entry = broker.processes[body["id"]]
            text = entry["output"][entry["read"]:]
            entry["read"] += len(text)
            self.answer({"text": text.decode("latin-1")})
        elif self.path == "/process/wait":
            process = broker.processes[body["id"]]["process"]
            finished = False
            if process is not None:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    process.wait(timeout=max(0, body["msecs"]) / 1000)
                    finished = True
            self.answer({"finished": finished})
        elif self.path == "/report":
            broker.report = body
            self.answer({})
        else:
            self.send_error(404)

    def answer(self, data: Any) -> None:
        raw = json.dumps(data).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    def log_message(self, *args: Any) -> None:
        pass


@contextlib.contextmanager
def broker(fixture: dict[str, Any], fake_files: dict[str, str] | None = None,
           env: dict[str, str] | None = None) -> Iterator[Broker]:
    server = Broker(fixture, fake_files or {}, {**os.environ, **(env or {})})
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def run_plugin(runtime: Path, plugin: Path, fixture: dict[str, Any], folder: Path,
               fake_files: dict[str, str] | None = None,
               env: dict[str, str] | None = None) -> tuple[dict[str, Any], str]:
    """Run `plugin` under the Qt 6 runtime as MuseScore 4 would; (the report, stderr)."""
    runtime_dir = folder / "xdg"
    runtime_dir.mkdir(mode=0o700, exist_ok=True)
    with broker(fixture, fake_files, env) as server:
        process = subprocess.Popen(
            [str(runtime), "-I", str(STAND_INS), str(plugin), "--", server.url],
            env={**os.environ, **(env or {}), "QT_QPA_PLATFORM": "offscreen",
                 "XDG_RUNTIME_DIR": str(runtime_dir)},
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        server.qml_pid = process.pid
        try:
            _, stderr = process.communicate(timeout=300)
        finally:
            if process.poll() is None:
                process.kill()
        report = server.report or {"reason": "no report"}
        report["processes"] = [{"program": e["program"], "args": e["args"],
                                "output": e["output"].decode("utf-8", "replace")}
                               for e in server.processes]
        return report, stderr
