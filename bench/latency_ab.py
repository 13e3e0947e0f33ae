"""Warm continuation latency of two checkouts of Segue, measured turn about.

    git worktree add ../before HEAD~1                 # the commit to compare with
    python bench/latency_ab.py ../before .            # 3 turns, 5 runs a case
    python bench/latency_ab.py OLD NEW --turns 3 --runs 5 --json ab.json

A machine's speed drifts (other jobs, a cloud host's neighbours): figures taken an hour apart
can differ by more than a change does. Each turn runs one process per checkout, one after the
other, so that the drift falls on both. The cases (`CASES`): 8 bars of kesh.abc with 1, 8
and 16 drafts, and 8 drafts of a two-voice tune, each with the model loaded and warmed once;
the figures are each case's median wall and CPU seconds over every run of every turn.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

from continue_latency import TWO_VOICES, machine  # this folder's sibling script

CASES = [("kesh.abc", 1), ("kesh.abc", 8), ("kesh.abc", 16), ("two voices", 8)]

# Run in each checkout: its own engine, the shipped model, every case `runs` times.
CHILD = """
import json, sys, time
sys.path.insert(0, ".")
from engine.models.continuation import Engine, Sampling
tunes = {"kesh.abc": open("examples/kesh.abc").read(), "two voices": %r}
engine = Engine.load(device="cpu")
figures = {}
for name, drafts in %r:
    engine.continue_abc(tunes[name], 8, Sampling(seed=999, drafts=drafts))
    wall, cpu = [], []
    for seed in range(%d):
        started, used = time.perf_counter(), time.process_time()
        engine.continue_abc(tunes[name], 8, Sampling(seed=seed, drafts=drafts))
        wall.append(time.perf_counter() - started)
        cpu.append(time.process_time() - used)
    figures[f"{name}, {drafts} draft(s)"] = {"wall": wall, "cpu": cpu}
print(json.dumps(figures))
"""


def measure(checkout: Path, runs: int) -> dict[str, dict[str, list[float]]]:
    """Every case's wall and CPU seconds in a fresh process of `checkout`."""
    done = subprocess.run([sys.executable, "-c", CHILD % (TWO_VOICES, CASES, runs)],
                          cwd=checkout, capture_output=True, text=True, check=True)
    return json.loads(done.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkouts", nargs=2, type=Path, metavar="CHECKOUT",
                        help="two folders holding Segue (the first is 'before')")
    parser.add_argument("--turns", type=int, default=3)
    parser.add_argument("--runs", type=int, default=5, help="runs of each case in a turn")
    parser.add_argument("--json", metavar="PATH", help="also write every run's figures here")
    args = parser.parse_args()
    runs: dict[str, dict[str, dict[str, list[float]]]] = {str(c): {} for c in args.checkouts}
    for _ in range(args.turns):
        for checkout in args.checkouts:
            for case, figures in measure(checkout, args.runs).items():
                kept = runs[str(checkout)].setdefault(case, {"wall": [], "cpu": []})
                kept["wall"] += figures["wall"]
                kept["cpu"] += figures["cpu"]
    print(f"machine: {machine()}")
    print(f"{args.turns} turns of {args.runs} runs; median wall seconds (CPU seconds)")
    first, second = (str(c) for c in args.checkouts)
    print(f"| 8 bars | {first} | {second} |\n|---|---:|---:|")
    for case in runs[first]:
        cells = [f"{statistics.median(runs[c][case]['wall']):.3f} "
                 f"({statistics.median(runs[c][case]['cpu']):.3f})" for c in (first, second)]
        print(f"| {case} | {cells[0]} | {cells[1]} |")
    if args.json:
        Path(args.json).write_text(json.dumps({"machine": machine(), "runs": runs}, indent=1))


if __name__ == "__main__":
    main()
