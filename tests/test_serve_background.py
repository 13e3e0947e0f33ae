"""`segue serve --detach` and `--idle-exit`: a server that a program without a terminal can start
(the MuseScore plug-in does), that outlives whoever started it, and that stops by itself once
nobody uses it. Real processes, real HTTP; the tiny model of conftest.py loads in seconds."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from server_helpers import call

from bridge.launch import health

IDLE_MINUTES = 0.05  # 3 seconds


def segue(*args: str, home: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SEGUE_HOME": str(home)}
    return subprocess.run([sys.executable, "-m", "bridge", *args], capture_output=True,
                          text=True, timeout=300, env=env, check=False)


def free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_until_gone(port: int, seconds: float) -> None:
    """Return once nothing answers on `port` (asking for health is no use of the server);
    pytest.fail after `seconds`."""
    start = time.monotonic()
    while health("127.0.0.1", port, timeout=1):
        if time.monotonic() - start > seconds:
            pytest.fail(f"the server on {port} still answers after {seconds} s")
        time.sleep(0.2)


def wait_for_exit(pid: int, seconds: float) -> None:
    """Return once process `pid` (not our child: its parent, the launcher, has ended) is gone
    or a zombie; pytest.fail after `seconds`."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (FileNotFoundError, ProcessLookupError):
            return
        if state in ("Z", "X"):
            return
        time.sleep(0.1)
    pytest.fail(f"process {pid} still runs after {seconds} s")


@pytest.fixture
def started(model_path: Path, tmp_path: Path) -> Iterator[tuple[int, int, str]]:
    """A server started with --detach --idle-exit: (port, pid, the launcher's line)."""
    port = free_port()
    result = segue("serve", "--detach", "--model", str(model_path), "--port", str(port),
                   "--no-osc", "--idle-exit", str(IDLE_MINUTES), home=tmp_path)
    assert result.returncode == 0, (result.stdout, result.stderr)
    found = re.search(r"\(process (\d+), log ", result.stdout)
    assert found, result.stdout
    pid = int(found.group(1))
    try:
        yield port, pid, result.stdout
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)


def test_detach_starts_a_server_that_outlives_the_command(started, tmp_path: Path) -> None:
    port, pid, stdout = started
    log = tmp_path / "serve.log"
    assert stdout.splitlines() == [                      # for the program that asked
        f"segue serve: starting in the background (log {log})",
        f"segue serve: running in the background at http://127.0.0.1:{port}/v1 "
        f"(process {pid}, log {log})"]
    answer = health("127.0.0.1", port)                  # the command has ended; it answers
    assert answer and answer["model"] == "tiny-gpt2"
    assert os.getsid(pid) == pid != os.getsid(0)        # its own session: no hang-up reaches it
    assert "segue serve: model tiny-gpt2" in (tmp_path / "serve.log").read_text()


def test_a_second_detach_starts_nothing(started, model_path: Path, tmp_path: Path) -> None:
    port, _pid, _ = started
    again = segue("serve", "--detach", "--model", str(model_path), "--port", str(port),
                  "--no-osc", home=tmp_path)
    assert again.returncode == 0
    assert again.stdout == f"segue serve: already running at http://127.0.0.1:{port}/v1\n"
    assert (tmp_path / "serve.log").read_text().count("--- ") == 1   # one server started


def test_the_server_stops_once_unused_and_not_before(started, tmp_path: Path) -> None:
    port, pid, _ = started
    busy_until = time.monotonic() + IDLE_MINUTES * 60 * 2.5   # requests keep it alive
    while time.monotonic() < busy_until:
        status, _ = call(port, "POST", "/v1/continue",
                         {"abc": "X:1\nL:1/8\nK:G\nGABc d2B2|", "bars": 1, "seed": 1})
        assert status == 200
        answered = time.monotonic()
        time.sleep(IDLE_MINUTES * 60 / 3)
    wait_until_gone(port, 60)
    assert time.monotonic() - answered >= IDLE_MINUTES * 60 * 0.9
    wait_for_exit(pid, 30)
    log = (tmp_path / "serve.log").read_text()
    assert f"unused for {IDLE_MINUTES:g} minutes; stopping" in log
    assert log.rstrip().endswith("segue serve: stopped")


def test_a_server_that_cannot_start_is_one_line_of_error(tmp_path: Path) -> None:
    result = segue("serve", "--detach", "--model", str(tmp_path / "nothing"), "--port",
                   str(free_port()), home=tmp_path)
    assert result.returncode == 1 and result.stderr == ""
    assert re.fullmatch(r"segue serve: starting in the background \(log .*serve\.log\)\n"
                        r"segue serve: error: the server did not start: .*nothing: no such "
                        r"checkpoint folder \(log .*serve\.log\)\n", result.stdout), result.stdout


@pytest.mark.parametrize(("args", "message"), [
    (["--detach", "--port", "0"], "--detach needs a fixed --port"),
    (["--idle-exit", "0"], "--idle-exit must be a number of minutes above 0"),
])
def test_bad_options_are_refused(args: list[str], message: str, tmp_path: Path) -> None:
    result = segue("serve", *args, home=tmp_path)
    assert result.returncode == 1 and message in result.stdout + result.stderr
