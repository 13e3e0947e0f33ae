"""Helpers for the MIDI bridge tests and bench/midi_timing.py: a JACK server, `segue midi` in
a process of its own, and a host that plays into it as a DAW does, over real JACK MIDI ports.

Times are `time.perf_counter()` seconds, the same clock (CLOCK_MONOTONIC) in every process.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import math
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import mido
import pytest
from server_helpers import check_bars

from bridge.midi import sysex
from bridge.midi.clock import CHANGE_TICKS
from bridge.midi.player import timed_notes
from bridge.midi.ports import Input, quiet_stderr, realtime_priority
from engine.abc.events import score_to_events
from engine.abc.music import parse_abc

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
FREE_BPM = 100  # the --bpm of a Segue that the "free" host plays to
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
        self.times: list[float] = []  # when each line was read
        self.changed = threading.Condition()
        self.reader = threading.Thread(target=self.read, daemon=True)
        self.reader.start()

    def read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            with self.changed:
                self.lines.append(line.rstrip("\n"))
                self.times.append(time.perf_counter())
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
class Ports:
    """The port names and output lines of a bridge run in this process, as a SegueProcess
    has them."""

    input: str
    output: str
    lines: list[str] = field(default_factory=list)


@dataclass
class Heard:
    """A message from Segue's output and when it arrived."""

    time: float
    message: Any


@dataclass
class Host:
    """A DAW: MIDI clock, transport, SysEx and notes into Segue's input at exact times on its
    own timeline (whose tempo may change); everything from Segue's output recorded with its
    arrival time."""

    segue: SegueProcess | Ports
    received: list[tuple[float, Any]] = field(default_factory=list)  # (MIDI time, message)

    def __post_init__(self) -> None:
        backend = mido.Backend(JACK, load=True)
        with quiet_stderr():  # opening a port by name connects to it
            self.out = backend.open_output(jack_port(self.segue.input, outputs=True))
            self.inp = Input("jack", jack_port(self.segue.output, outputs=False),
                             client="test-host")
        self.inp.callback = self.hear
        self.lock = threading.Lock()
        # The timeline: from beat `beat` on, beat `beat` is at `time` and a beat lasts `spb`.
        self.segments: list[tuple[float, float, float]] = [(0.0, 0.0, 0.5)]
        self.position = 0.0  # the beat of the first tick
        self.clocked = True  # whether the host sends MIDI clock and transport
        self.playing: threading.Thread | None = None
        self.running = False
        self.due: list[tuple[float, int, Any]] = []
        self.count = itertools.count()
        self.tick_lateness: list[float] = []

    def hear(self, message: Any) -> None:
        self.received.append((self.inp.arrival.source_time, message))

    @property
    def heard(self) -> list[Heard]:
        """What came from Segue, with arrival times placed by every message so far: a new
        port's first few reads place them less well (bridge.midi.ports.ArrivalTimes)."""
        offset = self.inp.arrival.offset if self.received else 0.0
        return [Heard(source + offset, message) for source, message in list(self.received)]

    def send(self, message: Any) -> None:
        with self.lock:
            self.out.send(message)

    def sysex(self, data: tuple[int, ...]) -> None:
        self.send(mido.Message("sysex", data=data))

    def start(self, bpm: float, lead: float = 0.1, *, clock: bool = True,
              position: float = 0.0) -> None:
        """Start playing at `bpm`, the song at beat `position` (a multiple of a sixteenth)
        `lead` seconds from now. With `clock`: Start (or, from a `position` other than 0, Song
        Position Pointer and Continue), then clock ticks; without: free time, only the
        messages given to `at`."""
        self.position, self.clocked = position, clock
        self.segments = [(position, time.perf_counter() + lead, 60 / bpm)]
        self.running = True
        self.playing = threading.Thread(target=self.play, daemon=True)
        self.playing.start()

    def change_tempo(self, beat: float, bpm: float) -> None:
        """From `beat` on (not yet played), play at `bpm`."""
        with self.lock:
            assert beat > self.segments[-1][0] and self.time_of(beat) > time.perf_counter()
            self.segments.append((beat, self.time_of(beat), 60 / bpm))

    def at(self, beat: float, message: Any) -> None:
        """Send `message` at `beat` of the host's timeline (just before the tick there)."""
        with self.lock:
            heapq.heappush(self.due, (beat, next(self.count), message))

    def segment(self, beat: float) -> tuple[float, float, float]:
        return next(s for s in reversed(self.segments) if s[0] <= beat or s is self.segments[0])

    def time_of(self, beat: float) -> float:
        start, at, spb = self.segment(beat)
        return at + (beat - start) * spb

    def beat_of(self, t: float) -> float:
        start, at, spb = next(s for s in reversed(self.segments)
                              if s[1] <= t or s is self.segments[0])
        return start + (t - at) / spb

    def play(self) -> None:
        """The host's transport thread: the messages due, and clock ticks, at their times."""
        realtime_priority()  # a DAW's clock runs real-time, where the system allows it
        if self.clocked and self.position:
            self.send(mido.Message("songpos", pos=round(self.position * 4)))
            self.send(mido.Message("continue"))
        elif self.clocked:
            self.send(mido.Message("start"))
        for tick in itertools.count():
            beat = self.position + tick / 24
            while True:
                with self.lock:
                    message = heapq.heappop(self.due) if self.due and \
                        self.due[0][0] <= beat else None
                if message is None:
                    break
                wait_until(self.time_of(message[0]))
                self.send(message[2])
            tick_time = self.time_of(beat)
            wait_until(tick_time)
            if not self.running:
                return
            if self.clocked:
                self.send(mido.Message("clock"))
                self.tick_lateness.append(time.perf_counter() - tick_time)

    def stop(self) -> None:
        """Stop playing; then Stop, if the host sends transport."""
        self.running = False
        if self.playing:
            self.playing.join()
        if self.clocked:
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
        if self.playing:
            self.playing.join()
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


