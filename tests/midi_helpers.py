"""Helpers for the MIDI bridge tests and bench/midi_timing.py: a JACK server, `segue midi` in
a process of its own, and a host that plays into it as a DAW does, over real JACK MIDI ports.

Times are `time.perf_counter()` seconds, the same clock (CLOCK_MONOTONIC) in every process.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import mido
import pytest
from server_helpers import check_bars

from bridge import sysex
from bridge.events import score_to_events
from bridge.midi_ports import Input, quiet_stderr, realtime_priority
from bridge.player import timed_notes
from engine.music import parse_abc

ROOT = Path(__file__).resolve().parent.parent
BARS = 2  # of each answer in `call_and_response`
TRIGGER_CC = 102  # the --trigger-cc the bridge is started with
# JACK passes MIDI on once a period, so the clock reaches Segue and each note reaches the host
# up to a period late, half a period on average each way. The tests tell Segue so, as a
# musician would (--latency), and check what the host hears: one period of the server that
# `jack_server` starts, in ms.
PERIOD, RATE = 128, 48000  # frames a period and a second of the JACK server started here
JACK_LATENCY = ("--latency", f"{1000 * PERIOD / RATE:.2f}")
SCALE = [60, 62, 64, 65, 67, 69, 71, 72]
JACK = "mido.backends.rtmidi/UNIX_JACK"
JACK_LOG: Path | None = None  # the log of a server `jack_server` started


def jack_running() -> bool:
    """Whether the JACK server that $JACK_DEFAULT_SERVER names (or 'default') runs."""
    check = subprocess.run(["jack_wait", "--check"], capture_output=True, text=True, timeout=10)
    return check.stdout.strip() == "running"


def realtime_allowed() -> bool:
    """Whether this process may make real-time (SCHED_FIFO) threads, as JACK's are."""
    return subprocess.run(["chrt", "-f", "1", "true"], capture_output=True).returncode == 0


@contextlib.contextmanager
def jack_server() -> Iterator[None]:
    """The running JACK server, else a dummy-driver one (-p 128) started here and stopped after.

    One started here gets a name of its own ($JACK_DEFAULT_SERVER, for every JACK client of
    this process and its children), so it meets no other user's server. It runs real-time
    where the system allows it, as a musician's JACK does (its clients' process threads then
    run real-time too); else --no-realtime, which misses cycles on a busy machine (`xruns`).
    """
    if jack_running():
        yield
        return
    global JACK_LOG
    saved = os.environ.get("JACK_DEFAULT_SERVER")
    name = f"segue-tests-{os.getpid()}"
    env = {**os.environ, "JACK_NO_AUDIO_RESERVATION": "1"}
    JACK_LOG = Path(tempfile.mkstemp(prefix="jackd-", suffix=".log")[1])
    with JACK_LOG.open("w") as log:
        realtime = ["--realtime"] if realtime_allowed() else ["--no-realtime"]
        server = subprocess.Popen(["jackd", "-n", name, *realtime, "-d", "dummy", "-r",
                                   str(RATE), "-p", str(PERIOD)],
                                  stdout=log, stderr=subprocess.STDOUT, env=env)
    os.environ["JACK_DEFAULT_SERVER"] = name
    try:
        subprocess.run(["jack_wait", "--wait", "--timeout", "10"], capture_output=True,
                       timeout=20, check=False)
        if not jack_running():
            raise RuntimeError("jackd did not start")
        yield
    finally:
        server.terminate()
        server.wait(timeout=10)
        JACK_LOG.unlink()
        JACK_LOG = None
        if saved is None:
            os.environ.pop("JACK_DEFAULT_SERVER", None)
        else:
            os.environ["JACK_DEFAULT_SERVER"] = saved


def xruns() -> int:
    """How many times the JACK server started here has found a client late (an xrun: on an
    overloaded machine a late client's MIDI events for that cycle are lost or repeated);
    0 when the server is not ours to read."""
    if JACK_LOG is None:
        return 0
    return JACK_LOG.read_text(errors="replace").count("XRun: client")


def jack_port(part: str, outputs: bool) -> str:
    """The full JACK name of the one port whose name ends with `part` (waits for it a while)."""
    backend = mido.Backend(JACK, load=True)
    deadline = time.monotonic() + 30
    while True:
        with quiet_stderr():
            names = backend.get_output_names() if outputs else backend.get_input_names()
        matches = [n for n in names if n.endswith(":" + part)]
        if len(matches) == 1 or time.monotonic() > deadline:
            assert len(matches) == 1, (part, names)
            return matches[0]
        time.sleep(0.05)


