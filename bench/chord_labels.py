"""How good are the chord symbols `engine.abc.lead_sheet` derives? Two measures, with baselines.

1. Against musicians' chords: the bundled folk tunes that carry chord symbols (O'Neill's,
   Ryan's, ...). The labeller sees only the melody (harder than a song's accompaniment, so a
   lower bound), and at each human symbol's onset its label is compared with the human one:
   the same root, and the same root and triad quality (major, minor, diminished, augmented,
   suspended; sevenths count as their triad). Baseline: the tonic chord of the key everywhere.
2. On the CC0 songs: the share of the accompaniment's sounding notes (weighted by duration)
   that are tones of the chord labelled there, against the tonic chord everywhere.

    python bench/chord_labels.py                      # both, 200 songs
    python bench/chord_labels.py --songs 50 --json bench/chord_labels.json
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from fractions import Fraction
from pathlib import Path

from engine.abc.lead_sheet import QUALITIES, Label, label_segments, note_list, segment_weights

TRIAD = {"major": "major", "dominant-seventh": "major", "major-seventh": "major",
         "major-sixth": "major", "dominant-ninth": "major", "minor": "minor",
         "minor-seventh": "minor", "minor-sixth": "minor", "minor-ninth": "minor",
         "diminished": "diminished", "diminished-seventh": "diminished",
         "half-diminished": "diminished", "augmented": "augmented",
         "suspended-fourth": "suspended", "suspended-second": "suspended",
         "suspended-fourth-seventh": "suspended"}
DEFAULT_SONGS = Path(__file__).resolve().parents[2] / "shared" / "corpora" / "openscore-lieder"


def in_force(labels: list[tuple[Fraction, Label, object]], offset: Fraction) -> Label | None:
    """The label that holds at `offset`."""
    current = None
    for start, label, _ in labels:
        if start > offset:
            break
        current = label
    return current


def tonic(score) -> Label:
    from music21 import key

    signature = score.recurse().getElementsByClass(key.KeySignature).first()
    signature = signature or key.KeySignature(0)
    mode = getattr(signature, "mode", "major")
    home = signature.asKey("minor" if mode == "minor" else "major")
    return Label(home.tonic.pitchClass, "minor" if mode == "minor" else "major")


def against_musicians(limit: int | None) -> dict:
    """Agreement with the human chord symbols of the bundled tunes, melody only."""
    from music21 import harmony

    from engine.abc.music import parse_abc, quiet
    from engine.abc.text import split_tunes
    from engine.training.corpus import bundled_abc_files

    counts = {"symbols": 0, "tunes": 0, "root": 0, "quality": 0, "tonic_root": 0,
              "tonic_quality": 0}
    for path in bundled_abc_files():
        text = path.read_bytes().decode("utf-8", errors="replace")
        for tune in split_tunes(text):
            if not re.search(r'"[A-G][^"]*"', tune.split("\nK:", 1)[-1]):
                continue
            try:
                with quiet():
                    score = parse_abc(tune)
            except Exception:
                continue
            melody = score.parts[0] if score.parts else score
            human = [s for s in melody.recurse().getElementsByClass(harmony.ChordSymbol)
                     if s.chordKind in TRIAD and s.root() is not None]
            if not human:
                continue
            labels = label_segments(melody, note_list([melody]))
            home = tonic(score)
            counts["tunes"] += 1
            for symbol in human:
                offset = Fraction(symbol.getOffsetInHierarchy(melody)).limit_denominator(1 << 12)
                truth = (symbol.root().pitchClass, TRIAD[symbol.chordKind])
                guess = in_force(labels, offset)
                counts["symbols"] += 1
                for prefix, label in (("", guess), ("tonic_", home)):
                    if label is not None and label.root == truth[0]:
                        counts[prefix + "root"] += 1
                        counts[prefix + "quality"] += TRIAD[label.kind] == truth[1]
            if limit and counts["tunes"] >= limit:
                break
        if limit and counts["tunes"] >= limit:
            break
    total = max(1, counts["symbols"])
    return {**counts, **{f"{name}_share": counts[name] / total for name in
                         ("root", "quality", "tonic_root", "tonic_quality")}}


def coverage(notes, labels: list[tuple[Fraction, Label]], end: Fraction) -> tuple[float, float]:
    """(weight of chord tones, all weight) of `notes` under `labels`, segment by segment."""
    inside = total = 0.0
    bounds = [start for start, _ in labels] + [end]
    for (start, label), stop in zip(labels, bounds[1:], strict=True):
        weights, _ = segment_weights(notes, start, stop)
        tones = {(label.root + step) % 12 for step in QUALITIES[label.kind]}
        inside += sum(weights[pc] for pc in tones)
        total += sum(weights)
    return inside, total


def on_songs(folder: Path, count: int) -> dict:
    """Chord-tone coverage of the songs' accompaniment, labelled and tonic-only."""
    from engine.abc.music import quiet, read_score

    files = sorted(folder.rglob("*.mxl"))
    step = max(1, len(files) // count)
    sums = {"labelled": [0.0, 0.0], "tonic": [0.0, 0.0]}
    songs = 0
    for path in files[::step][:count]:
        try:
            with quiet():
                score = read_score(path)
        except Exception:
            continue
        parts = list(score.parts)
        if len(parts) < 2:
            continue
        notes = note_list(parts[1:])
        labels = [(offset, label) for offset, label, _ in label_segments(parts[0], notes)]
        if not labels:
            continue
        end = Fraction(score.highestTime).limit_denominator(1 << 12)
        songs += 1
        for name, chosen in (("labelled", labels), ("tonic", [(Fraction(0), tonic(score))])):
            inside, total = coverage(notes, chosen, end)
            sums[name][0] += inside
            sums[name][1] += total
    return {"songs": songs, **{f"{name}_coverage": inside / max(1e-9, total)
                               for name, (inside, total) in sums.items()}}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--songs", type=int, default=200, help="CC0 songs to measure (200)")
    parser.add_argument("--song-folder", type=Path, default=DEFAULT_SONGS)
    parser.add_argument("--tunes", type=int, default=None, help="chorded folk tunes (all)")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    figures = {"musicians": against_musicians(args.tunes)}
    if args.song_folder.is_dir():
        figures["songs"] = on_songs(args.song_folder, args.songs)
    else:
        print(f"{args.song_folder}: not found; songs skipped", file=sys.stderr)
    m = figures["musicians"]
    print(f"Against musicians' chords ({m['symbols']} symbols in {m['tunes']} folk tunes, "
          "labelled from the melody alone):")
    print("| labels | same root | same root and triad |\n|---|---|---|")
    print(f"| lead_sheet | {m['root_share']:.1%} | {m['quality_share']:.1%} |")
    print(f"| tonic chord everywhere | {m['tonic_root_share']:.1%} | "
          f"{m['tonic_quality_share']:.1%} |")
    if "songs" in figures:
        s = figures["songs"]
        print(f"\nOn {s['songs']} CC0 songs, share of the accompaniment's notes (by duration) "
              "that are chord tones:")
        print("| labels | chord-tone share |\n|---|---|")
        print(f"| lead_sheet | {s['labelled_coverage']:.1%} |")
        print(f"| tonic chord everywhere | {s['tonic_coverage']:.1%} |")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
