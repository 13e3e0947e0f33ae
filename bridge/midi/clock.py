"""Where the host is in time: tempo, meter and bar lines, from MIDI clock or a set tempo.

Positions are counted in beats (quarter notes) from the host's song start, times in seconds of
`time.perf_counter()`. What sets the timeline, best first:

1. MIDI clock (24 ticks a beat) with the transport running (Start, Continue, Song Position
   Pointer). Single tick intervals jitter by a quarter of their length, so the tempo comes
   from the last two beats of ticks (a beat at least). Transports and busy CPUs only ever
   make ticks late, so the line is laid along their early edge (the 10th percentile of the
   residuals), not through their middle, and placed by the last half beat of ticks, which a
   tempo ramp has moved least (`fit_ticks`). When the host changes tempo at a stroke, the
   ticks leave that line, further with each one (`tempo_changed`): then the window starts
   again from the last three ticks, whose own slope gives the tempo until they make a beat.
   Without that, a fit over beats lags the change by as long, sending notes early or late by
   a good part of a beat; with it, only the notes due before the clock has shown the change
   are off, by as much as its ticks moved. Simulated with JACK's 128-frame period
   (tests/test_midi_bridge.py `follow`): within 1.5 ms held steady, even with 5% of the
   ticks held up 3-30 ms; within 5 ms on a ramp of 20 BPM over 8 beats.
2. The host's tempo and song position sent as SysEx (the FL Studio script, bridge/midi/sysex.py).
3. A set tempo (`--bpm`), with the bar lines anchored where the phrase begins (`anchor`).

The timeline runs on without jumps: when the host's song position jumps while it plays (a
loop, the playhead moved), only the bar phase follows it, so an answer already queued in
beats keeps its place in time.

The meter comes from the host's SysEx, else from `--meter`: MIDI clock does not carry one.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

TICKS_PER_BEAT = 24
WINDOW = 48  # ticks the tempo is fitted over: two beats
MIN_TICKS = TICKS_PER_BEAT  # fewer give no tempo: average over a beat at least
PHASE_TICKS = 12  # the last ticks whose early edge places the line
CHANGE_TICKS = 3  # ticks a window starts again from after a tempo change
JITTER_TICKS = 8  # ticks that measure their jitter (until they have: no change is seen)
CHANGE_MIN_JITTER = 0.001  # seconds: ticks nearer their line than this never mean a change,
CHANGE_JITTERS = 1.5  # nor ticks nearer than this many times the ticks' own spread
CLOCK_TIMEOUT = 0.5  # seconds without a tick: the host stopped sending clock
EARLY_EDGE = 0.1  # the quantile of residuals the line is laid along
BPM_RANGE = (20.0, 400.0)
POSITION_TOLERANCE = 1 / 8  # beats: a host position this close to ours is not a jump
POSITION_TIMEOUT = 3.0  # seconds without a SysEx song position (the script sends one a second)


@dataclass(frozen=True)
class Line:
    """A straight stretch of the timeline: beat `beat` falls at `time`, then `spb` s a beat."""

    time: float
    beat: float
    spb: float

    def time_of(self, beat: float) -> float:
        return self.time + (beat - self.beat) * self.spb

    def beat_at(self, t: float) -> float:
        return self.beat + (t - self.time) / self.spb


def parse_meter(text: str) -> tuple[int, int]:
    """'3/4' -> (3, 4); ValueError for anything that is not a simple meter."""
    numerator, _, denominator = text.partition("/")
    n, d = int(numerator), int(denominator)
    if not 1 <= n <= 32 or d not in (1, 2, 4, 8, 16, 32):
        raise ValueError(text)
    return n, d


def wrap(delta: float, bar: float) -> float:
    """`delta` moved by whole bars into [-bar/2, bar/2): the change of bar phase it makes."""
    return (delta + bar / 2) % bar - bar / 2


class Clock:
    """The host's timeline, fed from the MIDI input thread and read from any other."""

    def __init__(self, bpm: float = 120.0, meter: tuple[int, int] = (4, 4)) -> None:
        self.lock = threading.Lock()
        self.default_bpm = bpm
        self.host_bpm: float | None = None
        self.meter = meter
        self.ticks: deque[tuple[int, float]] = deque(maxlen=WINDOW)  # (tick count, time)
        self.count = 0  # clock messages received
        self.fit: tuple[float, float] | None = None  # tick period and time of tick count 0
        self.measured = False  # whether the window's own slope gives the tempo (not the set one)
        self.jitter: float | None = None  # seconds: the ticks' spread about their line
        # The last ticks' offsets from the line, each with the jitter measured before it.
        self.last_offsets: deque[tuple[float, float]] = deque(maxlen=3)
        self.clock_playing = False
        self.started_at = 0.0  # when Start or Continue came
        self.start_count, self.start_beat = 0, 0.0  # tick `start_count` is at `start_beat`
        self.stopped_beat = 0.0  # where Continue resumes
        self.host_line: Line | None = None  # from SysEx song position, while playing
        self.position_at = 0.0  # when the last SysEx song position came
        self.free = Line(time.perf_counter(), 0.0, 60.0 / bpm)

    # -- fed by the input thread --------------------------------------------------------
    def on_message(self, message: Any, t: float) -> None:
        """Take a mido message of MIDI clock or transport, received at time `t`."""
        kind = message.type
        with self.lock:
            if kind == "clock":
                self.tick(t)
            elif kind in ("start", "continue"):  # ticks from before may be at another tempo
                self.restart()
                self.clock_playing, self.started_at = True, t
                self.start_count = self.count
                self.start_beat = 0.0 if kind == "start" else self.stopped_beat
            elif kind == "stop":
                if self.clock_playing:
                    self.stopped_beat = self.song_beat(self.count)
                self.clock_playing = False
            elif kind == "songpos":
                self.stopped_beat = message.pos / 4  # in sixteenths ("MIDI beats")
                if self.clock_playing:  # a jump while playing: follow its bar phase only
                    beat = self.song_beat(self.count)
                    self.start_count = self.count
                    self.start_beat = beat + wrap(self.stopped_beat - beat, self.bar_beats)

    def restart(self, tempo_change: bool = False) -> None:
        """Forget the ticks (the lock is held): those to come may be on another line, and
        unless the tempo changed, on another system whose jitter is not known."""
        self.ticks.clear()
        self.fit = None
        self.measured = False
        self.last_offsets.clear()
        if not tempo_change:
            self.jitter = None

    def tick(self, t: float) -> None:
        """One MIDI clock tick at time `t` (the lock is held)."""
        if self.ticks and t - self.ticks[-1][1] > CLOCK_TIMEOUT:
            self.restart()  # the clock paused: old ticks are on another line
        if self.fit is not None and self.jitter is not None and len(self.ticks) >= CHANGE_TICKS:
            period, origin = self.fit
            jitter = max(CHANGE_MIN_JITTER, CHANGE_JITTERS * self.jitter)
            self.last_offsets.append((t - (origin + period * self.count), jitter))
            if tempo_changed(self.last_offsets):
                kept = list(self.ticks)[1 - CHANGE_TICKS:]
                self.restart(tempo_change=True)
                self.ticks.extend(kept)
                self.measured = True
        self.ticks.append((self.count, t))
        self.count += 1
        self.fit = fit_ticks(self.ticks, None if self.measured else
                             self.fallback_spb() / TICKS_PER_BEAT)
        self.measured = self.measured or len(self.ticks) >= MIN_TICKS
        if self.fit and len(self.ticks) >= JITTER_TICKS:
            self.jitter = spread(self.ticks, *self.fit)

    def song_beat(self, count: int) -> float:
        """The song position in beats at tick `count`, by the transport's ticks."""
        return self.start_beat + (count - self.start_count) / TICKS_PER_BEAT

    def set_tempo(self, bpm: float, t: float) -> None:
        """The host's tempo (SysEx); keeps the free grid's current beat where it is."""
        with self.lock:
            beat = self.free.beat_at(t)
            self.host_bpm = bpm
            self.free = Line(t, beat, 60.0 / bpm)
            if self.host_line:
                self.host_line = Line(t, self.host_line.beat_at(t), 60.0 / bpm)

    def set_meter(self, numerator: int, denominator: int) -> None:
        """The host's meter (SysEx)."""
        with self.lock:
            self.meter = (numerator, denominator)

    def set_position(self, playing: bool, ticks: int, ppq: int, t: float) -> None:
        """The host's song position (SysEx): `ticks` at `ppq` ticks a beat, at time `t`."""
        with self.lock:
            if not playing:
                self.host_line = None
                return
            self.position_at = t
            beat, line = ticks / ppq, self.host_line
            if line is None:
                self.host_line = Line(t, beat, self.fallback_spb())
                return
            change = wrap(beat - line.beat_at(t), self.bar_beats)
            if abs(change) > POSITION_TOLERANCE:  # a jump, not the host's idle-time jitter
                self.host_line = Line(t, line.beat_at(t) + change, line.spb)

    def anchor(self, t: float, beat: float = 0.0) -> None:
        """Put beat `beat` of the free grid (no host transport) at time `t`."""
        with self.lock:
            self.free = Line(t, beat, self.fallback_spb())

    # -- read by anyone -----------------------------------------------------------------
    def following(self, now: float | None = None) -> bool:
        """Whether MIDI clock is coming (a tick in the last CLOCK_TIMEOUT) with a tempo."""
        now = time.perf_counter() if now is None else now
        return (self.fit is not None and bool(self.ticks)
                and now - self.ticks[-1][1] < CLOCK_TIMEOUT)

    def fallback_spb(self) -> float:
        """Seconds a beat without MIDI clock: the host's tempo, else the set one."""
        return 60.0 / (self.host_bpm or self.default_bpm)

    @property
    def playing(self) -> bool:
        """Whether the host's transport runs (so bar lines are the host's)."""
        with self.lock:
            return (self.clock_playing and self.fit is not None) or self.host_line is not None

    def lost(self, now: float) -> bool:
        """True (once) when the host's running transport falls silent: no MIDI clock for
        CLOCK_TIMEOUT, or no SysEx song position for POSITION_TIMEOUT (the DAW quit, its port
        closed). The transport counts as stopped from then on.
        """
        with self.lock:
            last_tick = self.ticks[-1][1] if self.ticks else 0.0
            if self.clock_playing and now - max(last_tick, self.started_at) > CLOCK_TIMEOUT:
                self.stopped_beat = self.song_beat(self.count)
                self.clock_playing = False
                return True
            if self.host_line and now - self.position_at > POSITION_TIMEOUT:
                self.host_line = None
                return True
            return False

    def line(self, now: float | None = None) -> Line:
        """The timeline as it stands: the host's while its transport runs, else the free grid.

        Between the last tick of a clock that stops and `lost` noticing it, the clock's line
        runs on at its last tempo.
        """
        with self.lock:
            if self.fit and self.clock_playing:
                period, origin = self.fit
                return Line(origin + period * self.start_count, self.start_beat,
                            period * TICKS_PER_BEAT)
            if self.fit and self.following(now) and not self.host_line and self.measured:
                return Line(self.free.time, self.free.beat, self.fit[0] * TICKS_PER_BEAT)
            return self.host_line or self.free

    @property
    def bar_beats(self) -> float:
        numerator, denominator = self.meter
        return numerator * 4 / denominator

    def next_bar_line(self, beat: float) -> float:
        """The first bar line at or after `beat` (bar lines fall on multiples of a bar)."""
        bar = self.bar_beats
        return math.ceil(beat / bar - 1e-9) * bar

    def bpm(self, now: float | None = None) -> float:
        """The tempo now, in beats a minute."""
        return 60.0 / self.line(now).spb

    def describe(self) -> str:
        """One line for the log: where the tempo and bar lines come from."""
        source = ("MIDI clock" if self.following() else
                  "host tempo" if self.host_bpm else "set tempo")
        transport = "host transport" if self.playing else "free time"
        return f"{self.bpm():.1f} BPM ({source}), {self.meter[0]}/{self.meter[1]}, {transport}"


