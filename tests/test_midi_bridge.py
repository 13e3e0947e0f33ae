"""`segue midi` over real JACK MIDI ports: a host plays a phrase and records the answer, as FL
Studio does (SysEx and MIDI clock), as DAWs that send MIDI clock alone do (from the song start,
or from a song position with Continue; changing tempo mid-answer), and in free time (no clock).
The answer must have the bars asked for, every note of them heard at its pitch and ended, each
within 5 ms of its time on the host's timeline (Segue being told JACK's period:
midi_helpers.JACK_LATENCY), from the first bar line after the phrase it has time for. Junk and
a vanished peer must not stop the bridge, and stopping it leaves no note sounding.

Needs Debian's jackd2 (a dummy-driver server is started when none runs) and the JACK API in
python-rtmidi.
"""

from __future__ import annotations

import math
import os
import random
import signal
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import mido
import pytest
from midi_helpers import (
    BARS,
    FREE_BPM,
    JACK_LATENCY,
    PERIOD,
    RATE,
    ROOT,
    SCALE,
    TRIGGER_CC,
    Host,
    Ports,
    SegueProcess,
    all_ended,
    call_and_response,
    jack_port,
    jack_server,
    on_time,
    retaken,
    unless_jack_lost_midi,
    unpaired,
    xruns,
)

from bridge.midi import sysex
from bridge.midi.call_response import Bridge, Settings
from bridge.midi.clock import CHANGE_TICKS, Clock
from bridge.midi.ports import ArrivalTimes, Input, Output, open_ports
from engine.abc.music import note_events, parse_abc
from engine.models.checkpoint import DEFAULT_MODEL


@pytest.fixture(scope="session")
def jack() -> None:
    with jack_server():
        yield


@pytest.fixture(scope="module")
def segue(jack: None, model_path: Path) -> SegueProcess:
    """One `segue midi` for the module's tests; each test leaves it listening."""
    process = SegueProcess(model_path, "bridge-test", "--bars", str(BARS), "--trigger-cc",
                           str(TRIGGER_CC), "--seed", "1", *JACK_LATENCY)
    process.wait_for(r"^listening")
    yield process
    assert process.stop() == 130
    assert "Traceback" not in "\n".join(process.lines), "\n".join(process.lines)


@pytest.fixture(scope="module")
def daw_segue(jack: None, model_path: Path) -> SegueProcess:
    """A `segue midi` set up for DAWs that send no SysEx: the meter by --meter, and for free
    time the tempo by --bpm."""
    process = SegueProcess(model_path, "daw-test", "--bars", str(BARS), "--trigger-cc",
                           str(TRIGGER_CC), "--seed", "1", "--meter", "3/4", "--bpm",
                           str(FREE_BPM), *JACK_LATENCY)
    process.wait_for(r"^listening")
    yield process
    assert process.stop() == 130
    assert "Traceback" not in "\n".join(process.lines), "\n".join(process.lines)


def report(what: str, figures: dict) -> None:
    errors = figures["errors_ms"]
    print(f"{what}: first note {errors[0]:+.2f} ms, worst note {max(map(abs, errors)):.2f} ms "
          f"of {len(errors)}, ready {figures['ready_s']:.2f} s after the phrase")


@pytest.mark.parametrize(("bpm", "meter", "end"), [
    (90, "4/4", "trigger"), (140, "3/4", "silence"), (90, "3/4", "trigger"),
    (140, "4/4", "silence")])
def test_answer_starts_on_the_bar_line_at_the_hosts_tempo(
        segue: SegueProcess, bpm: float, meter: str, end: str) -> None:
    report(f"FL Studio's setup, {bpm} BPM {meter}", call_and_response(segue, bpm, meter, end))


@pytest.mark.parametrize(("transport", "bpm"), [
    ("clock", 132), ("continue", 108), ("free", FREE_BPM)])
def test_answer_in_time_with_clock_alone_or_none(
        daw_segue: SegueProcess, transport: str, bpm: float) -> None:
    """MIDI clock and Start alone, the meter from --meter (the tempo is not --bpm's); Song
    Position Pointer off the bar lines, then Continue; free time at --bpm, no clock at all."""
    report(f"{transport}, {bpm} BPM 3/4", call_and_response(daw_segue, bpm, "3/4",
                                                            transport=transport))


