"""Call and response over MIDI: hear a phrase on the input port, answer it on the output port.

The loop: listen (capture the phrase, bridge/midi/phrase.py) -> the phrase ends -> quantize it into
an events document, key estimated unless given -> the engine continues it by `bars` bars, in a
process of its own (bridge/midi/composer.py) -> the answer plays from the first bar line after it is
ready (and after the phrase) at the host's tempo (bridge/midi/player.py), its chord symbols, if it
has any, as a chord part on a channel of their own (--chords-channel) -> listen again. In the
accompany mode (--add, CC 26) the answer is the phrase itself, played back with a new part
the engine wrote for it (engine/models/infill.py) on --part-channel. While
Segue thinks and plays, what arrives on the input is not captured, so an answer that a DAW
routes back to Segue is not heard as a call.

Controls, by Control Change on any channel (as Magenta's call-and-response demo did):

    CC 20  temperature: 0 -> 0.5, 64 -> 1.0, 127 -> 2.0 (it doubles every 64 steps)
    CC 21  bars of the answer: 1 + value // 8, so 1 to 16
    CC 22  another take of the last phrase (value 64 or more)
    CC 23  panic: stop the answer, all notes off on every channel (value 64 or more)
    CC 26  what an answer is: 0-42 the next bars; 43-85 the phrase played back with a bass
           under it, 86-127 with a second voice (the new part on --part-channel)
    --trigger-cc C (value 64 or more) or --trigger-note P: the phrase ends now
    CC 120 / 123 (All Sound / Notes Off, which FL Studio sends when it starts): held notes end

The host's tempo, meter, song position and the CONTINUE / AGAIN / PANIC commands may also come
as SysEx (bridge/midi/sysex.py); once a host speaks it, Segue reports its state back the same way.
MIDI clock, Start, Stop, Continue and Song Position go to the clock (bridge/midi/clock.py); Start
and Stop also drop the phrase being captured and the answer being played.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import mido

from bridge.midi import sysex
from bridge.midi.clock import Clock
from bridge.midi.composer import Composer
from bridge.midi.notes import Note
from bridge.midi.phrase import Capture, Phrase, phrase_events
from bridge.midi.player import Player, timed_chords, timed_notes
from engine.errors import SegueError

log = logging.getLogger("segue.midi")
CC_TEMPERATURE, CC_BARS, CC_AGAIN, CC_PANIC, CC_ANSWER = 20, 21, 22, 23, 26
ANSWERS = (None, "bass", "voice")  # CC 26 in thirds: continue, or the part to add
ALL_OFF = (120, 123)
POLL = 0.01  # seconds between looks at the phrase (silence, length) and the player
MARGIN = 0.02  # seconds the player needs between an answer being ready and its first note
# Tonics by fifths from Cb (-7); a minor key's tonic is three fifths above its major's.
TONICS = ["Cb", "Gb", "Db", "Ab", "Eb", "Bb", "F", "C", "G", "D", "A", "E", "B", "F#", "C#",
          "G#", "D#", "A#"]


@dataclass
class Settings:
    """What the musician sets: on the command line, and some by CC while playing."""

    bars: int = 4
    temperature: float | None = None  # None: the model's own default
    seed: int | None = None
    key: tuple[int, str] | None = None  # (fifths, mode); None: estimated from the phrase
    trigger_cc: int | None = None
    trigger_note: int | None = None
    channel: int = 0  # of the answer, 0-15
    chords_channel: int | None = None  # of the answer's chord symbols, 0-15; None: not played
    add: str | None = None  # None: answers continue the phrase; "bass"/"voice": add that part
    part_channel: int = 1  # of the added part, 0-15
    silence_bars: float = 1.0
    max_bars: int = 8
    latency: float = 0.0  # seconds each message is sent early (--latency, in ms there)


ADDED = {"bass": "a bass", "voice": "a second voice"}


def answer_kind(settings: Settings) -> str:
    """What answers are, as the bridge says it when CC 26 changes it."""
    if settings.add is None:
        return "answers: the next bars"
    return (f"answers: the phrase played back with {ADDED[settings.add]} under it "
            f"(channel {settings.part_channel + 1})")


def key_name(key: tuple[int, str]) -> str:
    """(2, 'major') -> 'D', (-1, 'minor') -> 'Dm'."""
    fifths, mode = key
    return TONICS[fifths + 7 + 3 * (mode == "minor")] + ("m" if mode == "minor" else "")


def parse_key(text: str) -> tuple[int, str]:
    """'D' -> (2, 'major'), 'Dm' -> (-1, 'minor'), as --key takes them."""
    tonic, minor = (text[:-1], True) if text.endswith("m") else (text, False)
    tonic = tonic[:1].upper() + tonic[1:]
    fifths = TONICS.index(tonic) - 7 - 3 * minor if tonic in TONICS else 99
    if not -7 <= fifths <= 7:
        raise SegueError(f"--key {text!r}: write a key such as C, G, Bb, F#m or Ebm")
    return fifths, "minor" if minor else "major"


class Bridge:
    """The call-and-response loop between one input and one output port."""

    def __init__(self, output: Any, clock: Clock, composer: Composer, settings: Settings,
                 say: Callable[[str], None] = print) -> None:
        self.output = output
        self.clock = clock
        self.composer = composer
        self.settings = settings
        self.say = say
        self.capture = Capture(clock, settings.silence_bars, settings.max_bars)
        self.player = Player(output, clock, settings.latency)
        self.commands: queue.Queue[tuple[str, float]] = queue.Queue()
        self.listening = True
        self.host_speaks_sysex = False
        self.last: tuple[Phrase, dict] | None = None
        self.takes = 0
        self.said_no_chords = False
        # The answer's first bar line (None once it has begun) and its end, in beats.
        self.answer_beats: tuple[float | None, float] | None = None

    # -- the input thread ---------------------------------------------------------------
    def on_message(self, message: Any) -> None:
        """Take one message from the input port, its `time` the time it arrived (on the port's
        reading thread)."""
        try:
            self.dispatch(message, message.time)
        except Exception:  # no message, however odd, may stop the bridge
            log.exception("could not handle %r", message)

    def dispatch(self, message: Any, t: float) -> None:
        """Route one input message: transport to the clock, notes to the phrase, CC, SysEx."""
        kind = message.type
        if kind in ("clock", "start", "stop", "continue", "songpos"):
            self.clock.on_message(message, t)
            if kind in ("start", "stop"):  # song time starts again, or stops
                self.capture.reset()
                self.player.stop()
                self.commands.put(("transport", t))
        elif kind == "note_on" and message.velocity > 0:
            if message.note == self.settings.trigger_note:
                self.commands.put(("end", t))
            elif self.listening:
                if not self.capture.notes:
                    self.status(sysex.HEARING, "hearing a phrase")
                self.capture.note_on(message.note, message.velocity, t)
        elif kind in ("note_on", "note_off"):
            self.capture.note_off(message.note, t)
        elif kind == "control_change":
            self.control(message.control, message.value, t)
        elif kind == "sysex":
            self.host_sysex(message.data, t)

    def control(self, number: int, value: int, t: float) -> None:
        """A Control Change: the trigger, the CC controls, All Notes Off."""
        pressed = value >= 64
        if number == self.settings.trigger_cc and pressed:
            self.commands.put(("end", t))
        elif number == CC_TEMPERATURE:
            self.settings.temperature = round(2 ** ((value - 64) / 64), 3)
            self.say(f"temperature {self.settings.temperature}")
        elif number == CC_BARS:
            self.settings.bars = 1 + value // 8
            self.say(f"answers of {self.settings.bars} bars")
        elif number == CC_AGAIN and pressed:
            self.commands.put(("again", t))
        elif number == CC_PANIC and pressed:
            self.commands.put(("panic", t))
        elif number == CC_ANSWER:
            self.settings.add = ANSWERS[value * len(ANSWERS) // 128]
            self.say(answer_kind(self.settings))
        elif number in ALL_OFF:
            self.capture.all_off(t)

    def host_sysex(self, data: Any, t: float) -> None:
        """A SysEx message from the host (bridge/midi/sysex.py); others' SysEx is ignored."""
        command = sysex.decode(data)
        if command is None:
            return
        self.host_speaks_sysex = True
        if command.command == sysex.TEMPO:
            self.clock.set_tempo(command.values[0], t)
        elif command.command == sysex.METER:
            self.clock.set_meter(*command.values)
        elif command.command == sysex.POSITION:
            playing, ticks, ppq = command.values
            self.clock.set_position(playing, ticks, ppq, t)
        elif command.command in (sysex.CONTINUE, sysex.AGAIN, sysex.PANIC):
            name = {sysex.CONTINUE: "end", sysex.AGAIN: "again", sysex.PANIC: "panic"}
            self.commands.put((name[command.command], t))

    # -- the main thread ----------------------------------------------------------------
    def run(self, stop: threading.Event | None = None) -> None:
        """Listen and answer until `stop` is set (or KeyboardInterrupt)."""
        self.status(sysex.LISTENING, f"listening; {self.clock.describe()}")
        while stop is None or not stop.is_set():
            try:
                command, t = self.commands.get(timeout=POLL)
            except queue.Empty:
                command, t = "", time.perf_counter()
            if command:
                self.handle(command, t)
            elif self.clock.lost(t):  # the DAW went away mid-song: as if it had stopped
                self.player.stop()
                self.listen()
            elif self.listening:
                reason = self.capture.ending(t)
                if reason:
                    self.answer(self.capture.take(t, reason), since=t)
            elif self.answer_beats is not None:
                start, end = self.answer_beats
                beat = self.clock.line(t).beat_at(t)
                if start is not None and beat >= start:
                    self.answer_beats = (None, end)
                    self.status(sysex.PLAYING, "playing")
                elif beat >= end and not self.player.busy:
                    self.listen()

    def handle(self, command: str, t: float) -> None:
        """Carry out a command from the input thread: end, again, panic, transport."""
        if command == "end" and self.listening:
            self.answer(self.capture.take(t, "trigger"), since=t)
        elif command == "again" and self.last:
            self.player.stop()
            self.answer(self.last[0], self.last[1], since=t)
        elif command == "panic":
            self.player.panic()
            self.listen()
        elif command == "transport":
            self.player.stop()  # again: an answer composed meanwhile is dropped too
            if not self.listening:
                self.listen()

    def listen(self) -> None:
        """Drop the answer's bookkeeping and the phrase so far; wait for a new phrase."""
        self.answer_beats = None
        self.capture.reset()
        self.listening = True
        self.status(sysex.LISTENING, "listening")

    def answer(self, phrase: Phrase | None, events: dict | None = None, *,
               since: float) -> None:
        """Compose an answer to `phrase` and queue it on the next bar line.

        `events`: the phrase's events document when it is known (another take);
        `since`: when the answer was asked for (the phrase's end, or the AGAIN command).
        """
        if phrase is None:
            return
        self.listening = False
        settings = self.settings
        try:
            if events is None:
                events = phrase_events(phrase, settings.key)
                if settings.key is None:
                    events = phrase_events(phrase, self.composer.key(events))
                self.say(f"phrase: {len(phrase.notes)} notes, {phrase.bars} bars "
                         f"({phrase.reason}), key {key_name((events['key'], events['mode']))}")
            self.last = (phrase, events)
            seed = None if settings.seed is None else settings.seed + self.takes
            self.takes += 1
            add, part = settings.add, []
            if add is None:
                bars = settings.bars
                self.status(sysex.THINKING, f"thinking: {bars} bars")
                answer, abc = self.composer(events, bars, settings.temperature, seed)
            else:
                bars = phrase.bars
                self.status(sysex.THINKING, f"thinking: {ADDED[add]} for the phrase")
                answer, abc = self.composer.accompany(events, add, settings.temperature, seed)
                part = timed_notes({"staves": answer["staves"][-1:]}, phrase.velocity)
                answer = {**answer, "staves": answer["staves"][:-1]}
            notes = timed_notes(answer, phrase.velocity)
            chords = self.chord_part(answer, bars, phrase.velocity)
        except SegueError as error:
            self.status(sysex.ERROR, f"error: {error}")
            self.listen()
            return
        except Exception as error:  # a fault of ours: report it and keep listening
            log.exception("could not answer")
            self.status(sysex.ERROR, f"internal error: {type(error).__name__}: {error}")
            self.listen()
            return
        ready = time.perf_counter()
        line = self.clock.line(ready)
        start = max(self.clock.next_bar_line(line.beat_at(ready + MARGIN + settings.latency)),
                    phrase.end_bar)
        self.player.play(notes, start, settings.channel)
        if part:
            self.player.play(part, start, settings.part_channel)
        if settings.chords_channel is not None:
            self.player.play(chords, start, settings.chords_channel)
        self.answer_beats = (start, start + bars * self.clock.bar_beats)
        bar = round(start / self.clock.bar_beats) + 1
        what = f"{bars} bars" if add is None else f"the phrase with {ADDED[add]}, {bars} bars"
        self.status(sysex.READY, f"answer: {what} from bar {bar} at "
                                 f"{60 / line.spb:.1f} BPM, ready "
                                 f"{ready - since:.2f} s after it was asked for")
        self.say("\n".join("  " + row for row in abc.strip().splitlines()))

    def chord_part(self, answer: dict, bars: int, velocity: int) -> list[Note]:
        """The chord symbols of an answer of `bars` bars as notes for --chords-channel (none
        without it); says once that answers carry none, when they do not."""
        if self.settings.chords_channel is None:
            return []
        chords = timed_chords(answer, bars * self.clock.bar_beats, velocity)
        if not chords and not self.said_no_chords:
            self.said_no_chords = True
            self.say("the answer has no chord symbols for --chords-channel: the model writes "
                     "them once it has been trained on tunes with chords")
        return chords

    def status(self, code: int, text: str) -> None:
        """Say what Segue is doing: on the terminal, and to a host that speaks our SysEx."""
        self.say(text)
        if self.host_speaks_sysex:
            self.player.send(mido.Message("sysex", data=sysex.state(code, f"Segue: {text}")))

    def close(self) -> None:
        """Stop the answer (every note-on gets its note-off) and end the player thread."""
        self.player.close()
        lateness = sorted(self.player.lateness)
        if lateness:
            p50, p99 = (lateness[int(q * (len(lateness) - 1))] * 1000 for q in (0.5, 0.99))
            self.say(f"played {len(lateness)} messages; sent late by {p50:.2f} ms (median), "
                     f"{p99:.2f} ms (99th percentile)")
