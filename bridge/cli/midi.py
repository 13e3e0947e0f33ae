"""Call and response with a DAW over MIDI: play a phrase, Segue answers with the next bars.

Segue opens an input port (your DAW sends the phrase, MIDI clock and SysEx there) and an output
port (the answer comes from there): virtual ports named --input / --output on macOS and
Linux, existing loopback ports (loopMIDI) with those names on Windows. It follows MIDI clock
(and Start, Stop, Continue, Song Position) when the DAW sends it, else --bpm, and answers from
the first bar line after the phrase, at the DAW's tempo.

A phrase ends with the trigger (--trigger-cc or --trigger-note), after --silence-bars of
silence, or at --max-bars. Control Change on any channel: CC 20 temperature, CC 21 bars,
CC 22 another take of the last phrase, CC 23 panic, CC 26 what an answer is (the next
bars, or the phrase played back with a bass or a second voice under it). FL Studio: see
plugins/flstudio and docs/guide/daws.md.

examples:
  segue midi --list                             the MIDI ports Segue can see
  segue midi                                    ports "Segue In" / "Segue Out", 4-bar answers
  segue midi --bars 8 --trigger-cc 64           the sustain pedal ends the phrase
  segue midi --bpm 96 --meter 3/4 --key Em      no MIDI clock: a set tempo, meter and key
  segue midi --chords-channel 2                 the answer's chord symbols on channel 2
  segue midi --add bass                         your phrase played back with a bass under it
                                                (on channel 2; CC 26 switches while playing)
  segue midi --api jack --input in --output out --trigger-note 36
  segue midi --input "loopMIDI Port" --output "loopMIDI Port 1"      (Windows)
"""

from __future__ import annotations

import argparse
import signal
import sys
from typing import Any

SUMMARY = "answer phrases played in a DAW, over MIDI ports, in time (FL Studio and others)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    ports = parser.add_argument_group("ports")
    ports.add_argument("--input", default="Segue In", metavar="NAME",
                       help='the port Segue listens on (default "Segue In")')
    ports.add_argument("--output", default="Segue Out", metavar="NAME",
                       help='the port Segue answers on (default "Segue Out")')
    ports.add_argument("--api", default="auto",
                       choices=("auto", "alsa", "jack", "coremidi", "winmm"),
                       help="the MIDI system (default auto: CoreMIDI, WinMM, or ALSA on Linux "
                            "and JACK where ALSA's sequencer is missing)")
    ports.add_argument("--list", action="store_true", help="list the MIDI ports and exit")
    ports.add_argument("--channel", type=int, default=1, metavar="1-16",
                       help="the MIDI channel of the answer (default 1)")
    ports.add_argument("--chords-channel", type=int, metavar="1-16",
                       help="play the answer's chord symbols as a chord part on this channel "
                            "(default: not played)")
    time = parser.add_argument_group("time (used while no MIDI clock or host tempo comes)")
    time.add_argument("--bpm", type=float, default=120.0, metavar="B",
                      help="tempo (default 120)")
    time.add_argument("--meter", default="4/4", metavar="N/D",
                      help="meter, e.g. 3/4 (default 4/4; MIDI clock carries none)")
    phrase = parser.add_argument_group("the phrase")
    phrase.add_argument("--trigger-cc", type=int, metavar="C",
                        help="a Control Change (value 64 or more) that ends the phrase")
    phrase.add_argument("--trigger-note", type=int, metavar="P",
                        help="a note that ends the phrase (it is not part of the phrase)")
    phrase.add_argument("--silence-bars", type=float, default=1.0, metavar="S",
                        help="bars of silence that end a phrase (default 1)")
    phrase.add_argument("--max-bars", type=int, default=8, metavar="M",
                        help="the longest phrase, in bars (default 8)")
    phrase.add_argument("--key", help="the phrase's key, e.g. G, Bb, F#m (default: estimated)")
    answer = parser.add_argument_group("the answer")
    answer.add_argument("--bars", type=int, default=4, metavar="N",
                        help="bars in an answer (default 4)")
    answer.add_argument("--add", choices=("bass", "voice"),
                        help="answer with the phrase itself, played back with a new part under "
                             "it: a bass or a second voice (default: answer with the next bars; "
                             "CC 26 switches while you play: 0-42 next bars, 43-85 bass, 86-127 "
                             "voice)")
    answer.add_argument("--part-channel", type=int, metavar="1-16",
                        help="the MIDI channel of the added part (default: the one after "
                             "--channel)")
    answer.add_argument("--temperature", type=float, metavar="T",
                        help="randomness, 0 = greedy (default: the model's own, else 1.0; CC 20 "
                             "changes it)")
    answer.add_argument("--seed", type=int, metavar="N",
                        help="seed of the first answer, then seed+1, ... (default: random)")
    answer.add_argument("--latency", type=float, default=0.0, metavar="MS",
                        help="send each note this many milliseconds early, to make up for the "
                             "delay between Segue and what you hear: the MIDI system's and the "
                             "DAW's buffers (default 0; see docs/research/bench.md)")
    answer.add_argument("--model", metavar="NAME|PATH",
                        help="a model's name or checkpoint folder: segue-gpt2-6m (the default), "
                             "segue-open (trained on CC0 music only, made by "
                             "scripts/make_segue_open.sh), or one of yours")
    answer.add_argument("--device", choices=("auto", "cpu", "cuda", "mps"), default="auto",
                        help="where the model runs (default auto)")