@pytest.mark.parametrize(("before", "after"), [(120, 90), (90, 126)])
def test_answer_follows_a_tempo_change(daw_segue: SegueProcess, before: float,
                                       after: float) -> None:
    """The host's clock changes tempo a beat into the answer; the rest of it follows."""
    report(f"clock {before} -> {after} BPM", call_and_response(
        daw_segue, before, "3/4", transport="clock", tempo_change=(1.0, after)))


def test_junk_does_not_stop_the_bridge(segue: SegueProcess) -> None:
    import rtmidi

    raw = rtmidi.MidiOut(rtapi=rtmidi.API_UNIX_JACK, name="junk")
    raw.open_port(raw.get_ports().index(jack_port(segue.input, outputs=True)))
    host = Host(segue)
    try:
        header = [0xF0, *sysex.HEADER]
        # One by one: a JACK port carries 512 bytes a cycle at -p 128 and drops the rest, and
        # RtMidi takes all that follows an unterminated SysEx into it until an F7 comes.
        for junk in ([0xF0, 1, 2, 3], [0xF7], [0x80], [0x45, 0x33], [0xF0, *[0x55] * 400, 0xF7],
                     [*header, sysex.TEMPO, 0xF7], [*header, sysex.TEMPO, 0x7F, 0x7F, 0x7F, 0xF7],
                     [*header, sysex.METER, 0, 0, 0xF7], [*header, sysex.POSITION, 1, *[0] * 6,
                                                          0xF7],
                     [*header, sysex.STATE, 9, 0xF7], [*header, 0x7F, 0xF7]):
            raw.send_message(junk)
            time.sleep(0.02)
        host.send(mido.Message("start"))
        for _ in range(3000):  # a flood of clock
            host.send(mido.Message("clock"))
        host.send(mido.Message("songpos", pos=16383))
        host.send(mido.Message("stop"))
        time.sleep(0.6)  # the host's own port takes ~0.2 s to pass the flood on
        host.sysex(sysex.meter(4, 4))  # a host that speaks SysEx hears Segue's state
        since = time.perf_counter()
        host.send(mido.Message("control_change", control=21, value=0))  # answers of 1 bar
        for channel in range(16):  # notes on every channel, then what FL sends on start
            host.send(mido.Message("note_on", channel=channel, note=40 + channel, velocity=80))
        for channel in range(16):
            for control in (123, 120):
                host.send(mido.Message("control_change", channel=channel, control=control))
        host.send(mido.Message("control_change", control=TRIGGER_CC, value=127))
        with unless_jack_lost_midi():
            ready = host.wait_state(sysex.READY, since)
            host.wait_state(sysex.LISTENING, ready)
            all_ended(host.notes(since))
        host.send(mido.Message("control_change", control=21, value=8))  # back to 2 bars
        call_and_response(segue, 140, "4/4")
    finally:
        host.send(mido.Message("control_change", control=21, value=8))  # for the next tests
        raw.close_port()
        raw.delete()
        host.close()


def test_peer_closing_mid_phrase_does_not_stop_the_bridge(segue: SegueProcess) -> None:
    gone = Host(segue)
    lines = len(segue.lines)
    gone.sysex(sysex.tempo(120))
    gone.start(120)
    gone.at(4, mido.Message("note_on", note=50, velocity=90))  # held as the port closes
    time.sleep(gone.time_of(5) - time.perf_counter())
    gone.close()  # no Stop, no note-off: the DAW vanished
    segue.wait_for(r"^listening", lines, timeout=5)
    call_and_response(segue, 140, "3/4", pitches=[72, 71, 69])


def sounding(host: Host, since: float) -> None:
    """Wait until the answer that starts after `since` sounds a note (not a rest)."""
    host.wait_state(sysex.PLAYING, since)
    deadline = time.perf_counter() + 3
    while not unpaired(host.notes(since)) and time.perf_counter() < deadline:
        time.sleep(0.005)


