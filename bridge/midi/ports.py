"""MIDI ports through python-rtmidi, in mido's terms: pick an API, list ports, open two ports.

On macOS and Linux Segue makes virtual ports that DAWs see as devices named after them
(`--input "Segue In"` is a port the DAW sends to, `--output "Segue Out"` one it receives
from); a name that is already an existing port's (an IAC bus on macOS) opens that port
instead. Windows' WinMM has no virtual ports, so there Segue opens existing loopback ports
(loopMIDI, Windows MIDI Services) by name; a unique prefix or part of a name is enough, since
WinMM adds port numbers to names.

The APIs: auto (the platform's usual one; on Linux ALSA, or JACK where ALSA's sequencer is
missing), alsa, jack, coremidi, winmm. Failures to reach the MIDI system become a
`SegueError` that says what to do.

Both directions are `Port`s, in the spirit of mido's: `Input` passes each message to its
`callback` (read by a thread of Segue's own, never in rtmidi's callback: see there), `Output`
`send`s them.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Self

from engine.errors import SegueError

APIS = {"alsa": "LINUX_ALSA", "jack": "UNIX_JACK", "coremidi": "MACOSX_CORE",
        "winmm": "WINDOWS_MM"}
CLIENT_NAME = "Segue"
READ_EVERY = 0.001  # seconds between looks at an input's queue
QUEUE = 4096  # messages rtmidi keeps for us: a flood of MIDI clock comes thousands at once
PRIORITY = 1  # SCHED_FIFO priority of our MIDI threads: the lowest, below the MIDI system's own
OFFSETS = 256  # the last messages whose read times place the MIDI system's clock on ours
ALSA_SEQUENCER = Path("/dev/snd/seq")
HELP = {
    "jack": "no JACK server is running: start one (QjackCtl, or `jackd -d alsa`; without sound "
            "hardware `jackd -d dummy -p 128`) or choose another --api",
    "alsa": "ALSA's MIDI sequencer is not available (no /dev/snd/seq): load it with "
            "`sudo modprobe snd-seq`, or use a JACK server with --api jack",
    "coremidi": "CoreMIDI could not be opened: check Audio MIDI Setup",
    "winmm": "Windows MIDI could not be opened: check that loopMIDI is running",
}


def resolve_api(api: str = "auto") -> str:
    """The API a name stands for: 'auto' becomes the platform's usual one."""
    if api != "auto":
        if api not in APIS:
            raise SegueError(f"--api {api!r}: choose one of auto, {', '.join(APIS)}")
        return api
    if sys.platform == "darwin":
        return "coremidi"
    if sys.platform == "win32":
        return "winmm"
    return "alsa" if ALSA_SEQUENCER.exists() else "jack"


def backend(api: str = "auto") -> Any:
    """The mido backend for an API, e.g. mido.Backend('mido.backends.rtmidi/UNIX_JACK')."""
    import mido

    return mido.Backend(f"mido.backends.rtmidi/{APIS[resolve_api(api)]}", load=True)


@contextlib.contextmanager
def midi_system(api: str) -> Iterator[None]:
    """Turn the MIDI system's failures into a SegueError; keep its C libraries' chatter quiet."""
    name = resolve_api(api)
    try:
        with quiet_stderr():
            yield
    except ValueError as error:  # mido: the API is not compiled into python-rtmidi
        raise SegueError(f"--api {name}: this python-rtmidi was built without it ({error})") \
            from None
    except OSError:  # rtmidi.SystemError is an OSError
        raise SegueError(HELP[name]) from None


@contextlib.contextmanager
def quiet_stderr() -> Iterator[None]:
    """Silence what C code writes to the process's stderr (libjack, libasound) for a moment."""
    try:
        saved = os.dup(2)
    except OSError:
        yield
        return
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def realtime_priority() -> bool:
    """Ask for SCHED_FIFO for the calling thread, at PRIORITY; False where the system does not
    allow it. The lowest real-time priority keeps the thread ahead of ordinary work, and the
    MIDI system's threads (JACK's run at its priority less 5) able to take the CPU from it."""
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(PRIORITY))
    except (AttributeError, OSError):
        return False
    return True


def list_ports(api: str = "auto") -> tuple[list[str], list[str]]:
    """(ports Segue can read from, ports Segue can write to) under an API."""
    with midi_system(api):
        midi = backend(api)
        return midi.get_input_names(), midi.get_output_names()


def find_port(name: str, names: list[str], kind: str) -> str:
    """The one existing port `name` means: exact, else a unique prefix, else a unique part."""
    if name in names:
        return name
    for matches in ([n for n in names if n.lower().startswith(name.lower())],
                    [n for n in names if name.lower() in n.lower()]):
        if len(matches) == 1:
            return matches[0]
        if len(matches) > 1:
            raise SegueError(f"{kind} {name!r} matches several ports ({', '.join(matches)}); "
                             "give more of the name")
    known = ", ".join(names) if names else "none"
    raise SegueError(f"no {kind} port named {name!r} (ports: {known}); on Windows create it "
                     "first with loopMIDI")


