"""Segue's SysEx protocol: what the FL Studio script and the MIDI bridge tell each other.

Every message is `F0 7D 53 47 <command> <data...> F7`: 0x7D is MIDI's manufacturer ID for
non-commercial use, 0x53 0x47 ("SG") tells Segue's messages from other 0x7D users'. Data
bytes are 7-bit; numbers wider than 7 bits go most significant group first.

Host to bridge:

    01 TEMPO     t2 t1 t0           tempo in hundredths of a BPM (21 bits: 12000 = 120 BPM)
    02 METER     numerator denominator          (3 4 = 3/4)
    03 POSITION  playing p3 p2 p1 p0 q1 q0      transport running (0/1), song position in
                                                ticks (28 bits) at q (14 bits) ticks a beat
    10 CONTINUE                     end the phrase now and answer it
    11 AGAIN                        another take of the last phrase
    12 PANIC                        stop playing, all notes off

Bridge to host:

    20 STATE     state text...      state: 0 listening, 1 hearing a phrase, 2 thinking,
                                    3 answer ready, 4 playing, 5 error; text: ASCII for
                                    FL Studio's hint bar (at most 80 characters)

The FL Studio script (plugins/flstudio/device_Segue.py) writes the same bytes by hand, since
it cannot import this module; tests/test_midi_bridge.py checks that the two agree.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

HEADER = (0x7D, 0x53, 0x47)
TEMPO, METER, POSITION = 0x01, 0x02, 0x03
CONTINUE, AGAIN, PANIC = 0x10, 0x11, 0x12
STATE = 0x20
LISTENING, HEARING, THINKING, READY, PLAYING, ERROR = range(6)
MAX_TEXT = 80
DENOMINATORS = (1, 2, 4, 8, 16, 32)


@dataclass(frozen=True)
class Command:
    """One decoded message: its command byte and its values."""

    command: int
    values: tuple[Any, ...] = ()


def seven_bit(value: int, groups: int) -> list[int]:
    """`value` as `groups` 7-bit bytes, most significant first."""
    return [(value >> (7 * shift)) & 0x7F for shift in reversed(range(groups))]


def from_seven_bit(data: tuple[int, ...] | list[int]) -> int:
    """7-bit bytes, most significant first, as one number."""
    value = 0
    for byte in data:
        value = (value << 7) | byte
    return value


def encode(command: int, *data: int) -> tuple[int, ...]:
    """The data of a mido 'sysex' message (without F0 and F7) for `command`."""
    return (*HEADER, command, *data)


def tempo(bpm: float) -> tuple[int, ...]:
    """TEMPO: host to bridge."""
    return encode(TEMPO, *seven_bit(round(bpm * 100), 3))


def meter(numerator: int, denominator: int) -> tuple[int, ...]:
    """METER: host to bridge."""
    return encode(METER, numerator, denominator)


def position(playing: bool, ticks: int, ppq: int) -> tuple[int, ...]:
    """POSITION: host to bridge."""
    return encode(POSITION, int(playing), *seven_bit(ticks, 4), *seven_bit(ppq, 2))


def state(code: int, text: str) -> tuple[int, ...]:
    """STATE: bridge to host; the text made printable ASCII and cut to MAX_TEXT."""
    ascii_text = "".join(c if " " <= c <= "~" else "?" for c in text)[:MAX_TEXT]
    return encode(STATE, code, *ascii_text.encode("ascii"))


def decode(data: tuple[int, ...] | list[int]) -> Command | None:
    """The command in a SysEx message's data, or None when it is not a valid Segue message."""
    data = tuple(data)
    if data[:3] != HEADER or len(data) < 4 or any(not 0 <= b <= 0x7F for b in data):
        return None
    command, body = data[3], data[4:]
    if command == TEMPO and len(body) == 3:
        bpm = from_seven_bit(body) / 100
        return Command(TEMPO, (bpm,)) if 20 <= bpm <= 999 else None
    if command == METER and len(body) == 2:
        numerator, denominator = body
        valid = 1 <= numerator <= 32 and denominator in DENOMINATORS
        return Command(METER, (numerator, denominator)) if valid else None
    if command == POSITION and len(body) == 7 and body[0] in (0, 1):
        ppq = from_seven_bit(body[5:])
        return Command(POSITION, (bool(body[0]), from_seven_bit(body[1:5]), ppq)) if ppq else None
    if command in (CONTINUE, AGAIN, PANIC) and not body:
        return Command(command)
    if command == STATE and body and body[0] <= ERROR:
        return Command(STATE, (body[0], bytes(body[1:]).decode("ascii", "replace")))
    return None