def test_stop_panic_and_ctrl_c_end_every_note(jack: None, model_path: Path) -> None:
    segue = SegueProcess(model_path, "stop-test", "--bars", "8", "--trigger-note", "36")
    try:
        with unless_jack_lost_midi():  # the Stop, the panic CC or a note-off may be lost
            segue.wait_for(r"^listening")
            host = Host(segue)
            since = time.perf_counter()
            host.sysex(sysex.meter(4, 4))
            host.start(200)
            for i in range(8):
                host.at(4 + i / 2, mido.Message("note_on", note=SCALE[i], velocity=90))
                host.at(4.4 + i / 2, mido.Message("note_off", note=SCALE[i]))
            host.at(7.9, mido.Message("note_on", note=36, velocity=90))
            playing = host.wait_state(sysex.PLAYING, since)
            time.sleep(1.0)
            host.stop()  # Stop mid-answer: what sounds ends at once
            stopped = host.wait_state(sysex.LISTENING, playing)
            assert host.notes(since)
            all_ended(host.notes(since))
            assert not host.notes(stopped + 0.05)

            again = time.perf_counter()
            host.send(mido.Message("control_change", control=22, value=127))  # another take
            sounding(host, again)
            assert unpaired(host.notes(again)), "nothing sounded when panic came"
            host.send(mido.Message("control_change", control=23, value=127))  # panic
            calm = host.wait_state(sysex.LISTENING, again)
            time.sleep(0.1)
            assert host.notes(again)
            all_ended(host.notes(again))
            all_off = {(h.message.channel, h.message.control) for h in host.heard
                       if h.time >= again and h.message.type == "control_change"}
            assert all_off == {(channel, cc) for channel in range(16) for cc in (120, 123)}
            assert not host.notes(calm + 0.05)

            again = time.perf_counter()
            host.send(mido.Message("control_change", control=22, value=127))
            sounding(host, again)
            assert unpaired(host.notes(again)), "nothing sounded when Ctrl-C came"
            assert segue.stop(signal.SIGINT) == 130
            time.sleep(0.1)
            assert host.notes(again)
            all_ended(host.notes(again))
            host.close()
    finally:
        segue.stop()


STOPS = 20


@pytest.mark.slow
def test_stopping_mid_answer_leaves_no_note_sounding(jack: None, model_path: Path) -> None:
    """Ctrl-C (SIGINT) and SIGTERM by turns, each the moment a note of the answer sounds,
    STOPS times in a row, every fourth time twice in a row (an impatient musician): every
    note-on the host heard has its note-off by the time the bridge has gone. Most stops must
    cut a note short (its note-off coming after the signal), or the test would prove little.
    The next bridge starts while one plays, to save time."""
    stuck: dict[str, list] = {}
    cut = 0

    def start(stop: int) -> SegueProcess:
        return SegueProcess(model_path, f"stop-{stop}", "--bars", "2", "--bpm", "90",
                            "--meter", "2/4", "--trigger-note", "36", "--seed", str(stop))

    following: SegueProcess | None = start(0)
    for stop in range(STOPS):
        assert following is not None
        number = signal.SIGTERM if stop % 2 else signal.SIGINT
        segue, name = following, f"{'twice ' * (stop % 4 == 3)}{number.name} {stop + 1}"
        host = None
        try:
            segue.wait_for(r"^listening", timeout=120)
            following = start(stop + 1) if stop + 1 < STOPS else None
            host = Host(segue)
            since = time.perf_counter()
            host.start(90, clock=False)
            host.at(0, mido.Message("note_on", note=60, velocity=90))
            host.at(0.9, mido.Message("note_off", note=60))
            host.at(1, mido.Message("note_on", note=64, velocity=90))
            host.at(1.9, mido.Message("note_off", note=64))
            host.at(2, mido.Message("note_on", note=36, velocity=90))
            deadline = time.perf_counter() + 60
            while not (sounding := unpaired(host.notes(since))):
                assert time.perf_counter() < deadline and segue.process.poll() is None, \
                    "no note of the answer sounded:\n" + "\n".join(segue.lines)
                time.sleep(0.001)
            signalled = time.perf_counter()
            if stop % 4 == 3:
                segue.process.send_signal(number)
                time.sleep(0.005)
            assert segue.stop(number) == 130
            time.sleep(0.1)  # for the host to read what came
            stuck[name] = unpaired(host.notes(since))
            cut += any(h.message.note in {m.note for m in sounding}
                       for h in host.notes(signalled))
        finally:
            if host:
                host.close()
            segue.stop()
    if following:
        following.stop()
    assert len(stuck) == STOPS and not any(stuck.values()), \
        f"notes left sounding in {sum(map(bool, stuck.values()))} of {STOPS} stops: {stuck}"
    assert cut > STOPS // 2, f"only {cut} of {STOPS} stops came while a note sounded"