class SegueProcess:
    """`segue midi --api jack` with the given options, its output lines kept as they come;
    `program` runs Segue (default: this Python's `-m bridge`; the built app in test_app)."""

    def __init__(self, model: Path | str | None, name: str, *options: str,
                 program: tuple[str, ...] = (sys.executable, "-m", "bridge")) -> None:
        self.input, self.output = f"{name}-in", f"{name}-out"
        command = [*program, "midi", "--api", "jack", "--device", "cpu",
                   "--input", self.input, "--output", self.output, *options]
        if model is not None:
            command += ["--model", str(model)]
        self.process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE,
                                        stderr=subprocess.STDOUT, text=True,
                                        env={**os.environ, "PYTHONUNBUFFERED": "1"})
        self.lines: list[str] = []
        self.changed = threading.Condition()
        self.reader = threading.Thread(target=self.read, daemon=True)
        self.reader.start()

    def read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            with self.changed:
                self.lines.append(line.rstrip("\n"))
                self.changed.notify_all()

    def wait_for(self, pattern: str, since: int = 0, timeout: float = 60) -> int:
        """The index of the first output line from `since` on that matches `pattern`."""
        deadline = time.monotonic() + timeout
        with self.changed:
            while True:
                for index in range(since, len(self.lines)):
                    if re.search(pattern, self.lines[index]):
                        return index
                left = deadline - time.monotonic()
                assert left > 0 and self.process.poll() is None, \
                    f"no {pattern!r} in:\n" + "\n".join(self.lines)
                self.changed.wait(left)

    def answer_abc(self, since: int = 0) -> str:
        """The ABC of the first answer printed from line `since` on."""
        index = self.wait_for(r"^answer: ", since)
        self.wait_for(r"^  X:", index)
        with self.changed:
            rows = itertools.takewhile(lambda row: row.startswith("  "), self.lines[index + 1:])
            return "\n".join(row[2:] for row in rows) + "\n"

    def stop(self, signal_number: int = 15) -> int:
        """Send a signal (SIGTERM: the CLI's clean stop) and return the exit status."""
        if self.process.poll() is None:
            self.process.send_signal(signal_number)
        try:
            status = self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            raise
        self.reader.join(timeout=5)
        return status


@dataclass
class Heard:
    """A message from Segue's output and when it arrived."""

    time: float
    message: Any