def fit_ticks(ticks: deque[tuple[int, float]], default_period: float | None
              ) -> tuple[float, float] | None:
    """(period, time of tick 0) of the line along the early edge of `ticks`.

    The period: the least-squares slope over the window, then tilted so that the early edges
    of the window's two halves lie on the line, since ticks held up (a busy CPU) would tilt a
    plain fit; `default_period` (the set one) while the window holds less than a beat, unless
    that is None. The line lies along the early edge of the last PHASE_TICKS ticks. None
    while the ticks give a tempo outside BPM_RANGE, as a flood does.
    """
    count = len(ticks)
    if not ticks or (default_period is None and count < 2):
        return None
    period = default_period
    if period is None or count >= MIN_TICKS:
        mean_n = sum(n for n, _ in ticks) / count
        mean_t = sum(t for _, t in ticks) / count
        spread = sum((n - mean_n) ** 2 for n, _ in ticks)
        period = sum((n - mean_n) * (t - mean_t) for n, t in ticks) / spread
        halves = list(ticks)[: count // 2], list(ticks)[count // 2:]
        first, second = (early_edge([t - period * n for n, t in half]) for half in halves)
        middles = [sum(n for n, _ in half) / len(half) for half in halves]
        period += (second - first) / (middles[1] - middles[0])
        bpm = 60.0 / (period * TICKS_PER_BEAT) if period > 0 else math.inf
        if not BPM_RANGE[0] <= bpm <= BPM_RANGE[1]:
            return None
    return period, early_edge([t - period * n for n, t in list(ticks)[-PHASE_TICKS:]])


def tempo_changed(offsets: deque[tuple[float, float]]) -> bool:
    """Whether the last ticks' (offset from the line, jitter before it) say that the host
    changed tempo: the last two early, or the last three late and each later than the one
    before, by more than the jitter. Ticks are never early but for a faster tempo; a busy
    machine holds up one tick or a few, but seldom three in a row, each later still."""
    if len(offsets) < 2:
        return False
    (before, jitter), (last, _) = offsets[-2], offsets[-1]
    if before < -jitter and last < -jitter:
        return True
    late = [offset for offset, _ in offsets]
    return len(late) == 3 and offsets[0][1] < late[0] < late[1] < late[2]


def spread(ticks: deque[tuple[int, float]], period: float, origin: float) -> float:
    """How far the ticks stray from their line: the 10th to the 90th percentile of the
    residuals. A few held-up ticks do not widen it; a MIDI system that passes messages on
    once a period widens it to about that period."""
    residuals = sorted(t - origin - period * n for n, t in ticks)
    last = len(residuals) - 1
    return residuals[int(0.9 * last)] - residuals[int(0.1 * last)]


def early_edge(residuals: list[float]) -> float:
    """The EARLY_EDGE quantile of `residuals`."""
    return sorted(residuals)[int(EARLY_EDGE * (len(residuals) - 1))]