def test_chord_symbols_play_on_their_own_channel(jack: None) -> None:
    """--chords-channel 3: an answer's chord symbols (made here as the engine's events carry
    them) sound as chords on channel 3, each from its onset to the next symbol, N.C. silent,
    on time with the melody on channel 1; of answers with none, the bridge says so once.
    The bridge runs in this process, with the model's side replaced by these answers (so where
    the answer starts against the host's bar lines, and to the millisecond, is left to the
    tests of `segue midi` itself: here the host's and the bridge's threads share one
    interpreter)."""
    melody = [{"onset": "0/1", "duration": "1/2", "pitches": [72]},
              {"onset": "1/2", "duration": "1/2", "pitches": [74]},
              {"onset": "1/1", "duration": "1/1", "pitches": [76]}]
    chords = [{"staff": 0, "onset": "0/1", "symbol": "Am7"},
              {"staff": 0, "onset": "1/2", "symbol": "D7"},
              {"staff": 0, "onset": "1/1", "symbol": "Bb/D"},
              {"staff": 0, "onset": "3/2", "symbol": "N.C."}]
    plain = {"time_signature": "4/4", "key": 0, "mode": "major", "staves": [melody]}
    answers = [plain, plain, {**plain, "chords": chords}]

    class Answers:
        def key(self, events: dict) -> tuple[int, str]:
            return 0, "major"

        def __call__(self, events: dict, bars: int, temperature: float,
                     seed: int | None) -> tuple[dict, str]:
            return answers.pop(0), "X:1\nM:4/4\nL:1/8\nK:C\nc4d4|e8|\n"

    ports = Ports("chords-in", "chords-out")
    inport, outport = open_ports(ports.input, ports.output, "jack")
    settings = Settings(bars=2, trigger_cc=TRIGGER_CC, chords_channel=2,
                        latency=PERIOD / RATE)
    bridge = Bridge(outport, Clock(), Answers(), settings, say=ports.lines.append)
    inport.callback = bridge.on_message
    stop = threading.Event()
    running = threading.Thread(target=bridge.run, args=(stop,))
    running.start()
    host = Host(ports)
    before = xruns()
    try:
        since = time.perf_counter()
        host.sysex(sysex.tempo(150))
        host.sysex(sysex.meter(4, 4))
        host.start(150)
        host.at(4, mido.Message("note_on", note=60, velocity=90))
        host.at(4.4, mido.Message("note_off", note=60))
        host.at(7.98, mido.Message("control_change", control=TRIGGER_CC, value=127))
        takes = []
        for _ in range(len(answers)):
            ready = host.wait_state(sysex.READY, since)
            done = host.wait_state(sysex.LISTENING, ready)
            takes.append([h for h in host.notes(since) if h.time < done + 0.05])
            since = time.perf_counter()
            host.send(mido.Message("control_change", control=22, value=127))  # again
        host.stop()
    finally:
        stop.set()
        running.join()
        inport.close()
        bridge.close()
        outport.close()
        host.close()

    said = [line for line in ports.lines if "no chord symbols" in line]
    assert len(said) == 1 and said[0].startswith("the answer has no chord symbols"), ports.lines
    assert [{h.message.channel for h in take} for take in takes] == [{0}, {0}, {0, 2}]
    take = takes[2]
    assert not unpaired(take)

    def played(channel: int, on: bool) -> list[tuple[float, list[int]]]:
        """The notes switched on (or off) together on `channel`: when each group was heard
        (its first message; the rest within 5 ms), and its pitches."""
        groups: list[tuple[float, list[int]]] = []
        for heard in take:
            message = heard.message
            if message.channel == channel and (message.type == "note_on"
                                               and message.velocity > 0) == on:
                if groups and heard.time - groups[-1][0] < 0.005:
                    groups[-1][1].append(message.note)
                else:
                    groups.append((heard.time, [message.note]))
        return [(time, sorted(notes)) for time, notes in groups]

    melody, chords_on, chords_off = played(0, True), played(2, True), played(2, False)
    am7, d7, b_flat_over_d = [45, 48, 52, 55], [50, 54, 57, 60], [50, 53, 58]
    # What was played, in order: the melody, and each chord's notes together.
    assert [notes for _, notes in melody] == [[72], [74], [76]]
    assert [notes for _, notes in chords_on] == [am7, d7, b_flat_over_d]
    assert [notes for _, notes in chords_off] == [am7, d7, b_flat_over_d]
    start = host.beat_of(melody[0][0])  # the chords are timed from the melody's first note
    with unless_jack_lost_midi(before):
        # With the melody: each chord starts as the melody's note on the same beat does, and
        # ends as the next one starts, within 5 ms (the bound of the timing tests).
        for (melody_time, _), (chord_time, _) in zip(melody, chords_on, strict=True):
            on_time(abs(chord_time - melody_time) < 0.005,
                    f"a chord {1000 * (chord_time - melody_time):+.1f} ms off the melody's note")
        for (off_time, _), (next_on, _) in zip(chords_off[:-1], chords_on[1:], strict=True):
            on_time(abs(off_time - next_on) < 0.005,
                    f"a chord ended {1000 * (off_time - next_on):+.1f} ms off the next one")
        # On the beats written, to an eighth of a beat. Not to the 5 ms of `segue midi`'s own
        # timing tests: here the host's clock ticks come from a thread of the bridge's own
        # interpreter, and under load they were measured up to 15 ms late, which moves the
        # bridge's timeline by as much.
        for groups, beats in ((melody, [0, 2, 4]), (chords_on, [0, 2, 4]),
                              (chords_off, [2, 4, 6])):
            heard = [host.beat_of(time) - start for time, _ in groups]
            on_time(all(abs(at - beat) < 1 / 8 for at, beat in zip(heard, beats, strict=True)),
                    f"notes at beats {[round(at, 3) for at in heard]}, not {beats}")


