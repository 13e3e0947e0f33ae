"""Latency of infill and accompaniment, warm, with the default model (target: under 1 s each
on 2 CPU cores).

    python bench/fill_latency.py                    # examples/kesh.abc, 10 runs
    python bench/fill_latency.py --model NAME --runs 20 --json out.json

One Engine, loaded once and warmed by one call of each, then `--runs` times each (seeds 0,
1, ...): filling bars 3-6 (4 bars) of the tune's 8, and adding a bass and chord symbols (with
the model's chord fit and without) to its 8 bars. Each call
is timed whole (the score written as ABC, the model's work, the answer put together) in wall
and CPU time; CPU time is what the work costs when other work keeps the cores busy. The load
average before and after says how busy the machine was.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from functools import partial
from pathlib import Path

from continue_latency import load, machine, measure  # this folder's sibling script

ROOT = Path(__file__).resolve().parent.parent
TUNE = ROOT / "examples" / "kesh.abc"


def summary(seconds: list[float]) -> str:
    ms = sorted(1000 * s for s in seconds)
    return f"p50 {statistics.median(ms):7.1f} ms   max {ms[-1]:7.1f} ms"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", help="a model name or folder (default: the shipped model)")
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--json", help="also write the figures here")
    args = parser.parse_args()

    from engine.abc.music import read_score
    from engine.models.continuation import Engine, Sampling
    from engine.models.infill import accompany_score, fill_score

    engine = Engine.load(args.model, device="cpu")
    score = read_score(str(TUNE))
    cases = {
        "fill 4 bars (3-6 of 8)":
            lambda seed: fill_score(engine, score, (3, 6), Sampling(seed=seed)),
        "add a bass to 8 bars":
            lambda seed: accompany_score(engine, score, "bass", Sampling(seed=seed)),
        "add chords to 8 bars":
            lambda seed: accompany_score(engine, score, "chords", Sampling(seed=seed)),
        "add chords, no chord fit":
            lambda seed: accompany_score(engine, score, "chords",
                                         Sampling(seed=seed, chord_fit=0)),
    }
    before = load()
    figures: dict[str, dict[str, list[float]]] = {}
    for name, call in cases.items():
        call(10_000)  # warm: caches of grammar states, first allocation
        seeds = iter(range(args.runs))
        figures[name] = measure(partial(lambda c, s: c(next(s)), call, seeds), args.runs)
    print(f"{engine.name} on {machine()}; load average {before} -> {load()}")
    for name, times in figures.items():
        print(f"{name:26s} wall {summary(times['wall'])}   cpu {summary(times['cpu'])}")
    if args.json:
        Path(args.json).write_text(json.dumps({"model": engine.name, "machine": machine(),
                                               "load": [before, load()], "figures": figures},
                                              indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
