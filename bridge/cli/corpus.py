"""The training corpus: music21's ~13,000 ABC tunes plus your own folders.

Tunes are normalized (comments, lyrics, titles and typesetting removed; head reduced to
X, M, L, Q, K), deduplicated, and split by a hash of their text (a score file: of its bytes):
90% train, 5% validation, 5% test. --stats counts the characters of the canonical text the
models read, by split, by collection and by licence (a folder's licence comes from its LICENSE
file); the first run converts every tune and caches the result.

examples:
  segue corpus --stats                        counts, sizes and the split
  segue corpus --stats --data ~/my-tunes      with a folder of .abc, MusicXML or MIDI files
  segue corpus --stats --data ../shared/corpora/openscore-lieder --no-bundled
  segue corpus --roundtrip                    check the ABC writer on every tune
  segue corpus --roundtrip --limit 500        ... on a fixed sample of 500
"""

from __future__ import annotations

import argparse
import json
import sys

SUMMARY = "statistics of the training corpus, and the ABC writer's round-trip check"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--stats", action="store_true", help="print counts, sizes and the split")
    parser.add_argument("--roundtrip", action="store_true",
                        help="ABC -> score -> our ABC -> score on every tune: the share that "
                             "keeps every note and chord symbol, and the failures by reason")
    parser.add_argument("--data", action="append", default=[], metavar="DIR",
                        help="a folder of .abc, MusicXML or MIDI files to include (repeatable)")
    parser.add_argument("--no-bundled", action="store_true",
                        help="leave out music21's bundled tunes")
    parser.add_argument("--limit", type=int, metavar="N",
                        help="use a fixed sample of N tunes (every k-th tune)")
    parser.add_argument("--workers", type=int, default=2,
                        help="processes for converting tunes (--stats) and --roundtrip")
    parser.add_argument("--json", action="store_true", help="print JSON instead of text")


def fixed_sample(items: list, size: int | None) -> list:
    """Every k-th item, so that the sample is the same on every run."""
    if size is None or size >= len(items):
        return items
    step = len(items) / size
    return [items[int(i * step)] for i in range(size)]


def run(args: argparse.Namespace) -> int:
    from engine.errors import SegueError
    from engine.training.corpus import corpus_stats, iter_tunes, roundtrip_report
    from engine.training.dataset import canonicalize, job_of, texts_of

    if not (args.stats or args.roundtrip):
        raise SegueError("say what to do: --stats, --roundtrip, or both")
    tunes = fixed_sample(list(iter_tunes(args.data, bundled=not args.no_bundled)), args.limit)
    if args.stats:
        results = canonicalize([job_of(tune) for tune in tunes], workers=args.workers,
                               progress=sys.stderr.isatty())
        stats = corpus_stats(tunes, [sum(map(len, texts_of(r))) for r in results])
        if args.json:
            print(json.dumps(stats, indent=2))
        else:
            print(f"{stats['tunes']} tunes, {stats['characters']:,} characters of canonical ABC")
            for title, name in (("by split", "splits"), ("by collection", "collections"),
                                ("by licence", "licences")):
                print(f"{title}:")
                for key, counts in stats[name].items():
                    print(f"  {key:50} {counts['tunes']:6} tunes "
                          f"{counts['characters']:12,} chars")
    if args.roundtrip:
        report = roundtrip_report(tunes, workers=args.workers, progress=sys.stderr.isatty())
        readable = report.total - report.unreadable
        if args.json:
            print(json.dumps({"tunes": report.total, "unreadable": report.unreadable,
                              "passed": report.passed, "rate": report.rate,
                              "failures": report.failures}, indent=2))
        else:
            print(f"round trip: {report.passed} of {readable} tunes kept every note and chord "
                  f"symbol ({report.rate:.2%}); {report.unreadable} could not be read")
            for reason, sources in sorted(report.failures.items(), key=lambda x: -len(x[1])):
                print(f"  {len(sources):5}  {reason}: {', '.join(sources[:3])}"
                      + (" ..." if len(sources) > 3 else ""))
    return 0