@dataclass
class Host:
    """A DAW: MIDI clock, transport, SysEx and notes into Segue's input at exact times on its
    own timeline; everything from Segue's output recorded with its arrival time."""

    segue: SegueProcess
    received: list[tuple[float, Any]] = field(default_factory=list)  # (MIDI time, message)

    def __post_init__(self) -> None:
        backend = mido.Backend(JACK, load=True)
        with quiet_stderr():  # opening a port by name connects to it
            self.out = backend.open_output(jack_port(self.segue.input, outputs=True))
            self.inp = Input("jack", jack_port(self.segue.output, outputs=False),
                             client="test-host")
        self.inp.handle = self.hear
        self.lock = threading.Lock()
        self.origin = 0.0  # the time of beat 0
        self.spb = 0.5
        self.clocking: threading.Thread | None = None
        self.running = False
        self.due: list[tuple[float, int, Any]] = []
        self.count = itertools.count()
        self.tick_lateness: list[float] = []

    def hear(self, message: Any, t: float) -> None:
        self.received.append((self.inp.arrival.source_time, message))

    @property
    def heard(self) -> list[Heard]:
        """What came from Segue, with arrival times placed by every message so far: a new
        port's first few reads place them less well (bridge.midi_ports.ArrivalTimes)."""
        offset = self.inp.arrival.offset if self.received else 0.0
        return [Heard(source + offset, message) for source, message in list(self.received)]

    def send(self, message: Any) -> None:
        with self.lock:
            self.out.send(message)

    def sysex(self, data: tuple[int, ...]) -> None:
        self.send(mido.Message("sysex", data=data))

    def start(self, bpm: float, lead: float = 0.1) -> None:
        """Start the transport: Start, then clock ticks; beat 0 is the first tick, `lead`
        seconds from now."""
        self.spb, self.origin = 60 / bpm, time.perf_counter() + lead
        self.running = True
        self.clocking = threading.Thread(target=self.clock, daemon=True)
        self.clocking.start()

    def at(self, beat: float, message: Any) -> None:
        """Send `message` at `beat` of the host's timeline (just before the tick there)."""
        with self.lock:
            heapq.heappush(self.due, (self.time_of(beat), next(self.count), message))

    def time_of(self, beat: float) -> float:
        return self.origin + beat * self.spb

    def beat_of(self, t: float) -> float:
        return (t - self.origin) / self.spb

    def clock(self) -> None:
        realtime_priority()  # a DAW's clock runs real-time, where the system allows it
        self.send(mido.Message("start"))
        for tick in itertools.count():
            tick_time = self.time_of(tick / 24)
            while True:
                with self.lock:
                    message = heapq.heappop(self.due) if self.due and \
                        self.due[0][0] <= tick_time else None
                if message is None:
                    break
                wait_until(message[0])
                self.send(message[2])
            wait_until(tick_time)
            if not self.running:
                return
            self.send(mido.Message("clock"))
            self.tick_lateness.append(time.perf_counter() - tick_time)

    def stop(self) -> None:
        """Stop the clock, then send Stop."""
        self.running = False
        if self.clocking:
            self.clocking.join()
        self.send(mido.Message("stop"))

    def states(self, code: int, since: float = 0.0) -> list[float]:
        """Arrival times of Segue's STATE messages with `code`, from time `since` on."""
        return [h.time for h in self.heard
                if h.time >= since and state_code(h.message) == code]

    def wait_state(self, code: int, since: float, timeout: float = 60) -> float:
        deadline = time.monotonic() + timeout
        while not self.states(code, since):
            assert time.monotonic() < deadline, \
                f"no state {code} from Segue, which said:\n" + "\n".join(self.segue.lines[-20:])
            time.sleep(0.01)
        return self.states(code, since)[0]

    def notes(self, since: float = 0.0) -> list[Heard]:
        """Note-ons and note-offs (note-on velocity 0 included) heard from time `since` on."""
        return [h for h in self.heard if h.time >= since and
                h.message.type in ("note_on", "note_off")]

    def close(self) -> None:
        self.running = False
        if self.clocking:
            self.clocking.join()
        self.inp.close()
        self.out.close()


def wait_until(t: float) -> None:
    """Sleep until `t` (Linux wakes a sleeper within ~0.1 ms; spinning would take the CPU that
    JACK's clients need on a small machine)."""
    time.sleep(max(0.0, t - time.perf_counter()))


def state_code(message: Any) -> int | None:
    """The state a STATE SysEx message from Segue reports, else None."""
    command = sysex.decode(message.data) if message.type == "sysex" else None
    return command.values[0] if command and command.command == sysex.STATE else None


def unpaired(notes: list[Heard]) -> list[Any]:
    """The note-ons that no note-off of the same channel and pitch ends before the next one."""
    sounding: dict[tuple[int, int], Any] = {}
    left: list[Any] = []
    for heard in notes:
        message = heard.message
        key = (message.channel, message.note)
        if message.type == "note_on" and message.velocity > 0:
            if key in sounding:
                left.append(sounding[key])
            sounding[key] = message
        else:
            sounding.pop(key, None)
    return left + list(sounding.values())


ATTEMPTS = 3


def call_and_response(segue: SegueProcess, bpm: float, meter: str, end: str = "trigger",
                      pitches: list[int] = SCALE, early: float = 0.0,
                      within: float = 0.005) -> dict[str, Any]:
    """`play_and_check` on a new host; again (up to ATTEMPTS in all) if JACK had xruns meanwhile
    (JACK loses or repeats the MIDI events of a late client: a lost clock tick puts Segue a
    24th of a beat behind). Neither Segue nor this host runs Python on JACK's thread
    (bridge.midi_ports.Input), but a machine that stalls (a busy or virtual one) still makes
    JACK's clients late now and then."""
    for _ in range(ATTEMPTS - 1):
        before, host = xruns(), Host(segue)
        try:
            return play_and_check(host, segue, bpm, meter, end, pitches, early, within)
        except AssertionError as error:
            if xruns() == before:
                raise
            print(f"{xruns() - before} JACK xruns, again after: {str(error).splitlines()[0]}")
        finally:
            host.close()
    host = Host(segue)
    try:
        with unless_jack_lost_midi():
            return play_and_check(host, segue, bpm, meter, end, pitches, early, within)
    finally:
        host.close()


