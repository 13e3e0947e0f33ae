"""Benchmark training and inference for each model preset, as the study did.

For each preset (default: all four): training throughput (tokens/s, seconds a step, the
projected time of 100,000 steps at the study's batch of 16 x 256 tokens) and the training loss
against steps and wall time; then inference at prompt lengths from 64 to 2048 tokens: time to
the first token, decoding tokens/s, and the time of an 8-bar continuation, to show how cost
grows with length (GPT-2 attends to the whole prompt; Mamba's cost per token is constant).
Runs on CUDA when present (Mamba with the mamba-ssm kernels where installed), else the CPU.

figures (per preset; models start from random weights, the cost does not depend on them):
  tokens/s, s/step   training speed at --batch-size x --block-size (median over the steps
                     after the first, which pays for set-up)
  100k steps (h)     the study's run (100,000 steps of 16 x 256 tokens) at that speed
  loss               training loss after every step, against steps and wall time
  first token (ms)   reading a prompt of N tokens until the first new token can be drawn
  tokens/s (decode)  writing --decode-tokens tokens one by one after that prompt
  8 bars (s)         a whole bar-exact continuation of a tune of about N tokens

The report folder (--out, default reports/bench-<time>/) gets results.json (every figure),
table.md, loss_vs_step.png, loss_vs_time.png and inference_vs_prompt.png. --quick takes about
2.5 minutes on 2 CPU cores; the defaults (20 steps of 16 x 256, six prompt lengths) about
half an hour on a CPU, minutes on a GPU.

On a machine that is busy with other work, give torch only the idle cores (--threads 1 beside a
one-thread training run): threads that fight over cores make small models tens of times
slower, and the figures meaningless.

examples:
  segue bench --quick                      all four presets in minutes (CPU-sized settings)
  segue bench --quick --threads 1 --note "one core busy training"
  segue bench --presets gpt2-6m mamba-6m --steps 50
  segue bench --steps 2000 --limit-tunes 0 --note "H100, idle"     a long GPU run
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from typing import Any

from bridge.cli import PRESET_NAMES

SUMMARY = "benchmark training and inference speed of the model presets"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--presets", nargs="+", metavar="PRESET",
                        choices=PRESET_NAMES,
                        help="presets to measure (default: all four)")
    parser.add_argument("--quick", action="store_true",
                        help="4 steps of 4 x 128 tokens, prompts of 64, 512 and 2048 tokens")
    parser.add_argument("--steps", type=int, help="training steps per preset (20)")
    parser.add_argument("--batch-size", type=int, help="sequences per step (16)")
    parser.add_argument("--block-size", type=int, help="tokens per sequence (256)")
    parser.add_argument("--prompt-lengths", type=int, nargs="+", metavar="N",
                        help="prompt lengths for inference (64 128 256 512 1024 2048)")
    parser.add_argument("--decode-tokens", type=int, help="tokens decoded per length (64)")
    parser.add_argument("--limit-tunes", type=int, metavar="N",
                        help="training tunes to draw batches from (1000; 0 = all)")
    parser.add_argument("--device", choices=["auto", "cpu", "cuda", "mps"], default="auto")
    parser.add_argument("--threads", type=int,
                        help="CPU threads for torch (default: one per core; on a busy machine, "
                             "the idle cores)")
    parser.add_argument("--out", metavar="DIR", help="report folder (reports/bench-<time>/)")
    parser.add_argument("--note", default="",
                        help="a remark for the report, e.g. 'CPU shared with a training job'")
    parser.add_argument("--no-progress", dest="progress", action="store_false",
                        help="no progress bars (for logs)")


def run(args: argparse.Namespace) -> int:
    import torch

    from engine.models.checkpoint import pick_device
    from engine.study.bench import QUICK, BenchConfig, bench, load_average

    cores, load = os.cpu_count() or 1, load_average()
    idle = max(1, cores - round(load or 0))
    threads = args.threads or torch.get_num_threads()
    if load is not None and threads > idle and pick_device(args.device).type == "cpu":
        print(f"segue bench: warning: the machine is busy (load average {load:.1f} on {cores} "
              f"cores); threads that fight over cores give low, noisy figures: try --threads "
              f"{idle}", file=sys.stderr)
    values: dict[str, Any] = dict(QUICK) if args.quick else {}
    for name in ("presets", "steps", "batch_size", "block_size", "prompt_lengths",
                 "decode_tokens", "limit_tunes"):
        if getattr(args, name) is not None:
            values[name] = getattr(args, name)
    if values.get("limit_tunes") == 0:
        values["limit_tunes"] = None
    folder, _ = bench(BenchConfig(
        **values, device=args.device, threads=args.threads, out=args.out, note=args.note,
        progress=args.progress, command=shlex.join(["segue", *sys.argv[1:]])))
    print((folder / "table.md").read_text("utf-8"))
    print(f"report: {folder}")
    return 0
