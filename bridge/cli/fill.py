"""Fill a gap: write the bars --measures anew, leading from the bars before into those after.

The input is ABC, MusicXML or MIDI (- reads ABC from standard input). Bars are numbered as in
the score (a pickup is bar 0, as in `segue continue`); the bars named are replaced in every
voice by exactly as many new bars, in the meter and key in force there, and the answer is the
whole piece. A model trained with fill-in-the-middle windows (the bundled one is) reads the
bars on both sides of the gap; other models write the gap from the bars before it only.
Without -o the ABC goes to standard output; with -o the format follows the extension.

examples:
  segue fill tune.abc --measures 9-12
  segue fill tune.abc --measures 5 --seed 3 -o tune-new.abc
  segue fill song.musicxml --measures 0-2 --variations 3 -o takes.musicxml
  cat tune.abc | segue fill - --measures 3-4 --temperature 0.8

before (tune.abc, bars 1-4):          after `segue fill tune.abc --measures 2-3`:
  A2d dcA | GBd c2A | A2d dcA | G3 G3 |     A2d dcA | <two new bars> | G3 G3 |
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from bridge.cli.continue_ import (
    add_model_arguments,
    add_output_argument,
    add_sampling_arguments,
    finish,
    load_engine,
    sampling_of,
)

if TYPE_CHECKING:
    from music21 import stream

SUMMARY = "fill a gap: write bars M-N of a tune anew, between the bars around them"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("input", help="the tune (.abc, .musicxml, .mxl, .mid, or -)")
    parser.add_argument("--measures", metavar="M-N", required=True,
                        help="the bars to write anew (numbered as in the score; pickup = 0)")
    add_output_argument(parser)
    parser.add_argument("--tune", metavar="X",
                        help="in an ABC file of several tunes, the one whose X: field is X")
    add_sampling_arguments(parser)
    add_model_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from engine.abc.music import format_of, parse_measures

    if args.output:
        format_of(args.output)
    gap = parse_measures(args.measures)
    score = read_whole(args)

    from engine.models.infill import fill_score

    sampling = sampling_of(args)
    engine = load_engine(args)
    if not engine.fill_trained:
        print(f"segue: {engine.name} was trained without fill-in-the-middle windows: it writes "
              "the gap from the bars before it only", file=sys.stderr)
    results = fill_score(engine, score, gap, sampling, args.variations)
    finish([r.abc for r in results], args.output, results, engine,
           f"{results[0].bars} bars filled", results[0].note)
    return 0


def read_whole(args: argparse.Namespace) -> stream.Score:
    """The score of `args.input` (- = ABC from standard input), every bar, --tune chosen."""
    from engine.abc.music import choose_tune, parse_abc, read_score

    if args.input == "-":
        return parse_abc(choose_tune(sys.stdin.read(), args.tune))
    return read_score(args.input, tune=args.tune)
