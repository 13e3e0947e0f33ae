"""Timing of `segue midi` over JACK: played notes against their ideal times, and how long after
the end of a phrase the answer is ready.

    python bench/midi_timing.py                              # 120 BPM 4/4, 10 phrases
    python bench/midi_timing.py --bpm 90 --rounds 20 --latency 2
    python bench/midi_timing.py --transport free             # no MIDI clock: Segue's --bpm

A host in this process (tests/midi_helpers.py) sends MIDI clock at the tempo (with the FL
Studio script's SysEx, or --transport clock, continue or free as midi_helpers.play_and_check
describes), plays a bar of eighths and ends it with the trigger CC; `segue midi` runs in its
own process, as with a DAW, given --bpm and --meter too.
Each note of each answer is compared with where its ABC puts it on the host's timeline; the
error includes both JACK hops (clock in, note out), each up to one JACK period; `--latency`
is passed to `segue midi`, which then sends every note that many ms early. Uses the running
JACK server, else starts `jackd -d dummy -p 128` for the run (real-time where the system allows
it). Results differ with the machine's load: JACK clients that are late miss cycles (xruns).
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from midi_helpers import (
    BARS,
    TRANSPORTS,
    TRIGGER_CC,
    SegueProcess,
    call_and_response,
    jack_server,
    xruns,
)


def percentile(values: list[float], q: float) -> float:
    """The q-quantile of values (nearest rank)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=None, help="checkpoint name or folder (default: the "
                        "shipped default model)")
    parser.add_argument("--bpm", type=float, default=120.0)
    parser.add_argument("--meter", default="4/4")
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--latency", type=float, default=0.0, metavar="MS",
                        help="segue midi's --latency (default 0)")
    parser.add_argument("--transport", choices=TRANSPORTS, default="sysex",
                        help="how the host keeps time with Segue (default sysex: FL Studio's)")
    args = parser.parse_args()

    errors: list[float] = []
    ready: list[float] = []
    with jack_server():
        start_xruns = xruns()
        options = ["--bars", str(BARS), "--trigger-cc", str(TRIGGER_CC), "--seed", "1",
                   "--latency", str(args.latency), "--bpm", str(args.bpm), "--meter",
                   args.meter]
        segue = SegueProcess(args.model, "bench", *options)
        segue.wait_for(r"^listening", timeout=120)
        try:
            for _ in range(args.rounds):
                figures = call_and_response(segue, args.bpm, args.meter, within=0.05,
                                            transport=args.transport)
                errors += figures["errors_ms"]
                ready.append(figures["ready_s"])
        finally:
            segue.stop()
        late = xruns() - start_xruns
    own = [line for line in segue.lines if line.startswith("played ")]
    absolute = [abs(e) for e in errors]
    print(f"segue midi over JACK, {args.transport}, {args.bpm:g} BPM {args.meter}, {args.rounds}"
          f" answers of {BARS} bars, {len(errors)} notes, --latency {args.latency:g} "
          f"({platform.processor() or platform.machine()})")
    print(f"  note-on error at the host: p50 {percentile(absolute, 0.5):.2f} ms, "
          f"p99 {percentile(absolute, 0.99):.2f} ms, max {max(absolute):.2f} ms, "
          f"mean {statistics.fmean(errors):+.2f} ms (late > 0)")
    print(f"  phrase end -> answer ready: p50 {percentile(ready, 0.5) * 1000:.0f} ms, "
          f"max {max(ready) * 1000:.0f} ms")
    print(f"  the player's own count: {own[-1] if own else 'none'}")
    print(f"  JACK xruns during the run: {late if late else 'none seen (or not our server)'}")


if __name__ == "__main__":
    main()
