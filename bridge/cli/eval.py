"""Measure a model on the held-out test split, against an n-gram and a "repeat" baseline.

Bits per character on the test tunes; then N test tunes are cut into a prompt (their first
--prompt-bars bars) and a real continuation (the next --bars bars), and the model, a character
n-gram fitted on the training split, and "repeat the prompt's last bars" each answer. For
every system: the share that parses, the share with every bar the right length, the share of
notes in the prompt's key, pitch-class and interval histogram distances to the real
continuations, how often bars repeat (against the real tunes), and diversity across --seeds.

figures (one column per system: the model, ngram, repeat, and real, the true continuation):
  bits/char          how surprised the system is by the test tunes, in bits per character
                     (lower is better; 6.6 is a blind guess among 96 characters)
  parses             share of continuations music21 can read
  bars right         share of continuations with exactly --bars bars, each as long as the
                     meter says (the model and ngram decode bar-exactly: expect 1.000)
  in key             share of notes in the scale of the prompt's key signature
  pitch-class dist.  how far the continuation's pitch-class histogram is from the real
                     continuation's (0 = same, 1 = nothing in common; lower is better)
  interval dist.     the same for the melodic intervals (steps and leaps) of the top line
  repeated bars      share of bars that repeat an earlier bar; "repetition gap" is the
                     distance to the real tunes' share (lower is better)
  diversity          how different the --seeds answers to one prompt are (0 = identical)

The report folder (--out, default reports/eval-<time>/) gets results.json (every figure),
continuations.json (every answer), table.md and pitch_class_histogram.png /
interval_histogram.png. The first run converts the test tunes to canonical ABC once (cached).

examples:
  segue eval                                     the shipped default model, 50 prompts
  segue eval --model my-mamba --n 200 --seeds 5
  segue eval --model runs/x --test-tunes 100 --limit-tunes 2000 --n 10     a quick look
"""

from __future__ import annotations

import argparse
import shlex
import sys

SUMMARY = "measure a model on the test split against n-gram and repeat baselines"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", help="model name or checkpoint folder (default: shipped)")
    parser.add_argument("--n", type=int, default=50, help="test prompts to continue (50)")
    parser.add_argument("--bars", type=int, default=8, help="bars per continuation (8)")
    parser.add_argument("--prompt-bars", type=int, default=8, help="bars per prompt (8)")
    parser.add_argument("--seeds", type=int, default=3, help="continuations per prompt (3)")
    parser.add_argument("--test-tunes", type=int, metavar="N",
                        help="score only the first N test tunes (default: all)")
    parser.add_argument("--limit-tunes", type=int, metavar="N",
                        help="fit the n-gram on the first N training tunes (default: all)")
    parser.add_argument("--batch-size", type=int, default=16,
                        help="windows per batch for bits per character (16)")
    parser.add_argument("--device", choices=["auto", "cpu", "cuda", "mps"], default="auto")
    parser.add_argument("--threads", type=int, help="CPU threads for torch")
    parser.add_argument("--workers", type=int, default=2,
                        help="processes for the one-time ABC conversion (2)")
    parser.add_argument("--out", metavar="DIR", help="report folder (reports/eval-<time>/)")
    parser.add_argument("--no-progress", dest="progress", action="store_false",
                        help="no progress bars (for logs)")


def run(args: argparse.Namespace) -> int:
    from engine.evaluate import EvalConfig, evaluate

    config = EvalConfig(
        model=args.model, n=args.n, bars=args.bars, prompt_bars=args.prompt_bars,
        seeds=args.seeds, test_tunes=args.test_tunes, limit_tunes=args.limit_tunes,
        batch_size=args.batch_size, device=args.device, threads=args.threads,
        workers=args.workers, out=args.out, progress=args.progress,
        command=shlex.join(["segue", *sys.argv[1:]]))
    folder, _ = evaluate(config)
    print((folder / "table.md").read_text("utf-8"))
    print(f"report: {folder}")
    return 0
