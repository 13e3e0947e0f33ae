"""Start `segue serve` in the background, detached from whoever asked, and wait until it answers.

This is what `segue serve --detach` does, for programs that cannot keep a terminal open: the
MuseScore plug-in starts it when it finds no server. The server runs as a new session (POSIX)
or a detached process group (Windows), so it outlives the program that started it (MuseScore
kills the plug-in's child process when the plug-in closes); its output goes to a log file.
Starting one where a Segue already answers starts nothing.
"""

from __future__ import annotations

import http.client
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from engine.errors import SegueError

LOCAL = {"0.0.0.0": "127.0.0.1", "": "127.0.0.1", "::": "::1"}


def segue_program() -> list[str]:
    """The command that runs this Segue: the app itself, or this Python with `-m bridge`."""
    if getattr(sys, "frozen", False):
        return [sys.executable]
    return [sys.executable, "-m", "bridge"]


def health(host: str, port: int, timeout: float = 2.0) -> dict | None:
    """GET /v1/health of a Segue at host:port, or None when no Segue answers there."""
    connection = http.client.HTTPConnection(LOCAL.get(host, host), port, timeout=timeout)
    try:
        connection.request("GET", "/v1/health")
        response = connection.getresponse()
        answer = json.loads(response.read())
    except (OSError, ValueError, http.client.HTTPException):
        return None
    finally:
        connection.close()
    return answer if isinstance(answer, dict) and answer.get("status") == "ok" else None


def spawn_detached(command: list[str], log_path: Path) -> subprocess.Popen:
    """Start `command` in its own session, output appended to `log_path`."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        log.write(f"\n--- {time.strftime('%Y-%m-%d %H:%M:%S')} "
                  f"{' '.join(command)}\n".encode())
        log.flush()
        options: dict = {"stdin": subprocess.DEVNULL, "stdout": log,
                         "stderr": subprocess.STDOUT, "close_fds": True}
        if os.name == "nt":
            options["creationflags"] = (subprocess.DETACHED_PROCESS  # type: ignore[attr-defined]
                                        | subprocess.CREATE_NEW_PROCESS_GROUP)  # type: ignore[attr-defined]
        else:
            options["start_new_session"] = True
        return subprocess.Popen(command, **options)


def last_error(log_path: Path, since: int) -> str:
    """The last error line the server wrote to its log after byte `since`."""
    try:
        with open(log_path, "rb") as log:
            log.seek(since)
            lines = log.read().decode("utf-8", "replace").splitlines()
    except OSError:
        return ""
    errors = [line for line in lines if "error" in line.lower()]
    last = (errors or [line for line in lines if line.strip()] or [""])[-1].strip()
    return last.removeprefix("segue serve: error: ")


def start_in_background(serve_args: list[str], host: str, port: int, log_path: Path,
                        timeout: float = 300.0) -> str:
    """Run `segue serve` with `serve_args` detached and wait for its /v1/health; the line to
    print. SegueError when it stops or stays silent (its last log line says why)."""
    url = f"http://{LOCAL.get(host, host)}:{port}/v1"
    since = log_path.stat().st_size if log_path.exists() else 0
    process = spawn_detached([*segue_program(), "serve", *serve_args], log_path)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if health(host, port):
            return (f"segue serve: running in the background at {url} "
                    f"(process {process.pid}, log {log_path})")
        if process.poll() is not None:
            why = last_error(log_path, since) or f"it stopped with status {process.returncode}"
            raise SegueError(f"the server did not start: {why} (log {log_path})")
        time.sleep(0.2)
    raise SegueError(f"the server did not answer within {timeout:.0f} s (log {log_path})")
