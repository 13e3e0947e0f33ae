"""Playing an answer: note-ons and note-offs sent on time from a thread of their own.

rtmidi sends a message the moment it is given one and has no timestamps, so the `Player`
keeps a queue of events in beats and sends each at its time on the host's timeline
(bridge/midi/clock.py), read afresh as the moment nears, so the answer follows the host's tempo
while it plays. The thread sleeps until `LEAD` before an event and waits out the rest on the
CPU; where the system allows it, the thread runs at real-time priority, as audio threads do,
but the lowest one: the MIDI system's own threads (JACK's run at its priority less 5) must
always be able to take the CPU from it, or they miss their period and drop MIDI.

Every note-on gets its note-off: on `stop`, `panic`, `close` (Ctrl-C, SIGTERM and errors go
through it) the notes still sounding are switched off at once, and `close` returns only once
those note-offs have had time to leave the port.
"""

from __future__ import annotations

import functools
import heapq
import itertools
import logging
import re
import threading
import time
from collections import deque
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import mido

from bridge.midi.clock import Clock
from bridge.midi.notes import Note
from bridge.midi.ports import realtime_priority

log = logging.getLogger("segue.midi")
LEAD = 0.002  # seconds: wake this long before an event, then wait out the rest precisely
RESYNC = 0.005  # seconds: read the timeline again at least this often while waiting
# Seconds that the last messages are given to leave before the port may close: rtmidi hands
# them to JACK in its next period (at most 4096 frames, 93 ms at 44.1 kHz); the other MIDI
# systems take them at once.
DRAIN = 0.1


@dataclass(frozen=True, order=True)
class Event:
    """A note-on (`on`) or note-off due at `beat`; at the same beat note-offs go first."""

    beat: float
    on: bool
    pitch: int
    velocity: int = 0
    channel: int = 0


def timed_notes(events: dict, velocity: int = 96) -> list[Note]:
    """The notes of an events document, in beats from its start, at `velocity`; tied notes
    become one note. A pitch never overlaps itself: a note is cut where the same pitch starts
    again."""
    notes: list[list[Any]] = []
    for staff in events["staves"]:
        tied: dict[int, list[Any]] = {}
        for item in sorted(staff, key=lambda e: Fraction(e["onset"])):
            start = Fraction(item["onset"]) * 4
            end = start + Fraction(item["duration"]) * 4
            still_tied = {}
            for pitch in item["pitches"]:
                note = tied.get(pitch)
                if note is not None and note[1] == start:
                    note[1] = end
                else:
                    note = [start, end, pitch]
                    notes.append(note)
                if item.get("tie"):
                    still_tied[pitch] = note
            tied = still_tied
    notes.sort(key=lambda n: (n[2], n[0]))
    for this, after in itertools.pairwise(notes):
        if this[2] == after[2] and after[0] < this[1]:
            this[1] = after[0]
    return [Note(p, velocity, float(s), float(e)) for s, e, p in sorted(
        (s, e, p) for s, e, p in notes if e > s)]


def timed_chords(events: dict, length: float, velocity: int = 96) -> list[Note]:
    """The chord part of an events document, in beats, at `velocity`: the chord symbols
    (`"chords": [{"staff": 0, "onset": "n/d", "symbol": "Am7"}, ...]`) of the first staff that
    has any, each voiced by music21 (`chord_pitches`) and held from its onset to the next
    symbol's, the last to `length` beats (the answer's end). N.C. is silence."""
    chords = events.get("chords") or []
    if not chords:
        return []
    staff = min(chord["staff"] for chord in chords)
    onsets: list[tuple[Fraction, str]] = sorted(
        (Fraction(chord["onset"]) * 4, chord["symbol"]) for chord in chords
        if chord["staff"] == staff)
    return [Note(pitch, velocity, float(start), float(end))
            for (start, symbol), (end, _) in itertools.pairwise([*onsets, (Fraction(length), "")])
            for pitch in chord_pitches(symbol) if start < end]