def test_accompany_mode_plays_the_phrase_back_with_a_part_under_it(jack: None) -> None:
    """`segue midi --add bass`, the shipped model: the answer to a bar of eighths is that
    bar, note for note on channel 1, with the part the model added on channel 2, both from
    the first bar line it has time for and every note ended; CC 26 then switches to a second
    voice (86-127) and back to the next bars (0-42)."""
    segue = SegueProcess(DEFAULT_MODEL, "accompany-test", "--add", "bass", "--trigger-cc",
                         str(TRIGGER_CC), "--seed", "1", *JACK_LATENCY)
    try:
        segue.wait_for(r"^listening")
        assert any("with a bass under it (channel 2)" in line for line in segue.lines)
        retaken(lambda: play_a_bar_for_a_bass(segue))
        host = Host(segue)
        try:
            for value, said in ((127, "with a second voice under it"),
                                (0, "answers: the next bars")):
                mark = len(segue.lines)
                host.send(mido.Message("control_change", control=26, value=value))
                segue.wait_for(said, mark)
        finally:
            host.close()
    finally:
        assert segue.stop() == 130


def play_a_bar_for_a_bass(segue: SegueProcess) -> None:
    """One take of the test above: a host plays the bar and checks the answer."""
    host = Host(segue)
    try:
        since, lines = time.perf_counter(), len(segue.lines)
        host.sysex(sysex.tempo(120))
        host.sysex(sysex.meter(4, 4))
        host.start(120)
        phrase = [(4 + i / 2, SCALE[i]) for i in range(8)]
        for beat, pitch in phrase:
            host.at(beat, mido.Message("note_on", note=pitch, velocity=90))
            host.at(beat + 0.45, mido.Message("note_off", note=pitch))
        host.at(7.98, mido.Message("control_change", control=TRIGGER_CC, value=127))
        ready = host.wait_state(sysex.READY, since)
        done = host.wait_state(sysex.LISTENING, ready)
        host.stop()
        time.sleep(0.05)
    finally:
        host.close()
    answer_line = segue.lines[segue.wait_for(r"^answer: ", lines)]
    assert answer_line.startswith("answer: the phrase with a bass, "), answer_line
    # how many bars the phrase spans is heard on the clock's ticks, which JACK may drop
    on_time(" 1 bars from bar " in answer_line, f"not a phrase of 1 bar: {answer_line}")
    abc = segue.answer_abc(lines)

    notes = [h for h in host.notes(since) if h.time < done + 0.05]
    all_ended(notes, answer_line)
    ons = [h for h in notes if h.message.type == "note_on" and h.message.velocity > 0]
    melody = [h for h in ons if h.message.channel == 0]
    assert [h.message.note for h in melody] == SCALE
    # the part is the printed answer's second voice, every note of it on channel 2
    part = sorted(pitch for _, _, pitch in note_events(parse_abc(abc))[1])
    assert part and sorted(h.message.note for h in ons if h.message.channel == 1) == part, abc
    assert {h.message.channel for h in ons} == {0, 1}
    start = host.beat_of(melody[0].time)
    on_time(abs(start - round(start / 4) * 4) < 1 / 24 and start >= 8,
            f"the phrase came back at beat {start}, not on a bar line after it")
    for heard, (beat, _) in zip(melody, phrase, strict=True):
        played = host.beat_of(heard.time) - start
        on_time(abs(played - (beat - 4)) < 1 / 24,
                f"{heard.message} at beat {played} of the answer, not {beat - 4}")
    on_time(max(host.beat_of(h.time) for h in notes) - start <= 4 + 1 / 8,
            "a note of the answer went on past its bar")


