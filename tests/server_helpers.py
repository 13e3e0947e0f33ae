"""Helpers shared by the server tests: a running server, an HTTP call, an OSC client, and a
check that an answer holds exactly the bars asked for."""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import re
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path
from typing import Any

from pythonosc.osc_message import OscMessage
from pythonosc.osc_message_builder import build_msg

from bridge.service.server import Server
from bridge.service.worker import Worker
from engine.abc.text import split_head
from engine.study.abc2midi import abc2midi_errors  # noqa: F401  (the tests import it from here)

PROMPT = "X:1\nM:3/4\nL:1/8\nK:Eb\nE2G2B2|e4 d2|c2B2G2|B6|\n"
EVENTS = {  # 3/4, three flats, two staves, a chord, a rest and a tie
    "time_signature": "3/4", "key": -3,
    "staves": [
        [{"onset": "0/1", "duration": "1/4", "pitches": [63]},
         {"onset": "1/4", "duration": "1/4", "pitches": [67, 70], "tie": True},
         {"onset": "1/2", "duration": "1/4", "pitches": [67, 70]},
         {"onset": "3/4", "duration": "1/2", "pitches": [68]},
         {"onset": "5/4", "duration": "1/4", "pitches": []}],
        [{"onset": "0/1", "duration": "3/4", "pitches": [39, 46]},
         {"onset": "3/4", "duration": "3/4", "pitches": [44]}],
    ],
}


@contextlib.contextmanager
def running_server(model: Path | str, **options: Any) -> Iterator[Server]:
    """A real Worker with the model, HTTP and OSC on free loopback ports, stopped after."""
    worker = Worker(str(model), device="cpu", **options).start()
    try:
        with Server(worker, port=0, osc_port=0) as server:
            yield server
    finally:
        worker.stop()


def hold_engine(engine: Any, gate: str, limit_s: float = 60) -> None:
    """A job for the model's process that holds it until the file `gate` exists (a test's
    gate across processes; the MIDI bridge, say, has the model)."""
    deadline = time.monotonic() + limit_s
    while not os.path.exists(gate) and time.monotonic() < deadline:
        time.sleep(0.02)


def nothing(engine: Any) -> None:
    """A job for the model's process that does nothing."""


def call(port: int, method: str, path: str, body: Any = None, *,
         headers: dict[str, str] | None = None, raw: bytes | None = None,
         timeout: float = 120) -> tuple[int, dict[str, Any]]:
    """One HTTP request to 127.0.0.1:port; (status, decoded JSON answer)."""
    status, _, answer = exchange(port, method, path, body, headers=headers, raw=raw,
                                 timeout=timeout)
    return status, answer


def exchange(port: int, method: str, path: str, body: Any = None, *,
             headers: dict[str, str] | None = None, raw: bytes | None = None,
             timeout: float = 120) -> tuple[int, dict[str, str], dict[str, Any]]:
    """One HTTP request to 127.0.0.1:port; (status, headers, decoded JSON answer)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    data = raw if raw is not None else None if body is None else json.dumps(body).encode()
    try:
        connection.request(method, path, body=data, headers=headers or {})
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), json.loads(response.read())
    finally:
        connection.close()


def raw_exchange(port: int, data: bytes, *, close_write: bool = True,
                 timeout: float = 60, source: str = "127.0.0.1") -> bytes:
    """Send raw bytes on a new connection (from address `source`) and read until the
    server closes it (after closing our side for writing, unless `close_write` is False)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout,
                                  source_address=(source, 0)) as sock:
        sock.sendall(data)
        if close_write:
            sock.shutdown(socket.SHUT_WR)
        answer = b""
        while chunk := sock.recv(65_536):
            answer += chunk
    return answer


def wait_idle(server: Server, limit_s: float = 60) -> None:
    """Wait until nothing is running or queued in the server's worker, then assert its
    processes are all alive: what a request started has ended, and nothing it broke."""
    worker = server.worker
    deadline = time.monotonic() + limit_s
    while (worker.queued() or worker.readers.working) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert worker.queued() == 0 and worker.readers.working == 0, "work left running"
    assert worker.process.alive() and all(child.alive() for child in worker.readers.children)