class TimingError(AssertionError):
    """A check of when something was heard, not of what: JACK's xruns may excuse it."""


class LostMidiError(TimingError):
    """A note-on or note-off that Segue sent missing or repeated at the host. JACK drops or
    repeats the events of a cycle in which a client was late (an xrun), so xruns may excuse
    this as they excuse timing; with no xrun it stands as a fault of Segue's."""


def all_ended(notes: list[Heard], context: str = "") -> None:
    """Check that every note-on heard has its note-off (a LostMidiError if not)."""
    if left := unpaired(notes):
        raise LostMidiError(f"notes left sounding: {left}\n{context}".rstrip())


def on_time(ok: bool, message: str) -> None:
    """Assert a timing check (a TimingError if it fails)."""
    if not ok:
        raise TimingError(message)


ATTEMPTS = 3
T = TypeVar("T")
TRANSPORTS = ("sysex", "clock", "continue", "free")
POSITION = 5.0  # beats: where the "continue" host's song starts (off its bar lines)


def call_and_response(segue: SegueProcess, bpm: float, meter: str, end: str = "trigger",
                      pitches: list[int] = SCALE, early: float = 0.0, within: float = 0.005,
                      transport: str = "sysex", tempo_change: tuple[float, float] | None = None
                      ) -> dict[str, Any]:
    """`play_and_check` on a new host; again (up to ATTEMPTS in all) if its timing failed and
    JACK had xruns meanwhile (JACK loses or repeats the MIDI events of a late client: a lost
    clock tick puts Segue a 24th of a beat behind). Neither Segue nor this host runs Python on
    JACK's thread (bridge.midi.ports.Input), but a machine that stalls (a busy or virtual one)
    still makes JACK's clients late now and then. What Segue wrote (the bars it printed) is never
    excused; a note heard missing, repeated or left sounding only as timing is (LostMidiError)."""
    def take() -> dict[str, Any]:
        host = Host(segue)
        try:
            return play_and_check(host, segue, bpm, meter, end, pitches, early, within,
                                  transport, tempo_change)
        finally:
            host.close()

    return retaken(take)