def test_latency_sends_every_note_early(jack: None, model_path: Path) -> None:
    """--latency 25: the answer leaves 25 ms early, for a DAW that hears it 25 ms late."""
    segue = SegueProcess(model_path, "latency-test", "--bars", str(BARS), "--trigger-cc",
                         str(TRIGGER_CC), "--seed", "1", "--latency", "25")
    try:
        segue.wait_for(r"^listening")
        figures = call_and_response(segue, 120, "4/4", early=0.025)
    finally:
        segue.stop()
    assert -30 < statistics.median(figures["errors_ms"]) < -20, figures


def test_segues_two_ports_share_one_interface(jack: None) -> None:
    """Output sends, Input hands each message to its callback with its arrival time; both have a
    name, close once (a second close does nothing) and close at the end of a `with` block."""
    heard: list[mido.Message] = []
    with Output("jack", "ports-test-out", virtual=True) as out:
        with Input("jack", jack_port("ports-test-out", outputs=False),
                   callback=heard.append) as inp:
            before = time.perf_counter()
            out.send(mido.Message("note_on", note=60, velocity=90))
            out.send(mido.Message("control_change", control=21, value=5))
            deadline = time.monotonic() + 5
            while len(heard) < 2 and time.monotonic() < deadline:
                time.sleep(0.01)
            assert [m.type for m in heard] == ["note_on", "control_change"]
            assert heard[0].note == 60 and heard[1].value == 5
            assert all(before <= m.time <= time.perf_counter() for m in heard)
            assert inp.name.endswith("ports-test-out") and not inp.closed
        assert inp.closed
        inp.close()  # again: nothing happens
    assert out.closed and out.name == "ports-test-out"
    out.send(mido.Message("note_off", note=60))  # a closed output drops what it is sent


def test_arrival_times_leave_out_the_reading_delay() -> None:
    """Messages read 0.1 to 8 ms after they arrived are stamped with when they arrived: never
    early, and after a few dozen messages within a millisecond."""
    rng = random.Random(7)
    arrivals = [1000 + i / 48 for i in range(600)]  # MIDI clock at 120 BPM, on our clock
    arrival = ArrivalTimes(window=256)
    errors = []
    for before, now in zip([arrivals[0], *arrivals], arrivals, strict=False):
        stamp = arrival(now - before, now + rng.uniform(0.0001, 0.008))
        errors.append(stamp - now)
    assert all(0 <= error < 0.008 for error in errors)
    assert max(errors[50:]) < 0.001
    assert statistics.fmean(errors[50:]) < 0.0005


def test_list_ports_and_a_missing_server(segue: SegueProcess) -> None:
    command = [sys.executable, "-m", "bridge", "midi", "--api", "jack", "--list"]
    listing = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert listing.returncode == 0
    assert segue.input in listing.stdout and segue.output in listing.stdout

    env = {**os.environ, "JACK_DEFAULT_SERVER": "no-such-segue-server"}
    missing = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=60,
                             env=env)
    assert missing.returncode == 1
    [line] = missing.stderr.strip().splitlines()
    assert line.startswith("segue midi: error: no JACK server is running: start one"), line


