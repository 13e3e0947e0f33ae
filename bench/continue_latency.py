"""Latency of an 8-bar continuation with the default model: warm, and with model loading.

    python bench/continue_latency.py                   # examples/kesh.abc, 8 bars, 10 runs
    python bench/continue_latency.py --model NAME --bars 4 --runs 20

Warm: one Engine, loaded once, continues the tune `--runs` times (seeds 0, 1, ...). Cold: a
new `segue continue` process each run, so the figure holds Python's start, the imports, the
model's loading and the continuation, as a user at a terminal sees it. Medians and extremes,
in seconds, with the machine.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

TUNE = Path(__file__).resolve().parent.parent / "examples" / "kesh.abc"


def summary(seconds: list[float]) -> str:
    return (f"median {statistics.median(seconds):.3f} s  "
            f"(min {min(seconds):.3f}, max {max(seconds):.3f}, n={len(seconds)})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=None, help="name or checkpoint (default: shipped)")
    parser.add_argument("--bars", type=int, default=8)
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()

    from engine.continuation import Engine, Sampling

    abc = TUNE.read_text()
    started = time.perf_counter()
    engine = Engine.load(args.model, device="cpu")
    load_s = time.perf_counter() - started
    engine.continue_abc(abc, bars=args.bars, sampling=Sampling(seed=999))  # warm-up
    warm, tokens = [], []
    for seed in range(args.runs):
        started = time.perf_counter()
        [result] = engine.continue_abc(abc, bars=args.bars, sampling=Sampling(seed=seed))
        warm.append(time.perf_counter() - started)
        tokens.append(result.tokens)

    command = [sys.executable, "-m", "bridge", "continue", str(TUNE), "--bars", str(args.bars)]
    if args.model:
        command += ["--model", args.model]
    cold = []
    for seed in range(args.runs):
        started = time.perf_counter()
        subprocess.run([*command, "--seed", str(seed)], check=True, capture_output=True)
        cold.append(time.perf_counter() - started)

    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, {platform.platform()}, "
          f"load average {os.getloadavg()[0]:.2f}")
    print(f"model: {engine.name}, {args.bars} bars of {TUNE.name}, "
          f"median {statistics.median(tokens):.0f} tokens sampled an answer")
    print(f"model loading in-process: {load_s:.3f} s")
    print(f"warm (model loaded):      {summary(warm)}")
    print(f"cold (`segue continue`):  {summary(cold)}")


if __name__ == "__main__":
    main()
