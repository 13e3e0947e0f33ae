"""Measure a model on held-out music, against an n-gram and a "repeat" baseline.

Three sets of prompts, each cut from music the model never trained on (the test split):
  folk    the bundled folk tunes' test split, cut as before corpus v2 (the "old test split":
          its figures compare with the first shipped model's)
  voices  multi-voice pieces of the --data folders (songs: voice and the piano's two hands;
          quartets: four voices), prompts cut at bar lines under their head, like training
  chords  prompts with chord symbols: the folk tunes that have them, and the lead-sheet view
          (melody and chords) of the --data pieces
By default every set there is music for (voices needs --data).

For each set, bits per character and infill, then --n prompts of --prompt-bars bars, answered
in --bars bars by the model, by a character n-gram fitted on the training split, and by
"repeat the prompt's last bars"; "real" is how the music really goes on.

figures (one column per system: the model, ngram, repeat, and real):
  bits/char          how surprised the system is by the set's music, in bits per character
                     (lower is better; 6.6 is a blind guess among 96 characters)
  infill bits/char   the same for a gap's bars, given the music on both sides of the gap
                     (%%segue gap / %%segue fill), and given the music before it only
  parses             share of answers music21 can read
  bars right         share of answers with exactly --bars bars in every voice, each as long
                     as the meter says (the model and ngram decode bar-exactly: expect 1.000)
  abc2midi silent    share of answers abc2midi reads without an error or warning
  in key             share of notes in the scale of the prompt's key signature
  pitch-class dist.  how far the answer's pitch-class histogram is from the real
                     continuation's (0 = same, 1 = nothing in common; lower is better)
  interval dist.     the same for the melodic intervals (steps and leaps) of the top line
  ... between seeds  the same two distances between two answers to one prompt: how far
                     apart the system's own answers land (a system whose answers are as far
                     from each other as from the real one draws as widely as the music goes)
  repeated bars      share of bars that repeat an earlier bar (the form); "repetition gap"
                     is the distance to the real music's share (lower is better)
  voice order kept   share of multi-voice answers in which every pair of voices keeps the
                     prompt's order of mean pitch ("> a fifth apart": only the pairs more
                     than 7 semitones apart in the prompt, which cross less in real music)
  bars with chords   share of answer bars with a chord symbol (prompts with chords)
  chord agreement    share of strong-beat melody notes that belong to the chord in force
  chord = labeller's share of bars whose chord has the root a labelling baseline gives the
                     bar's notes (the chord that best explains them, as lead sheets label)
  diversity          how different the --seeds answers to one prompt are (0 = identical)

The report folder (--out, default reports/eval-<time>/) gets results.json (every figure, and
the CPU and wall seconds of each part of the run), continuations.json (every answer), table.md
(a table per set) and plots per set: <set>-pitch_class_histogram.png,
<set>-interval_histogram.png, <set>-figures.png. The first run converts the held-out music to
canonical ABC once (cached; a song or quartet takes seconds).

examples:
  segue eval                                     the shipped model, folk and chords sets
  segue eval --data ../shared/corpora/openscore-lieder \\
             --data ../shared/corpora/openscore-string-quartets --model runs/v2
  segue eval --model runs/v2 --data DIR --n 200 --seeds 3       the must-show run
  segue eval --set folk --test-tunes 100 --limit-tunes 2000 --n 10         a quick look
  segue eval --grid --model runs/v2 --prompts 50 --seeds 2      sampling grid on validation
  segue eval --grid --model runs/v2 --write          ... and record the best in config.json
  segue eval --grid --set folk --drafts 1,8 --temperatures 0.9 --top-ps 1.0
                                                 one draft against the consensus of eight

--grid continues validation prompts (never test ones) at every temperature x top_p (x chord-tone
weight, register lean, chord fit and drafts, where given) of the grid, the same prompts and
seeds at each point, and scores each point by the mean of pitch-class distance, interval
distance and repetition gap, and the gaps in chords and voices to the real ones where the set
has them (lower: closer to the real continuations). --write records the best as the checkpoint's
config.json "sampling", used by every request that sets none of them.
"""

from __future__ import annotations

import argparse
import shlex
import sys

from engine.errors import SegueError