class ArrivalTimes:
    """The `perf_counter` times messages arrived, from rtmidi's gaps between them.

    rtmidi gives each message the time since the one before, on the MIDI system's clock. The
    sum of those gaps places a message on that clock; the offset to ours is the smallest
    (read time - MIDI time) among the last `window` messages, since no message is read
    before it arrives. So a stamp does not carry the delay of the reading, only the least of
    the recent delays; the window lets the offset follow a MIDI clock that drifts from ours.
    """

    def __init__(self, window: int = OFFSETS) -> None:
        self.source_time = 0.0  # of the last message, on the MIDI system's clock
        self.offsets: deque[float] = deque(maxlen=window)

    def __call__(self, delta: float, read_at: float) -> float:
        """The arrival time of a message `delta` seconds after the one before, read at
        `read_at`."""
        self.source_time += delta
        self.offsets.append(read_at - self.source_time)
        return self.source_time + self.offset

    @property
    def offset(self) -> float:
        """perf_counter time minus MIDI time, as well as the recent messages place it."""
        return min(self.offsets)


class Port:
    """What Segue's two MIDI ports share, as mido's ports have it: a `name`, `closed`, `close()`
    (a second call does nothing) and `with`.

    Both are rtmidi ports, opened the same way: the existing port `name` of the MIDI system
    `api` (alsa, jack, coremidi, winmm), or a virtual port of that name; `client` is the name
    the MIDI system shows for us.
    """

    def __init__(self, rtmidi_class: str, api: str, name: str, *, virtual: bool,
                 client: str, **options: Any) -> None:
        import rtmidi

        rtapi = getattr(rtmidi, f"API_{APIS[api]}")
        if rtapi not in rtmidi.get_compiled_api():
            raise ValueError(f"{api} is not compiled in")
        self.rt = getattr(rtmidi, rtmidi_class)(rtapi, name=client, **options)
        try:
            if virtual:
                self.rt.open_virtual_port(name)
            else:
                self.rt.open_port(self.rt.get_ports().index(name))
        except BaseException:
            self.rt.delete()
            raise
        self.name = name
        self.closed = False

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.rt.close_port()
            self.rt.delete()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class Input(Port):
    """An input port whose messages a thread of Segue's own reads and passes to `callback`,
    each a mido message whose `time` is when it arrived (a `time.perf_counter` time).

    rtmidi would call Python on the MIDI system's thread, which under JACK is the real-time
    thread that must finish each period's work in time. Python there first waits for the
    interpreter's lock, and when another thread holds it (or was preempted holding it), JACK
    drops that period's MIDI (an "xrun"). So rtmidi only queues messages here, in C++, and a
    thread reads the queue every READ_EVERY seconds, at real-time priority where allowed,
    stamping each message with the time it arrived (`ArrivalTimes`), not the time it was read.
    """

    def __init__(self, api: str, name: str, *, virtual: bool = False,
                 client: str = CLIENT_NAME,
                 callback: Callable[[Any], None] | None = None) -> None:
        """Messages go to `callback` once it is set; those before are dropped."""
        super().__init__("MidiIn", api, name, virtual=virtual, client=client,
                         queue_size_limit=QUEUE)
        self.rt.ignore_types(sysex=False, timing=False, active_sense=True)
        self.callback = callback
        self.arrival = ArrivalTimes()
        self.stopping = threading.Event()
        self.reader = threading.Thread(target=self.read, name="segue-midi-in", daemon=True)
        self.reader.start()

    def read(self) -> None:
        """Pass on each message with its arrival time, until the port is closed."""
        import mido

        realtime_priority()
        while not self.stopping.is_set():
            got = self.rt.get_message()
            if got is None:
                time.sleep(READ_EVERY)
                continue
            data, delta = got
            arrived = self.arrival(delta, time.perf_counter())
            try:
                message = mido.Message.from_bytes(data, time=arrived)
            except ValueError:  # not a MIDI message: junk is dropped
                continue
            if self.callback is not None:
                self.callback(message)

    def close(self) -> None:
        self.stopping.set()
        if self.reader.is_alive():
            self.reader.join(timeout=5)
        super().close()


class Output(Port):
    """An output port: `send` a mido message, from any thread."""

    def __init__(self, api: str, name: str, *, virtual: bool = False,
                 client: str = CLIENT_NAME) -> None:
        super().__init__("MidiOut", api, name, virtual=virtual, client=client)
        self.lock = threading.Lock()

    def send(self, message: Any) -> None:
        with self.lock:
            if not self.closed:
                self.rt.send_message(message.bytes())

    def close(self) -> None:
        with self.lock:  # not while another thread is sending
            super().close()


def open_ports(input_name: str, output_name: str, api: str = "auto") -> tuple[Input, Output]:
    """Open Segue's input (set its `callback`) and its output.

    A name that is an existing port's (exactly, or as its only match on WinMM) opens that
    port: a loopback port, an IAC bus, a keyboard. Any other name makes a virtual port, where
    the API has them (not on WinMM).
    """
    api_name = resolve_api(api)
    with midi_system(api):
        names = backend(api)

        def port(name: str, known: list[str], kind: str) -> str | None:
            if api_name == "winmm":
                return find_port(name, known, kind)
            return name if name in known else None

        found = port(input_name, names.get_input_names(), "input")
        inport = Input(api_name, found or input_name, virtual=found is None)
        try:
            found = port(output_name, names.get_output_names(), "output")
            outport = Output(api_name, found or output_name, virtual=found is None)
        except BaseException:
            inport.close()
            raise
        return inport, outport