def retaken(take: Callable[[], T]) -> T:
    """`take()`, again (up to ATTEMPTS in all) while its timing fails (TimingError) and JACK
    had xruns meanwhile; in the last try too, such a failure is a skip with its reason."""
    for _ in range(ATTEMPTS - 1):
        before = xruns()
        try:
            return take()
        except TimingError as error:
            if xruns() == before:
                raise
            print(f"{xruns() - before} JACK xruns, again after: {str(error).splitlines()[0]}")
    with unless_jack_lost_midi():
        return take()


@contextlib.contextmanager
def unless_jack_lost_midi(before: int | None = None) -> Iterator[None]:
    """A timing failure (TimingError) becomes a skip, with its reason, when JACK reported
    xruns since `before` (a count of `xruns()`; default: from now), which should be taken
    before the notes checked were played: JACK then drops or repeats MIDI, clock ticks among
    it, so when the host heard a note says nothing sure about Segue. Every other failure
    stands, and so does a timing failure where JACK kept up (no xruns)."""
    before = xruns() if before is None else before
    try:
        yield
    except TimingError as error:
        if xruns() > before:
            pytest.skip(f"JACK lost MIDI ({xruns() - before} xruns) in every try: "
                        f"{str(error).splitlines()[0][:200]}")
        raise


