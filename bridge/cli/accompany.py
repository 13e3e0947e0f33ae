"""Add a part: a bass line, a second voice or chord symbols for the bars of a tune.

The input is ABC, MusicXML or MIDI (- reads ABC from standard input); --part and --measures
take the music to accompany (all of it by default). Its voices come back note for note; the
model writes only the new part, bar-exactly, for every bar: --add bass or --add voice as a
new voice (`V:k name="Bass" clef=bass`), --add chords as a chord symbol at the start of each
bar of the first voice (this needs a model trained on chord symbols, Segue ABC v2).
Without -o the ABC goes to standard output; with -o the format follows the extension.

examples:
  segue accompany melody.abc --add bass
  segue accompany song.musicxml --part 1 --measures 1-8 --add voice -o duet.musicxml
  segue accompany tune.abc --add chords --model my-v2-model --seed 4

before (melody.abc):                  after `segue accompany melody.abc --add bass`:
  K:D                                   V:1 clef=treble
  A2d dcA | GBd c2A |                   V:2 name="Bass" clef=bass
                                        K:D
                                        V:1
                                        A2d dcA | GBd c2A |
                                        V:2
                                        <two new bars> |
"""

from __future__ import annotations

import argparse

from bridge.cli.continue_ import (
    add_model_arguments,
    add_output_argument,
    add_sampling_arguments,
    finish,
    load_engine,
    sampling_of,
)
from bridge.cli.convert import add_selection_arguments, read_selection

SUMMARY = "add a part to a tune: a bass line, a second voice or chord symbols"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("input", help="the music to accompany (.abc, .musicxml, .mxl, .mid, -)")
    parser.add_argument("--add", choices=("bass", "voice", "chords"), required=True,
                        help="the part to write: bass, voice (a second melody) or chords")
    add_output_argument(parser)
    add_selection_arguments(parser)
    add_sampling_arguments(parser, chord_fit=True)
    add_model_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from engine.abc.music import format_of

    if args.output:
        format_of(args.output)
    score = read_selection(args)

    from engine.models.infill import accompany_score

    sampling = sampling_of(args)
    engine = load_engine(args)
    results = accompany_score(engine, score, args.add, sampling, args.variations)
    finish([r.abc for r in results], args.output, results, engine,
           f"{args.add} for {results[0].bars} bars", results[0].note)
    return 0