@functools.lru_cache(maxsize=1024)
def chord_pitches(symbol: str) -> tuple[int, ...]:
    """The MIDI pitches music21 voices a chord symbol with, root (or the bass of a slash chord)
    in the octave or two below middle C: "Am7" -> A2 C3 E3 G3, "Bb/D" -> D3 F3 Bb3. Flats may
    be written b (ABC, MusicXML) or - (music21). None for N.C., or a symbol music21 cannot
    read (said in the log, once)."""
    from music21 import harmony

    figure = re.sub(r"(^|/)([A-G])b", r"\1\2-", symbol.strip())
    try:
        chord = harmony.ChordSymbol(figure)
    except Exception:  # music21 raises ValueError and others for what it cannot read
        if symbol.strip().upper().replace(".", "") != "NC":
            log.warning("chord symbol %r not understood: not played", symbol)
        return ()
    return tuple(sorted({pitch.midi for pitch in chord.pitches}))


class Player:
    """Sends queued notes on `port` at their times on `clock`'s timeline."""

    def __init__(self, port: Any, clock: Clock, latency: float = 0.0) -> None:
        """`latency`: seconds to send each message early, for the path from Segue to the ear."""
        self.port = port
        self.clock = clock
        self.latency = latency
        self.queue: list[Event] = []
        self.sounding: set[tuple[int, int]] = set()  # (channel, pitch)
        self.lateness: deque[float] = deque(maxlen=10_000)  # seconds, of each message sent
        self.condition = threading.Condition()
        self.closed = False
        self.thread = threading.Thread(target=self.run, name="segue-player", daemon=True)
        self.thread.start()

    def play(self, notes: list[Note], at: float, channel: int = 0) -> None:
        """Queue notes (in beats from 0, each with its end) to play from beat `at`."""
        with self.condition:
            for note in notes:
                if note.end is None:
                    continue  # a key still held: not a note that can be played back
                heapq.heappush(self.queue, Event(at + note.start, True, note.pitch,
                                                 note.velocity, channel))
                heapq.heappush(self.queue, Event(at + note.end, False, note.pitch, 0, channel))
            self.condition.notify()

    @property
    def busy(self) -> bool:
        """Whether anything is queued or sounding."""
        with self.condition:
            return bool(self.queue or self.sounding)

    def stop(self) -> None:
        """Drop what is queued and switch off what sounds."""
        with self.condition:
            self.queue.clear()
            for channel, pitch in sorted(self.sounding):
                self.send(mido.Message("note_off", channel=channel, note=pitch))
            self.sounding.clear()
            self.condition.notify()

    def panic(self) -> None:
        """Stop, then All Notes Off and All Sound Off on all sixteen channels."""
        self.stop()
        with self.condition:
            for channel in range(16):
                for control in (123, 120):
                    self.send(mido.Message("control_change", channel=channel,
                                           control=control, value=0))

    def close(self) -> None:
        """Stop, end the thread, and give the note-offs time to leave: the port may be closed
        once this returns."""
        self.stop()
        with self.condition:
            self.closed = True
            self.condition.notify()
        self.thread.join(timeout=2)
        time.sleep(DRAIN)

    def send(self, message: Any) -> None:
        """Send one message now (from any thread: the port is not thread-safe)."""
        try:
            with self.condition:
                self.port.send(message)
        except Exception as error:  # a vanished port must not take the thread down
            log.warning("could not send %s: %s", message.type, error)

    def run(self) -> None:
        """The player thread: send each queued event at its time."""
        realtime_priority()
        while True:
            with self.condition:
                while not self.closed and not self.queue:
                    self.condition.wait()
                if self.closed:
                    return
                event = self.queue[0]
                due = self.clock.line().time_of(event.beat) - self.latency
                wait = due - time.perf_counter()
                if wait > LEAD:
                    self.condition.wait(min(wait - LEAD, RESYNC))
                    continue
            while time.perf_counter() < due:
                pass
            with self.condition:
                if self.queue and self.queue[0] == event:
                    heapq.heappop(self.queue)
                    self.emit(event, due)

    def emit(self, event: Event, due: float) -> None:
        """Send one event now (under the lock), keeping `sounding` and `lateness`."""
        key = (event.channel, event.pitch)
        if event.on:
            if key in self.sounding:  # the same pitch again: end the old note first
                self.send(mido.Message("note_off", channel=event.channel, note=event.pitch))
            self.send(mido.Message("note_on", channel=event.channel, note=event.pitch,
                                   velocity=event.velocity))
            self.sounding.add(key)
        elif key in self.sounding:
            self.send(mido.Message("note_off", channel=event.channel, note=event.pitch))
            self.sounding.discard(key)
        self.lateness.append(time.perf_counter() - due)