SUMMARY = "measure a model on held-out music against n-gram and repeat baselines"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from engine.study.eval_sets import SETS
    from engine.study.sampling_grid import TEMPERATURES, TOP_PS

    parser.add_argument("--model", help="model name or checkpoint folder (default: shipped)")
    parser.add_argument("--set", dest="sets", action="append", choices=SETS,
                        help="a set to measure, repeatable (default: every set with music)")
    parser.add_argument("--data", action="append", default=[], metavar="DIR",
                        help="a folder of held-out pieces and of n-gram training music, as "
                             "`segue train --data` takes it (repeatable)")
    parser.add_argument("--prompts", "--n", dest="n", type=int, default=50, metavar="N",
                        help="prompts per set, and infill examples per set (50)")
    parser.add_argument("--bars", type=int, default=8, help="bars per continuation (8)")
    parser.add_argument("--prompt-bars", type=int, default=8, help="bars per prompt (8)")
    parser.add_argument("--seeds", type=int, default=3, help="continuations per prompt (3)")
    parser.add_argument("--temperature", type=float,
                        help="sampling temperature (default: the model's own, else 1.0)")
    parser.add_argument("--top-p", type=float,
                        help="nucleus top-p (default: the model's own, else 0.95)")
    parser.add_argument("--test-tunes", type=int, metavar="N",
                        help="take only the first N bundled tunes of the split (test; "
                             "validation with --grid) (default: all)")
    parser.add_argument("--bpc-chars", type=int, default=120_000, metavar="N",
                        help="characters of voices and chords windows to measure bits per "
                             "character on (120000; folk reads all its test tunes)")
    parser.add_argument("--limit-tunes", type=int, metavar="N",
                        help="fit the n-gram on the first N training tunes (default: all)")
    parser.add_argument("--batch-size", type=int, default=16,
                        help="windows per batch for bits per character (16)")
    parser.add_argument("--device", choices=["auto", "cpu", "cuda", "mps"], default="auto")
    parser.add_argument("--threads", type=int, help="CPU threads for torch")
    parser.add_argument("--workers", type=int, default=2,
                        help="processes for the one-time ABC conversion (2)")
    parser.add_argument("--out", metavar="DIR",
                        help="report folder (reports/eval-<time>/, with --grid grid-<time>/)")
    grid = parser.add_argument_group("choosing the sampling defaults (on the validation split)")
    grid.add_argument("--grid", action="store_true",
                      help="continue validation prompts at every --temperatures x --top-ps "
                           "and print how close each comes to the real continuations")
    grid.add_argument("--temperatures", type=floats, default=TEMPERATURES, metavar="T,T,..",
                      help=f"temperatures of the grid ({','.join(map(str, TEMPERATURES))})")
    grid.add_argument("--top-ps", type=floats, default=TOP_PS, metavar="P,P,..",
                      help=f"top_p values of the grid ({','.join(map(str, TOP_PS))})")
    grid.add_argument("--chord-tones", type=floats, metavar="W,W,..",
                      help="chord-tone weights of the grid: how much likelier a chord's notes "
                           "are on strong beats, as a log factor, 0 = off (default: the "
                           "model's own weight only)")
    grid.add_argument("--register-lean", type=floats, metavar="W,W,..",
                      help="register leans of the grid: how much less likely a voice's note "
                           "an octave from the centre of its prompt register is, as a log "
                           "factor, 0 = off (default: the model's own lean only)")
    grid.add_argument("--chord-fit", type=floats, metavar="W,W,..",
                      help="chord fits of the grid: how much likelier an added chord symbol is "
                           "for each note of its bar its triad holds, as a log "
                           "factor, 0 = off; with them the model also adds chord symbols to "
                           "the chords set's melodies (default: the model's own fit only, "
                           "and no chords added)")
    grid.add_argument("--drafts", type=whole_numbers, metavar="N,N,..",
                      help="drafts drawn for each answer, the one the others agree with kept "
                           "(1 = the first): one value to measure at, several for the grid "
                           "(default: the model's own)")
    grid.add_argument("--write", action="store_true",
                      help="record the best point as the model's \"sampling\" in its "
                           "config.json (what requests that set none get)")
    parser.add_argument("--no-progress", dest="progress", action="store_false",
                        help="no progress bars (for logs)")


def floats(text: str) -> tuple[float, ...]:
    """A comma-separated list of numbers."""
    try:
        return tuple(float(item) for item in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a list of numbers: {text!r}") from None


def whole_numbers(text: str) -> tuple[int, ...]:
    """A comma-separated list of whole numbers."""
    try:
        return tuple(int(item) for item in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a list of whole numbers: {text!r}") from None


def run(args: argparse.Namespace) -> int:
    from engine.models.continuation import Sampling
    from engine.study.evaluate import EvalConfig, evaluate
    from engine.study.sampling_grid import sampling_grid

    if args.write and not args.grid:
        raise SegueError("--write records what --grid chose: give --grid too")
    if args.grid and (args.temperature is not None or args.top_p is not None):
        raise SegueError("--grid tries --temperatures and --top-ps: leave out --temperature "
                         "and --top-p")
    if args.drafts and len(args.drafts) > 1 and not args.grid:
        raise SegueError("several --drafts are for --grid: give one to measure at")
    sampling = Sampling(temperature=args.temperature, top_p=args.top_p,
                        drafts=args.drafts[0] if args.drafts and not args.grid else None)
    sampling.check()
    config = EvalConfig(
        model=args.model, n=args.n, bars=args.bars, prompt_bars=args.prompt_bars,
        seeds=args.seeds, sets=args.sets, data=args.data, test_tunes=args.test_tunes,
        limit_tunes=args.limit_tunes, bpc_chars=args.bpc_chars, sampling=sampling,
        batch_size=args.batch_size, device=args.device,
        threads=args.threads, workers=args.workers, out=args.out, progress=args.progress,
        command=shlex.join(["segue", *sys.argv[1:]]))
    if args.grid:
        folder, _ = sampling_grid(config, args.temperatures, args.top_ps, args.chord_tones,
                                  args.register_lean, args.chord_fit, args.drafts,
                                  write=args.write)
    else:
        folder, _ = evaluate(config)
    print((folder / "table.md").read_text("utf-8"))
    print(f"report: {folder}")
    return 0