def play_and_check(host: Host, segue: SegueProcess, bpm: float, meter: str,
                   end: str = "trigger", pitches: list[int] = SCALE, early: float = 0.0,
                   within: float = 0.005, transport: str = "sysex",
                   tempo_change: tuple[float, float] | None = None) -> dict[str, Any]:
    """The host plays one bar of eighths after at least a beat of count-in, ends it by `end`
    ("trigger" or "silence"), records the answer and checks it: the bars Segue printed, every
    note of them heard, at its pitch, and each note-off; and each note within `within` seconds
    of `early` seconds before its time on the host's timeline, which has the answer start on
    the first bar line it has time for. Returns each note's error in ms and the seconds from
    the end of the phrase to the answer being ready.

    `transport`, how the host keeps time with Segue:
      "sysex"     as FL Studio with Segue's script: tempo and meter by SysEx, Start, clock;
      "clock"     Start and MIDI clock alone (Segue is told the meter with --meter);
      "continue"  Song Position Pointer (POSITION beats, off the bar lines) and Continue,
                  then clock: Segue must place the bar lines by the song position;
      "free"      nothing but the notes: Segue plays at its --bpm, which must be `bpm`.
    `tempo_change`: (beats after the answer's first bar line, new BPM): the host changes
    tempo there, mid-answer (`change_allowance`).
    """
    assert transport in TRANSPORTS and not (tempo_change and transport == "free")
    numerator, denominator = map(int, meter.split("/"))
    bar = numerator * 4 / denominator
    since, lines = time.perf_counter(), len(segue.lines)
    if transport == "sysex":
        host.sysex(sysex.tempo(bpm))
        host.sysex(sysex.meter(numerator, denominator))
    position = POSITION if transport == "continue" else 0.0
    host.start(bpm, clock=transport != "free", position=position)
    first_bar = math.ceil((position + 1) / bar) * bar  # a beat of clock gives the tempo
    phrase = [(first_bar + i / 2, pitches[i % len(pitches)]) for i in range(int(bar * 2))]
    for beat, pitch in phrase:
        host.at(beat, mido.Message("note_on", note=pitch, velocity=90))
        host.at(beat + 0.45, mido.Message("note_off", note=pitch))
    phrase_end = first_bar + bar
    if end == "trigger":
        host.at(phrase_end - 0.02, mido.Message("control_change", control=TRIGGER_CC,
                                                value=127))
    if transport == "sysex":
        ready = host.wait_state(sysex.READY, since)
    ready_line = segue.wait_for(r"^answer: ", lines)
    if transport != "sysex":
        ready = segue.times[ready_line]
    if tempo_change:
        answer_bar = int(re.search(r"from bar (\d+)", segue.lines[ready_line]).group(1))
        change_beat = (answer_bar - 1) * bar + tempo_change[0]
        host.change_tempo(change_beat, tempo_change[1])
    if transport == "sysex":
        done = host.wait_state(sysex.LISTENING, ready)
    else:
        done = segue.times[segue.wait_for(r"^listening", ready_line)]
    host.stop()
    time.sleep(0.05)  # for the last messages to arrive

    # What was played: every note of the bars Segue wrote, each ended, none more.
    abc = segue.answer_abc(lines)
    check_bars(abc, BARS)
    expected = sorted((note.start, note.pitch)
                      for note in timed_notes(score_to_events(parse_abc(abc))))
    notes = host.notes(since)
    all_ended(notes, abc)
    ons = [h for h in notes if h.message.type == "note_on" and h.message.velocity > 0]
    if sorted(h.message.note for h in ons) != sorted(p for _, p in expected):
        raise LostMidiError(f"heard {[h.message.note for h in ons]}, written {expected}\n{abc}")

    # When: the phrase heard as played, the answer from the first bar line it had time for,
    # at the host's tempo, every note where the ABC puts it, listening again after its bars.
    heard = "\n".join(segue.lines[lines:])
    on_time(f" notes, 1 bars ({end})" in heard, f"the phrase was heard otherwise:\n{heard}")
    start = round((host.beat_of(ons[0].time) - expected[0][0]) / bar) * bar
    on_time(start >= phrase_end, f"the answer began at beat {start}, in the phrase")
    on_time(host.time_of(start - bar) < max(host.time_of(phrase_end), ready + 0.05),
            "the answer skipped a bar line it had time for")
    played = sorted(ons, key=lambda h: (round((host.beat_of(h.time) - start) * 24),
                                        h.message.note))
    changed_at = (start + tempo_change[0]) if tempo_change else math.inf
    errors, report = [], []
    for heard_note, (onset, pitch) in zip(played, expected, strict=True):
        beat = start + onset
        error = heard_note.time - host.time_of(beat)
        errors.append(error * 1000)
        report.append(f"{onset:.3f}:{pitch}:{heard_note.message.note}:{error * 1000:+.1f}ms")
        allowed = within + change_allowance(host, changed_at, beat)
        on_time(heard_note.message.note == pitch and abs(error + early) < allowed,
                f"note {pitch} at beat {onset} of the answer heard {error * 1000:+.2f} ms "
                f"off (sent {early * 1000:.0f} ms early, allowed {allowed * 1000:.1f} ms); "
                f"onset:pitch:heard:error {' '.join(report)}\n{abc}")
    last = max(host.beat_of(h.time) for h in notes)
    on_time(last - start <= BARS * bar + 1 / 8, f"a note-off came {last - start} beats in")
    on_time(done >= host.time_of(start + BARS * bar) - 0.005,
            "listening again before the answer's end")
    return {"errors_ms": errors, "ready_s": ready - host.time_of(phrase_end)}


def change_allowance(host: Host, changed_at: float, beat: float) -> float:
    """Seconds a note at `beat` may be off for a tempo change at `changed_at`. Segue hears of a
    change only from the clock's ticks, and sees it once CHANGE_TICKS of them have left its
    line (bridge/midi/clock.py): until then, and for the note due as the last of them comes, it
    plays at the old tempo. So a note up to CHANGE_TICKS + 1 ticks after the change may be off
    by that many ticks' change of length; every other note is held to the usual bound."""
    ticks = CHANGE_TICKS + 1
    if not changed_at < beat <= changed_at + ticks / 24:
        return 0.0
    old, new = host.segment(changed_at - 1e-9)[2], host.segment(changed_at)[2]
    return ticks * abs(new - old) / 24