def check(args: argparse.Namespace) -> Any:
    """The Settings the arguments ask for; SegueError for values out of range."""
    from bridge.midi.call_response import Settings, parse_key
    from bridge.midi.clock import parse_meter
    from engine.errors import SegueError
    from engine.settings import MIDI_MAX_BARS

    def midi_number(value: int | None, name: str) -> int | None:
        if value is not None and not 0 <= value <= 127:
            raise SegueError(f"{name} must be a MIDI number from 0 to 127, not {value}")
        return value

    if not 1 <= args.bars <= MIDI_MAX_BARS:
        raise SegueError(f"--bars must be between 1 and {MIDI_MAX_BARS}, not {args.bars}")
    if not 1 <= args.max_bars <= 64:
        raise SegueError(f"--max-bars must be between 1 and 64, not {args.max_bars}")
    if not 0 < args.silence_bars <= 16:
        raise SegueError(f"--silence-bars must be above 0 and at most 16, not "
                         f"{args.silence_bars}")
    if not 20 <= args.bpm <= 400:
        raise SegueError(f"--bpm must be between 20 and 400, not {args.bpm}")
    if not 0 <= args.latency <= 100:
        raise SegueError(f"--latency must be between 0 and 100 ms, not {args.latency}")
    if not 1 <= args.channel <= 16:
        raise SegueError(f"--channel must be between 1 and 16, not {args.channel}")
    if args.chords_channel is not None and not 1 <= args.chords_channel <= 16:
        raise SegueError(f"--chords-channel must be between 1 and 16, not {args.chords_channel}")
    if args.part_channel is not None and not 1 <= args.part_channel <= 16:
        raise SegueError(f"--part-channel must be between 1 and 16, not {args.part_channel}")
    part_channel = args.part_channel or args.channel % 16 + 1
    for name, value in (("--chords-channel", args.chords_channel),
                        ("--part-channel", args.part_channel)):
        if value == args.channel:
            raise SegueError(f"{name} must differ from --channel ({args.channel}): its notes "
                             "would cut the melody's notes of the same pitch short")
    try:
        parse_meter(args.meter)
    except ValueError:
        raise SegueError(f"--meter {args.meter!r}: write a meter such as 4/4, 3/4 or 6/8") \
            from None
    return Settings(bars=args.bars, temperature=args.temperature, seed=args.seed,
                    key=parse_key(args.key) if args.key else None,
                    trigger_cc=midi_number(args.trigger_cc, "--trigger-cc"),
                    trigger_note=midi_number(args.trigger_note, "--trigger-note"),
                    channel=args.channel - 1, silence_bars=args.silence_bars,
                    chords_channel=None if args.chords_channel is None else
                    args.chords_channel - 1,
                    max_bars=args.max_bars, latency=args.latency / 1000,
                    add=args.add, part_channel=part_channel - 1)


def print_ports(api: str) -> None:
    """Print the ports Segue can listen on and answer on."""
    from bridge.midi.ports import list_ports, resolve_api

    inputs, outputs = list_ports(api)
    print(f"MIDI ports ({resolve_api(api)}):")
    print("  Segue can listen on (DAW outputs, loopback ports):")
    for name in inputs or ["(none)"]:
        print(f"    {name}")
    print("  Segue can answer on:")
    for name in outputs or ["(none)"]:
        print(f"    {name}")


SIGNALS = (signal.SIGINT, signal.SIGTERM)


def interrupt(signum: int, frame: Any) -> None:
    """Ctrl-C and SIGTERM: stop once, as Ctrl-C does. Another of them (an impatient musician, a
    service manager) is ignored from now on, so it cannot cut short the switching off of the
    notes that sound (`stop`)."""
    for number in SIGNALS:
        signal.signal(number, signal.SIG_IGN)
    raise KeyboardInterrupt


def stop(bridge: Any, inport: Any, outport: Any, composer: Any) -> None:
    """End it all, with Ctrl-C and SIGTERM ignored: each note-on's note-off delivered before
    the output port closes (Bridge.close), then the ports and the composer."""
    for number in SIGNALS:
        signal.signal(number, signal.SIG_IGN)
    inport.close()
    bridge.close()
    outport.close()
    composer.close()


def run(args: argparse.Namespace) -> int:
    if args.list:
        print_ports(args.api)
        return 0
    settings = check(args)

    from bridge.midi.call_response import Bridge, answer_kind
    from bridge.midi.clock import Clock, parse_meter
    from bridge.midi.composer import ComposerProcess
    from bridge.midi.ports import open_ports, realtime_priority, resolve_api

    # The player and the input threads must get the interpreter quickly: switch threads every
    # 0.5 ms rather than every 5 ms. The model runs in a process of its own
    # (bridge/midi/composer.py).
    sys.setswitchinterval(0.0005)
    say = lambda text: print(text, flush=True)  # noqa: E731
    composer = ComposerProcess(args.model, args.device)
    try:
        composer.check(settings.temperature)
        say(f"model {composer.name} on {composer.device}")
        inport, outport = open_ports(args.input, args.output, args.api)
    except BaseException:
        composer.close()
        raise
    bridge = Bridge(outport, Clock(args.bpm, parse_meter(args.meter)), composer, settings,
                    say=say)
    handlers = {number: signal.signal(number, interrupt) for number in SIGNALS}
    # Every thread of this process at the same real-time priority where allowed (the model's
    # process, started above, keeps the ordinary one): a thread that waits for the interpreter
    # lock must never wait for an ordinary thread that the system has put aside.
    realtime_priority()
    try:
        inport.callback = bridge.on_message
        say(f"ports: input {inport.name!r}, output {outport.name!r} ({resolve_api(args.api)})")
        if settings.add:
            say(answer_kind(settings))
        bridge.run()
    finally:
        try:
            stop(bridge, inport, outport, composer)
        finally:
            for number, handler in handlers.items():
                signal.signal(number, handler)
    return 0
