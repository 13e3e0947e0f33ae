"""Continue a tune: read it, let the model write the next bars, print or save them.

The input is ABC, MusicXML or MIDI (use - to read ABC from standard input). The answer has
exactly --bars bars, each as long as the meter says, in the meter, unit length and key in
force at the end of the prompt; a prompt that ends inside a bar is first completed to the bar
line (the answer then opens with that short bar). Chord symbols in the prompt are read; the
answer writes chord symbols only with a model trained on them (Segue ABC v2). Without -o
the ABC goes to standard output; with -o the format follows the extension,
and the file holds the new bars alone as a complete piece (or the prompt too, --with-prompt).
With --variations K, ABC output holds K tunes (X:1 .. X:K) and other formats K numbered files.

examples:
  segue continue tune.abc --bars 8
  segue continue tune.abc --bars 16 --seed 7 --temperature 0.8 -o next.musicxml
  segue continue song.musicxml --part 1 --measures 1-4 --bars 4 --with-prompt -o song2.mxl
  segue continue phrase.mid --bars 2 --variations 3 -o answer.mid
  segue continue tune.abc --model segue-open        trained on CC0 music only (make it
                                                    first: scripts/make_segue_open.sh)
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bridge.cli import show_engine_notices
from bridge.cli.convert import add_selection_arguments, read_selection

if TYPE_CHECKING:  # torch and music21 load only when a command runs
    from engine.models.continuation import Engine, Sampling

SUMMARY = "continue a tune (ABC, MusicXML, MIDI) by N bars with the model"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("input", help="the tune to continue (.abc, .musicxml, .mxl, .mid, or -)")
    parser.add_argument("--bars", type=int, default=8, help="how many bars to add (default 8)")
    add_output_argument(parser)
    parser.add_argument("--with-prompt", action="store_true",
                        help="write the prompt and its continuation as one piece")
    add_selection_arguments(parser)
    add_sampling_arguments(parser, drafts=True)
    add_model_arguments(parser)


def add_output_argument(parser: argparse.ArgumentParser) -> None:
    """-o/--output (continue, fill, accompany)."""
    parser.add_argument("-o", "--output", metavar="OUT",
                        help="write here (format from the extension) instead of printing ABC")


def add_sampling_arguments(parser: argparse.ArgumentParser, chord_fit: bool = False,
                           drafts: bool = False) -> None:
    """--temperature, --top-p, --top-k, --chord-tones, --register-lean, --seed, --variations
    (continue, fill, accompany), with `chord_fit` --chord-fit (accompany), with `drafts`
    --drafts (continue)."""
    sampling = parser.add_argument_group("sampling")
    sampling.add_argument("--temperature", type=float,
                          help="randomness: lower is safer, higher is wilder; 0 = greedy "
                               "(default: the model's own, else 1.0)")
    sampling.add_argument("--top-p", type=float,
                          help="sample from the smallest set of characters holding this much "
                               "probability (default: the model's own, else 0.95)")
    sampling.add_argument("--top-k", type=int,
                          help="sample from the K likeliest characters only, 0 = off "
                               "(default: the model's own, else 0)")
    sampling.add_argument("--chord-tones", type=float, metavar="W",
                          help="how strongly a melody with chord symbols puts a note of the "
                               "chord on the strong beats: those notes become e^W times "
                               "likelier; 0 = as the model writes (default: the model's own, "
                               "else 0)")
    sampling.add_argument("--register-lean", type=float, metavar="W",
                          help="how strongly each voice of a piece with several voices stays "
                               "near the middle of the register it had in the prompt: a note "
                               "an octave from it becomes e^W times less likely; 0 = as the "
                               "model writes (default: the model's own, else 0)")
    if chord_fit:
        sampling.add_argument("--chord-fit", type=float, metavar="W",
                              help="with --add chords: how strongly each bar's chord symbol "
                                   "fits the bar's notes: a symbol whose triad holds one more "
                                   "of them becomes e^W times likelier; 0 = as the model "
                                   "writes (default: the model's own, else 0)")
    if drafts:
        sampling.add_argument("--drafts", type=int, metavar="N",
                              help="draw N answers for each one written and keep the one "
                                   "whose notes the others agree with most (with several "
                                   "voices, of those that keep the voices' order of pitch): "
                                   "nearer the way the music really goes on; decoded "
                                   "together, 8 take "
                                   "about 4 times one's time; 1 = the first answer drawn "
                                   "(default: the model's own, else 1)")
    sampling.add_argument("--seed", type=int,
                          help="the same seed gives the same music (default: random)")
    sampling.add_argument("--variations", type=int, default=1, metavar="K",
                          help="write K different answers (default 1)")


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    """--model and --device."""
    model = parser.add_argument_group("model")
    model.add_argument("--model", metavar="NAME|PATH",
                       help="a model's name or checkpoint folder: segue-gpt2-6m (the default), "
                            "segue-open (trained on CC0 music only, made by "
                            "scripts/make_segue_open.sh), or one of yours")
    model.add_argument("--device", choices=("auto", "cpu", "cuda", "mps"), default="auto",
                       help="where the model runs (default: auto = cuda, then mps, then cpu)")


def sampling_of(args: argparse.Namespace) -> Sampling:
    """The engine's Sampling for the --temperature, --top-p, --top-k, --chord-tones,
    --register-lean, --chord-fit, --drafts and --seed given, checked before the model loads
    (unset values: the model's own)."""
    from engine.models.continuation import Sampling

    sampling = Sampling(temperature=args.temperature, top_p=args.top_p, top_k=args.top_k,
                        chord_tones=args.chord_tones, register_lean=args.register_lean,
                        chord_fit=getattr(args, "chord_fit", None),
                        drafts=getattr(args, "drafts", None), seed=args.seed)
    sampling.check()
    return sampling


def load_engine(args: argparse.Namespace) -> Engine:
    """The model named by --model on --device, after the engine's notices (the Mamba path)."""
    from engine.models.continuation import Engine

    show_engine_notices()
    return Engine.load(args.model, device=args.device)


def finish(texts: list[str], output: str | None, results: Sequence[Any], engine: Engine,
           what: str, note: str = "") -> None:
    """Say `note` (what the model could read), write the answers, and sum up on standard
    error: "segue: K x <what> in S s (model on device)"."""
    if note:
        print(f"segue: {note}", file=sys.stderr)
    write_texts(texts, output)
    elapsed = sum(r.elapsed_ms for r in results) / 1000
    print(f"segue: {len(results)} x {what} in {elapsed:.2f} s ({engine.name} on "
          f"{engine.device})", file=sys.stderr)


def numbered(path: Path, index: int, count: int) -> Path:
    """`out.mid` -> `out-2.mid` when several variations are written."""
    return path if count == 1 else path.with_name(f"{path.stem}-{index + 1}{path.suffix}")


def chord_symbol_count(score: Any) -> int:
    """The chord symbols of a music21 score, N.C. left out."""
    from music21 import harmony

    return sum(1 for symbol in score.recurse().getElementsByClass(harmony.ChordSymbol)
               if not isinstance(symbol, harmony.NoChord))


def write_texts(texts: list[str], output: str | None) -> None:
    """Answers (ABC tunes) to standard output, or to `output` in the format its extension
    names: one ABC file of tunes X:1..X:K, or K numbered files of another format."""
    from engine.abc.music import format_of, parse_abc, write_score
    from engine.files import write_text_atomic

    texts = [text.replace("X:1\n", f"X:{i + 1}\n", 1) for i, text in enumerate(texts)]
    if not output:
        sys.stdout.write("\n".join(texts))
    elif format_of(output) == "abc":
        write_text_atomic(output, "\n".join(texts))
    else:
        for index, text in enumerate(texts):
            write_score(parse_abc(text, rests_only=True),
                        numbered(Path(output), index, len(texts)))


def run(args: argparse.Namespace) -> int:
    from engine.abc.music import format_of

    if args.output:
        format_of(args.output)
    score = read_selection(args)  # a missing or unknown input fails before torch is imported

    from engine.settings import check

    check("bars", args.bars)  # before the model loads: fail fast
    sampling = sampling_of(args)
    engine = load_engine(args)
    results = engine.continue_score(score, args.bars, sampling, args.variations)
    symbols = chord_symbol_count(score)
    if symbols and not engine.chord_symbols:
        print(f"segue: the answer has no chord symbols: {engine.name} was trained without them "
              f"(the prompt's {symbols} chord symbols were read; a model trained on Segue ABC "
              "v2 writes them)", file=sys.stderr)
    finish([r.with_prompt if args.with_prompt else r.abc for r in results], args.output,
           results, engine, f"{args.bars} bars")
    return 0
