"""Latency of continuations with the default model: warm, whole `segue continue` runs, start-up.

    python bench/continue_latency.py                   # examples/kesh.abc, 8 bars, 10 runs
    python bench/continue_latency.py --model NAME --bars 4 --runs 20 --json out.json
    python bench/continue_latency.py --drafts 1        # one draft each (default: the model's)

Every figure is given as wall time and CPU time. On a machine that other work keeps busy, wall
time includes waiting for a core; CPU time (the process's user + system time) is what the work
itself costs. The load average before and after says how busy the machine was.

- Warm: one Engine, loaded once, continues the tune `--runs` times (seeds 0, 1, ...): the ABC
  read, the prompt written, the bars decoded. Also a two-voice tune (voice lines forced between
  sampled bars), and one voice of `--bars` bars given note for note to the decoder (the forced
  part of accompaniment), read token by token and at once.
- Cold: a new `segue continue` process per run (Python's start, the imports, loading the model,
  the continuation, as a user at a terminal sees it), and `segue --help`.
- Start-up: importing torch, music21 and the engine, each in a fresh process.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TUNE = ROOT / "examples" / "kesh.abc"
TWO_VOICES = ("X:1\nT:Two voices\nM:3/4\nL:1/8\nK:G\nV:1\nB2d2g2|f4 e2|d2B2G2|A6|\n"
              "V:2\nG,4 D,2|D,6|G,4 B,2|D,6|\n")
IMPORTS = {"python": "pass", "torch": "import torch", "music21": "import music21",
           "engine (with torch, music21)":
               "import engine.models.continuation, engine.models.gpt2_fast",
           "transformers GPT-2 (no longer needed)":
               "import transformers.models.gpt2.modeling_gpt2"}


def machine() -> str:
    """The CPU's name and cores, the OS and torch's version."""
    import torch
    from mamba_speed import cpu_name  # this folder's sibling script

    return (f"{cpu_name()}, {os.cpu_count()} cores, {platform.system()} {platform.release()}, "
            f"Python {platform.python_version()}, torch {torch.__version__}")


def load() -> str:
    return "/".join(f"{x:.2f}" for x in os.getloadavg())


def measure(fn: Callable[[], object], runs: int) -> dict[str, list[float]]:
    """Wall and CPU seconds of `runs` calls of `fn` in this process."""
    wall, cpu = [], []
    for _ in range(runs):
        w, c = time.perf_counter(), time.process_time()
        fn()
        cpu.append(time.process_time() - c)
        wall.append(time.perf_counter() - w)
    return {"wall": wall, "cpu": cpu}


def measure_process(command: list[str], runs: int) -> dict[str, list[float]]:
    """Wall and CPU seconds (the child's user + system) of `runs` runs of `command`."""
    wall, cpu = [], []
    for _ in range(runs):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.perf_counter()
        subprocess.run(command, check=True, capture_output=True, cwd=ROOT)
        wall.append(time.perf_counter() - started)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
    return {"wall": wall, "cpu": cpu}


def summary(figures: dict[str, list[float]]) -> str:
    wall, cpu = figures["wall"], figures["cpu"]
    return (f"wall median {statistics.median(wall):.3f} s (min {min(wall):.3f}, "
            f"max {max(wall):.3f}), CPU median {statistics.median(cpu):.3f} s, n={len(wall)}")


def forced_voice(engine, abc: str, bars: int, runs: int) -> dict[str, dict[str, list[float]]]:
    """`bars` bars given note for note after the prompt: read token by token, and at once."""
    import torch

    from engine.abc.music import parse_abc
    from engine.abc.prompt import make_prompt
    from engine.models.continuation import Sampling, one_cpu_thread
    from engine.models.lm import decoder_for

    prompt = make_prompt(parse_abc(abc))
    [given] = engine.continue_abc(abc, bars=bars, sampling=Sampling(seed=0))
    text = given.abc.split("K:", 1)[1].split("\n", 1)[1]
    context = engine.encode(prompt.head + prompt.body)
    ids = torch.tensor([engine.tokenizer.encode(text)])
    decoder = decoder_for(engine.model, engine.half)

    def steps() -> None:
        decoder.prefill(context)
        for token in ids[0]:
            decoder.step(token[None])

    def at_once() -> None:
        decoder.prefill(context)
        decoder.extend(ids)

    with one_cpu_thread(engine.device):
        return {"tokens": {"wall": [float(ids.shape[1])], "cpu": [0.0]},
                "step by step": measure(steps, runs), "at once": measure(at_once, runs)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=None, help="name or checkpoint (default: shipped)")
    parser.add_argument("--bars", type=int, default=8)
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--drafts", type=int,
                        help="drafts drawn for each continuation (default: the model's own)")
    parser.add_argument("--import-runs", type=int, default=3)
    parser.add_argument("--json", metavar="PATH", help="also write the figures here")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    load_before = load()

    from engine.models.continuation import Engine, Sampling

    abc = TUNE.read_text()
    loading = measure(lambda: Engine.load(args.model, device="cpu"), 1)
    engine = Engine.load(args.model, device="cpu")
    engine.continue_abc(abc, bars=args.bars, sampling=Sampling(seed=999))  # warm-up
    seeds = iter(range(10**6))
    tokens: list[int] = []

    def continuation(text: str) -> Callable[[], None]:
        def run() -> None:
            [result] = engine.continue_abc(text, bars=args.bars, sampling=Sampling(
                seed=next(seeds), drafts=args.drafts))
            tokens.append(result.tokens)
        return run

    figures = {"model loading": loading,
               "warm": measure(continuation(abc), args.runs)}
    tune_tokens = statistics.median(tokens)
    engine.continue_abc(TWO_VOICES, bars=args.bars, sampling=Sampling(seed=999))
    figures["warm, two voices"] = measure(continuation(TWO_VOICES), args.runs)
    forced = forced_voice(engine, abc, args.bars, args.runs)
    forced_tokens = int(forced.pop("tokens")["wall"][0])

    model_args = ["--model", args.model] if args.model else []
    segue = [sys.executable, "-m", "bridge"]
    drafts_args = ["--drafts", str(args.drafts)] if args.drafts else []
    figures["segue continue"] = measure_process(
        [*segue, "continue", str(TUNE), "--bars", str(args.bars), "--seed", "1", *model_args,
         *drafts_args], args.runs)
    figures["segue --help"] = measure_process([*segue, "--help"], args.import_runs)
    imports = {name: measure_process([sys.executable, "-c", code], args.import_runs)
               for name, code in IMPORTS.items()}

    print(f"machine: {machine()}")
    print(f"load average (1/5/15 min): {load_before} at the start, {load()} at the end")
    drafts = engine.resolve_sampling(Sampling(drafts=args.drafts)).drafts
    print(f"model: {engine.name}, {args.bars} bars of {TUNE.name}, {drafts} draft(s) each "
          f"(median {tune_tokens:.0f} tokens sampled, every draft)")
    for name, result in figures.items():
        print(f"{name + ':':26s}{summary(result)}")
    for name, result in forced.items():
        print(f"{'forced voice, ' + name + ':':26s}{summary(result)} ({forced_tokens} tokens)")
    for name, result in imports.items():
        print(f"{'import ' + name + ':':26s}{summary(result)}")
    if args.json:
        Path(args.json).write_text(json.dumps(
            {"machine": machine(), "load_average": [load_before, load()],
             "model": engine.name, "bars": args.bars, "drafts": drafts,
             "tokens": tune_tokens,
             "figures": figures, "forced_voice": forced, "forced_tokens": forced_tokens,
             "imports": imports}, indent=1) + "\n")


if __name__ == "__main__":
    main()
