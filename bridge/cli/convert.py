"""Convert between ABC, MusicXML and MIDI; the formats follow the file extensions.

  .abc                  ABC notation (a file of several tunes: the first, or --tune X)
  .musicxml .xml .mxl   MusicXML (.mxl compressed)
  .mid .midi            Standard MIDI (read: quantized to 16ths and triplet 8ths; key and
                        meter estimated when the file does not say)

examples:
  segue convert tune.abc tune.musicxml
  segue convert song.mxl melody.abc --part 1 --measures 1-8
  segue convert oneills.abc reel.mid --tune 42
  abc2abc tune.abc -t 2 | segue convert - up.musicxml
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from music21 import stream

SUMMARY = "convert between ABC, MusicXML and MIDI (take bars with --measures)"


def add_selection_arguments(parser: argparse.ArgumentParser) -> None:
    """--part, --measures and --tune: which music of the input file to take."""
    parser.add_argument("--part", metavar="P",
                        help="take one part: its number (from 1) or its name")
    parser.add_argument("--measures", metavar="M-N",
                        help="take bars M to N (numbered as in the score; pickup = 0)")
    parser.add_argument("--tune", metavar="X",
                        help="in an ABC file of several tunes, the one whose X: field is X")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("input",
                        help="the file to read (.abc, .musicxml, .xml, .mxl, .mid; - = ABC "
                             "from standard input)")
    parser.add_argument("output", help="the file to write; its extension picks the format")
    add_selection_arguments(parser)


def read_selection(args: argparse.Namespace) -> stream.Score:
    """The score of `args.input` (- = ABC from standard input) with --part/--measures/--tune."""
    import sys

    from engine.abc.limits import check_abc
    from engine.abc.music import choose_tune, parse_abc, parse_measures, read_score, select

    if args.input == "-":  # text, never a path; held to the server's limits
        text = choose_tune(sys.stdin.read(), args.tune)
        check_abc(text)
        score = parse_abc(text)
    else:
        score = read_score(args.input, tune=args.tune)
    measures = parse_measures(args.measures) if args.measures else None
    return select(score, part=args.part, measures=measures)


def run(args: argparse.Namespace) -> int:
    import sys

    from engine.abc.music import format_of, write_score

    format_of(args.output)  # an unknown output extension fails before any work
    write_score(read_selection(args), args.output)
    print(f"wrote {args.output}", file=sys.stderr)
    return 0
