"""Capturing a phrase: notes as they are played, the end of the phrase, and its quantized score.

A `Capture` stamps each note with its beat on the host's timeline (bridge/midi/clock.py) as it
arrives. The phrase ends when the musician says so (trigger CC or note, handled by the
bridge), after a silence of `silence_bars` bars with no key held, or at the bar line that
makes it `max_bars` long. Without a running host transport, the first note of a phrase is the
downbeat of its first bar.

`phrase_events` quantizes the notes to sixteenths and triplet eighths (engine.abc.music.MIDI_GRID)
into an events document (engine/abc/events.py): whole bars from the one holding the first note
to the one holding the last, rests between, chords where notes start together, and each note
cut where the next one starts, since a phrase becomes one voice.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass, field
from fractions import Fraction

from bridge.midi.clock import Clock
from bridge.midi.notes import Note
from engine.abc.events import fraction_text
from engine.abc.music import MIDI_GRID

NOTE_SLACK = 1 / 16  # beats: a note a little before a bar line still counts to the next bar


@dataclass
class Phrase:
    """A finished phrase: its notes and the bar lines it spans, in beats."""

    notes: list[Note]
    first_bar: float
    end_bar: float
    meter: tuple[int, int]
    reason: str = "trigger"
    ended_at: float = 0.0  # seconds (time.perf_counter) when the end was noticed

    @property
    def bars(self) -> int:
        return round((self.end_bar - self.first_bar) / (self.meter[0] * 4 / self.meter[1]))

    @property
    def velocity(self) -> int:
        return round(sum(n.velocity for n in self.notes) / len(self.notes))


@dataclass
class Capture:
    """The phrase being played, fed from the MIDI input thread, ended from any thread."""

    clock: Clock
    silence_bars: float = 1.0
    max_bars: int = 8
    notes: list[Note] = field(default_factory=list)
    held: dict[int, Note] = field(default_factory=dict)
    first_bar: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def note_on(self, pitch: int, velocity: int, t: float) -> None:
        """A key pressed at time `t`; the same key again ends its previous note."""
        with self.lock:
            if not self.notes and not self.clock.playing:
                self.clock.anchor(t)  # free time: the phrase begins on a downbeat
            beat = self.clock.line(t).beat_at(t)
            if not self.notes:
                bar = self.clock.bar_beats
                self.first_bar = math.floor((beat + NOTE_SLACK) / bar) * bar
            if pitch in self.held:
                self.held.pop(pitch).end = beat
            note = Note(pitch, velocity, beat)
            self.notes.append(note)
            self.held[pitch] = note

    def note_off(self, pitch: int, t: float) -> None:
        """A key released at time `t`."""
        with self.lock:
            if pitch in self.held:
                self.held.pop(pitch).end = self.clock.line(t).beat_at(t)

    def all_off(self, t: float) -> None:
        """Release every held note (All Notes Off, All Sound Off)."""
        with self.lock:
            beat = self.clock.line(t).beat_at(t)
            for note in self.held.values():
                note.end = beat
            self.held.clear()

    def reset(self) -> None:
        """Forget the phrase so far."""
        with self.lock:
            self.notes, self.held = [], {}

    def ending(self, now: float) -> str | None:
        """Why the phrase has ended by `now` ('silence' or 'max-bars'), else None."""
        with self.lock:
            if not self.notes:
                return None
            beat = self.clock.line(now).beat_at(now)
            bar = self.clock.bar_beats
            if beat >= self.first_bar + self.max_bars * bar:
                return "max-bars"
            last = max(n.end if n.end is not None else beat for n in self.notes)
            if not self.held and beat - last >= self.silence_bars * bar:
                return "silence"
            return None

    def take(self, now: float, reason: str = "trigger") -> Phrase | None:
        """End the phrase now: what was played (notes still held end now), or None."""
        with self.lock:
            if not self.notes:
                return None
            beat = self.clock.line(now).beat_at(now)
            bar = self.clock.bar_beats
            limit = self.first_bar + self.max_bars * bar
            notes = [Note(n.pitch, n.velocity, n.start, min(beat if n.end is None else n.end,
                                                            limit))
                     for n in self.notes if n.start < limit - NOTE_SLACK]
            self.notes, self.held = [], {}
            first_bar = self.first_bar
        if not notes:
            return None
        last = max(n.end for n in notes if n.end is not None)
        end_bar = max(first_bar + bar, self.clock.next_bar_line(last - NOTE_SLACK))
        return Phrase(notes, first_bar, min(end_bar, limit), self.clock.meter, reason, now)


def snap(beat: float) -> Fraction:
    """The nearest point of the grid: sixteenths or triplet eighths (sixteenths on a tie)."""
    points = [Fraction(round(beat * d), d) for d in MIDI_GRID]
    return min(points, key=lambda p: abs(p - Fraction(beat)))


def phrase_events(phrase: Phrase, key: tuple[int, str] | None = None) -> dict:
    """The phrase as an events document (one staff, one voice); key (fifths, mode) or C."""
    start, end = Fraction(phrase.first_bar), Fraction(phrase.end_bar)
    onsets: dict[Fraction, list[Note]] = {}
    for note in phrase.notes:
        onset = snap(note.start)
        if start <= onset < end:
            onsets.setdefault(onset, []).append(note)
    times = sorted(onsets)
    events, position = [], start
    for index, onset in enumerate(times):
        following = times[index + 1] if index + 1 < len(times) else end
        group = onsets[onset]
        finish = max(snap(n.end if n.end is not None else phrase.end_bar) for n in group)
        if finish <= onset:
            finish = min(Fraction(math.floor(onset * d) + 1, d) for d in MIDI_GRID)
        finish = min(finish, following)
        if onset > position:
            events.append(event(position - start, onset - position, []))
        events.append(event(onset - start, finish - onset, sorted({n.pitch for n in group})))
        position = finish
    if position < end:
        events.append(event(position - start, end - position, []))
    fifths, mode = key or (0, "major")
    return {"time_signature": f"{phrase.meter[0]}/{phrase.meter[1]}", "key": fifths,
            "mode": mode, "staves": [events]}


def event(onset: Fraction, length: Fraction, pitches: list[int]) -> dict:
    """One event, from beats to fractions of a whole note."""
    return {"onset": fraction_text(onset / 4), "duration": fraction_text(length / 4),
            "pitches": pitches, "tie": False, "voice": 0}


def estimate_key(events: dict) -> tuple[int, str]:
    """(fifths, mode) of the key music21's Krumhansl analysis hears in an events document."""
    from engine.abc.events import events_to_score
    from engine.abc.music import quiet

    with quiet():
        found = events_to_score(events).analyze("key")
    return found.sharps, "minor" if found.mode == "minor" else "major"