@contextlib.contextmanager
def unless_jack_lost_midi() -> Iterator[None]:
    """A failure becomes a skip, with its reason, when JACK reported xruns meanwhile: JACK then
    drops or repeats MIDI, so what the host heard says nothing sure about Segue. Where JACK
    keeps up (no xruns), every failure stands."""
    before = xruns()
    try:
        yield
    except AssertionError as error:
        if xruns() > before:
            pytest.skip(f"JACK lost MIDI ({xruns() - before} xruns) in every try: "
                        f"{str(error).splitlines()[0][:200]}")
        raise


def play_and_check(host: Host, segue: SegueProcess, bpm: float, meter: str,
                   end: str = "trigger", pitches: list[int] = SCALE,
                   early: float = 0.0, within: float = 0.005) -> dict[str, Any]:
    """The host plays one bar of eighths after a bar of count-in (MIDI clock at `bpm`, the meter
    by SysEx as the FL Studio script sends it), ends it by `end` ("trigger" or "silence"),
    records the answer and checks it: its first note within `within` seconds of `early`
    seconds before its bar line. Returns its timing figures: each note's error in ms,
    and the seconds from the end of the phrase to the answer being ready."""
    numerator, denominator = map(int, meter.split("/"))
    bar = numerator * 4 / denominator
    since, lines = time.perf_counter(), len(segue.lines)
    host.sysex(sysex.tempo(bpm))
    host.sysex(sysex.meter(numerator, denominator))
    host.start(bpm)
    phrase = [(bar + i / 2, pitches[i % len(pitches)]) for i in range(int(bar * 2))]
    for beat, pitch in phrase:
        host.at(beat, mido.Message("note_on", note=pitch, velocity=90))
        host.at(beat + 0.45, mido.Message("note_off", note=pitch))
    phrase_end = 2 * bar
    if end == "trigger":
        host.at(phrase_end - 0.02, mido.Message("control_change", control=TRIGGER_CC,
                                                value=127))
    ready = host.wait_state(sysex.READY, since)
    done = host.wait_state(sysex.LISTENING, ready)
    host.stop()

    abc = segue.answer_abc(lines)
    check_bars(abc, BARS)
    assert f" notes, 1 bars ({end})" in "\n".join(segue.lines[lines:])
    expected = sorted((start, pitch) for start, _, pitch
                      in timed_notes(score_to_events(parse_abc(abc))))
    notes = [h for h in host.notes(since) if h.time < done + 0.05]
    assert not unpaired(notes)
    ons = [h for h in notes if h.message.type == "note_on" and h.message.velocity > 0]
    assert ons and len(ons) == len(expected), (ons, expected)

    # The answer's first bar line: from its first note and where the ABC puts that note.
    start = round((host.beat_of(ons[0].time) - expected[0][0]) / bar) * bar
    assert start >= phrase_end
    assert host.time_of(start - bar) < max(host.time_of(phrase_end), ready + 0.05), \
        "the answer skipped a bar line it had time for"
    first_error = ons[0].time - host.time_of(start + expected[0][0])
    played = sorted((host.beat_of(h.time) - start, h.message.note) for h in ons)
    assert abs(first_error + early) < within, \
        f"first note {first_error * 1000:.2f} ms off its bar line: {played} {expected} {abc}"

    # The rest at the host's tempo, every note where the ABC puts it (within a 32nd note),
    # every note-off by the end of the answer's last bar.
    for (beat, pitch), (onset, want) in zip(played, expected, strict=True):
        assert abs(beat - onset) < 1 / 8 and pitch == want, (played, expected)
    assert max(host.beat_of(h.time) for h in notes) - start <= BARS * bar + 1 / 8
    assert done >= host.time_of(start + BARS * bar) - 0.005  # listens again after its bars
    errors = [(h.time - host.time_of(start + onset)) * 1000
              for h, (onset, _) in zip(ons, expected, strict=True)]
    return {"errors_ms": errors, "ready_s": ready - host.time_of(phrase_end)}
