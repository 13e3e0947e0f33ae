# name=Segue
"""Segue for FL Studio: a MIDI controller script that keeps the Segue bridge in time with FL.

Install: `segue install-plugins`, or copy this file into
Documents/Image-Line/FL Studio/Settings/Hardware/Segue/; then in
Options > MIDI settings pick the input that carries Segue's answer ("Segue Out"), set its
controller type to "Segue" and its port number to the port number of the output that goes
to Segue ("Segue In"). Segue's docs/guide/daws.md has the
whole setup.

What it does, over MIDI only (FL's Python has no sockets, threads or dependable files):
- sends FL's tempo, time signature and song position to the bridge as SysEx, when they change
  and about once a second (the protocol: bridge/midi/sysex.py in Segue's repository);
- a pad or key set below asks Segue for an answer now (CONTINUE), another for another take
  (FL gives a script only its own inputs' messages: give the keyboard's input this controller
  type and the same port number too; all else passes on to FL);
- shows what Segue is doing (listening, thinking, playing) in FL's hint bar;
- lets the answer's notes through to FL, so they play the selected channel and record.
"""

import device
import general
import mixer
import transport
import ui

TYPE_CHECKING = False  # mypy reads the block below; FL Studio never imports typing
if TYPE_CHECKING:
    from fl_classes import FlMidiMsg

# -- settings you may change ------------------------------------------------------------------
CONTINUE_NOTE = -1  # a note (0-127) on this device that asks for an answer now; -1: none
CONTINUE_CC = 24  # a Control Change (value 64 or more) that does the same; -1: none
AGAIN_CC = 25  # a Control Change that asks for another take of the last phrase; -1: none
DENOMINATOR = 4  # FL's API gives the beats in a bar but not their note value: 4 = quarters
HEARTBEAT = 50  # OnIdle calls (about 20 ms each) between repeats of tempo, meter, position

# -- the SysEx protocol (bridge/midi/sysex.py) ---------------------------------------------
HEADER = [0xF0, 0x7D, 0x53, 0x47]  # non-commercial manufacturer ID, then "SG"
TEMPO, METER, POSITION = 0x01, 0x02, 0x03
CONTINUE, AGAIN = 0x10, 0x11
STATE = 0x20
NOTE_ON, CONTROL_CHANGE = 0x90, 0xB0


def seven_bit(value: int, groups: int) -> 'list[int]':
    """`value` as `groups` 7-bit bytes, most significant first."""
    return [(value >> (7 * shift)) & 0x7F for shift in reversed(range(groups))]


def message(command: int, data: 'list[int]') -> bytes:
    return bytes([*HEADER, command, *data, 0xF7])


def tempo_message(bpm: float) -> bytes:
    return message(TEMPO, seven_bit(round(bpm * 100), 3))


def meter_message(numerator: int, denominator: int) -> bytes:
    return message(METER, [numerator, denominator])


def position_message(playing: bool, ticks: int, ppq: int) -> bytes:
    return message(POSITION, [int(playing), *seven_bit(max(0, ticks), 4), *seven_bit(ppq, 2)])


def state_text(sysex: bytes) -> 'str | None':
    """The hint-bar text of a STATE message from the bridge, or None for other SysEx."""
    if len(sysex) < 7 or list(sysex[:4]) != HEADER or sysex[4] != STATE:
        return None
    return bytes(b for b in sysex[6:-1] if 32 <= b < 127).decode("ascii")


def current_tempo() -> float:
    """FL's tempo in BPM (some FL versions give thousandths of a BPM)."""
    bpm = float(mixer.getCurrentTempo())
    return bpm / 1000 if bpm > 1000 else bpm


def current_meter() -> 'tuple[int, int]':
    ppq = general.getRecPPQ()
    beats = general.getRecPPB() // ppq if ppq > 0 else 4
    return max(1, min(32, beats)), DENOMINATOR


class Segue:
    """What the script remembers between FL's calls."""

    def __init__(self) -> None:
        self.sent: tuple[float, tuple[int, int], bool] | None = None
        self.idle = 0

    def send(self, sysex: bytes) -> None:
        if device.isAssigned():
            device.midiOutSysex(sysex)

    def report(self, force: bool = False) -> None:
        """Send tempo, meter and position when they change, or on every heartbeat."""
        bpm, meter, playing = current_tempo(), current_meter(), transport.isPlaying()
        self.idle += 1
        if not force and (bpm, meter, playing) == self.sent and self.idle < HEARTBEAT:
            return
        self.idle = 0
        self.sent = (bpm, meter, playing)
        self.send(tempo_message(bpm))
        self.send(meter_message(*meter))
        self.send(position_message(playing, transport.getSongPos(2), general.getRecPPQ()))

    def command(self, msg: 'FlMidiMsg') -> bool:
        """Send CONTINUE or AGAIN when `msg` is their pad or key; True when it was."""
        kind, pressed = msg.status & 0xF0, msg.data2 >= 64
        note = msg.data1 if kind == NOTE_ON and msg.data2 > 0 else -2
        control = msg.data1 if kind == CONTROL_CHANGE and pressed else -2
        if note == CONTINUE_NOTE or control == CONTINUE_CC:
            self.send(message(CONTINUE, []))
        elif control == AGAIN_CC:
            self.send(message(AGAIN, []))
        else:
            return False
        ui.setHintMsg("Segue: asked for an answer")
        return True


segue = Segue()


def OnInit() -> None:
    ui.setHintMsg("Segue: connected; play a phrase")
    segue.report(force=True)


def OnIdle() -> None:
    segue.report()


def OnRefresh(flags: int) -> None:
    segue.report(force=True)


def OnMidiMsg(msg: 'FlMidiMsg') -> None:
    if segue.command(msg):
        msg.handled = True  # the pad asked Segue; everything else reaches FL as usual


def OnSysEx(msg: 'FlMidiMsg') -> None:
    text = state_text(msg.sysex)
    if text is not None:
        ui.setHintMsg(text)
        msg.handled = True