@pytest.mark.parametrize(("options", "message"), [
    (("--add", "bass", "--part-channel", "1"), "--part-channel must differ from --channel (1)"),
    (("--part-channel", "17"), "--part-channel must be between 1 and 16, not 17"),
    (("--add", "drums"), "argument --add: invalid choice: 'drums'"),
])
def test_accompany_mode_options_are_checked_before_anything_starts(options: tuple[str, ...],
                                                                   message: str) -> None:
    command = [sys.executable, "-m", "bridge", "midi", "--api", "jack", *options]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode != 0 and message in result.stderr, result.stderr


def test_fl_studio_script_speaks_the_bridges_sysex() -> None:
    pytest.importorskip("fl_classes", reason="the dev extra's fl-studio-api-stubs")
    sys.path.insert(0, str(Path(__file__).parent.parent / "plugins" / "flstudio"))
    try:
        import device_Segue as script
    finally:
        sys.path.pop(0)

    def framed(data: tuple[int, ...]) -> bytes:
        return bytes([0xF0, *data, 0xF7])

    assert script.tempo_message(137.25) == framed(sysex.tempo(137.25))
    assert sysex.decode(sysex.tempo(137.25)).values == (137.25,)
    assert script.meter_message(7, 8) == framed(sysex.meter(7, 8))
    assert script.position_message(True, 123_456, 96) == framed(sysex.position(True, 123_456, 96))
    assert sysex.decode(sysex.position(True, 123_456, 96)).values == (True, 123_456, 96)
    assert script.message(script.CONTINUE, []) == framed(sysex.encode(sysex.CONTINUE))
    assert script.message(script.AGAIN, []) == framed(sysex.encode(sysex.AGAIN))
    state = framed(sysex.state(sysex.THINKING, "Segue: thinking \u00e9"))
    assert script.state_text(state) == "Segue: thinking ?"
    assert script.state_text(framed(sysex.tempo(90))) is None


def follow(segments: list[tuple[float, float]], stalls: float = 0.0) -> list[tuple[float, float]]:
    """A Clock fed MIDI clock whose tempo is `segments` ((from beat, BPM), ...), each tick
    arriving at the next boundary of a 128-frame JACK period after it was sent, a `stalls`
    share of them held up 3-30 ms more. Returns, for each tick from beat 4 on, its beat and
    how far (seconds) the line known just before it arrived put it from when it was sent."""
    rng = random.Random(3)
    period = 128 / 48000
    sent, t = [], 100.0
    for tick in range(20 * 24):
        beat = tick / 24
        bpm = next(b for start, b in reversed(segments) if start <= beat)
        sent.append(t)
        t += 60 / bpm / 24
    clock = Clock(segments[0][1])
    clock.on_message(mido.Message("start"), sent[0] - 0.001)
    arrived = 0.0
    errors = []
    for tick, at in enumerate(sent):
        if tick >= 4 * 24:
            errors.append((tick / 24, clock.line(at).time_of(tick / 24) - at))
        delay = rng.uniform(0.003, 0.03) if rng.random() < stalls else 0.0
        arrived = max(arrived, math.ceil((at + delay) / period) * period)
        clock.on_message(mido.Message("clock"), arrived)
    return errors


@pytest.mark.parametrize(("segments", "stalls"), [
    ([(0, 120)], 0.05),
    ([(0, 120), (12, 90)], 0.0), ([(0, 120), (12, 140)], 0.0),
    ([(0, 120), (12, 90)], 0.05),
    ([(0, 120), *((8 + j / 3, 120 - 20 * j / 24) for j in range(25))], 0.0)])
def test_clock_follows_tempo_changes_and_ignores_held_up_ticks(
        segments: list[tuple[float, float]], stalls: float) -> None:
    """The line that places the answer's notes, just before each tick: within a JACK period
    and a little of where the host sent it; a held-up tick does not move it; after a step
    change of tempo, off only for the ticks that Segue needs to see it (CHANGE_TICKS and the
    one due as the last comes), by as much as they moved; on a ramp, within 6 ms."""
    changes = {start: bpm for start, bpm in segments[1:]} if len(segments) == 2 else {}
    for beat, error in follow(segments, stalls):
        allowed = 0.0035 if len(segments) < 3 else 0.006
        for start, bpm in changes.items():
            if start < beat <= start + (CHANGE_TICKS + 1) / 24:
                allowed += (CHANGE_TICKS + 1) * abs(60 / bpm - 60 / segments[0][1]) / 24
        assert abs(error) < allowed, (beat, error)