def bar_lines(abc: str) -> dict[str, int]:
    """Bars of each voice of a tune's body, by its bar lines (the engine writes `|` and a final
    `|]`; a multi-bar rest `Z3 |` counts its three bars)."""
    counts: dict[str, int] = {}
    voice = "1"
    for line in split_head(abc)[1].splitlines():
        if line.startswith("V:"):
            voice = line[2:].strip()
            continue
        multi_rests = sum(int(n) - 1 for n in re.findall(r"Z(\d+)", line))  # `Z3 |`: 3 bars
        counts[voice] = counts.get(voice, 0) + line.count("|") + multi_rests
    return counts


def check_bars(abc: str, bars: int) -> None:
    """Assert every voice of `abc` has exactly `bars` bars of the meter's length, the first too.

    Bars are counted by bar lines and measured by abc2abc (Debian abcmidi), a reader that is
    not ours and that reports `Bar N is x/y not ...` for a bar of the wrong length. abc2abc
    takes a tune's first bar for a pickup and never measures it, so each voice is given a
    whole bar of rest before its own first bar here (`with_a_bar_of_rest`).
    """
    counts = bar_lines(abc)
    assert counts and set(counts.values()) == {bars}, (counts, abc)
    with tempfile.NamedTemporaryFile("w", suffix=".abc") as file:
        file.write(with_a_bar_of_rest(abc))
        file.flush()
        report = subprocess.run(["abc2abc", file.name], capture_output=True, text=True,
                                check=True, timeout=30)
    assert "Error" not in report.stdout + report.stderr, (report.stdout, abc)


def with_a_bar_of_rest(abc: str) -> str:
    """`abc` with a bar of rest (`z` as long as the head's meter's bar) before the first music
    line of each voice."""
    head, body = split_head(abc)
    fields = dict(re.findall(r"^([ML]):\s*(\S+)", head, flags=re.MULTILINE))
    meter_text = {"C": "4/4", "C|": "2/2"}.get(fields.get("M", "4/4"), fields.get("M", "4/4"))
    numerators, denominator = meter_text.split("/")
    meter = Fraction(sum(map(int, numerators.split("+"))), int(denominator))
    unit = Fraction(fields["L"]) if "L" in fields else Fraction(1, 8 if meter >= 0.75 else 16)
    rest = f"z{meter / unit}|"
    rested: set[str] = set()
    voice, lines = "1", []
    for line in body.splitlines():
        if line.startswith("V:"):
            voice = line[2:].split()[0]
        elif line.strip() and not re.match(r"^[A-Za-z]:|^%", line) and voice not in rested:
            rested.add(voice)
            line = rest + line
        lines.append(line)
    return head + "\n".join(lines) + "\n"


def check_events(answer: dict[str, Any], bars: int, meter: str) -> None:
    """Assert each voice of an answer's events lasts exactly `bars` bars of `meter`."""
    events, bar = answer["events"], Fraction(meter)
    for staff in events["staves"]:
        voices: dict[int, Fraction] = {}
        for event in staff:
            assert Fraction(event["onset"]) >= voices.get(event["voice"], 0), staff
            voices[event["voice"]] = Fraction(event["onset"]) + Fraction(event["duration"])
            assert len(event["tpcs"]) == len(event["pitches"])
        assert voices and set(voices.values()) == {bars * bar}, \
            (voices, bars, meter, answer["abc"])


class OscClient:
    """A UDP socket that sends OSC messages and reads the replies sent back to it."""

    def __init__(self, port: int, timeout: float = 120) -> None:
        self.server = ("127.0.0.1", port)
        self.socket = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.socket.bind(("127.0.0.1", 0))
        self.socket.settimeout(timeout)
        self.port = self.socket.getsockname()[1]

    def send(self, address: str, *args: Any) -> None:
        self.send_raw(build_msg(address, list(args)).dgram)

    def send_raw(self, data: bytes) -> None:
        self.socket.sendto(data, self.server)

    def receive(self) -> tuple[str, list[Any]]:
        """The next reply: (address, arguments)."""
        message = OscMessage(self.socket.recv(65_535))
        return message.address, list(message.params)

    def ask(self, address: str, *args: Any) -> tuple[str, list[Any]]:
        self.send(address, *args)
        return self.receive()

    def close(self) -> None:
        self.socket.close()
