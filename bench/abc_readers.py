"""Which ABC reader keeps the music? abc2xml -> MusicXML -> music21 against music21's own.

For each tune (the raw text of a file, as a user gives it), each reader is judged against
counts taken from the text itself by a small scanner that is neither reader:

* notes: note heads outside grace groups (a chord's notes each count; tied notes count twice);
* chord symbols: quoted strings that start with a root A-G;
* meters: the bar lengths of the `M:` fields in order (head, body lines, inline);
* voices: the distinct `V:` ids that have music.

A reader *keeps* a tune when it reads it and all four agree. Also the median CPU milliseconds
a tune (CPU time, so that other work on the machine does not count). Run on the bundled corpus
(music21's ABC files) and on the committed fixtures:

    python bench/abc_readers.py [--limit N] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import time
from fractions import Fraction
from pathlib import Path

from engine.abc.text import split_head, split_tunes, strip_comment
from engine.training.corpus import bundled_abc_files

FIXTURES = Path(__file__).parent.parent / "tests" / "data" / "abc"
FIELD = re.compile(r"^([A-Za-z]):(.*)$")
INLINE_FIELD = re.compile(r"\[([A-Za-z]):([^\]]*)\]")
QUOTED = re.compile(r'"([^"]*)"')
DECORATION = re.compile(r"![^!]*!|\+[^+\s]*\+")
GRACE = re.compile(r"\{[^}]*\}")
NOTE = re.compile(r"[A-Ga-g]")


def meter_length(value: str) -> Fraction | None:
    value = value.strip().split()[0] if value.strip() else ""
    value = {"C": "4/4", "C|": "2/2"}.get(value, value)
    match = re.fullmatch(r"\(?([\d+]+)\)?/(\d+)", value)
    if not match:
        return None
    return Fraction(sum(int(n) for n in match.group(1).split("+") if n), int(match.group(2)))


def expected(tune: str) -> dict:
    """What the text holds: notes, chord symbols, meters, voices."""
    notes = chords = 0
    meters: list[Fraction] = []
    voices: set[str] = set()
    voice = "1"
    in_body = False
    for raw in tune.split("\n"):
        line = strip_comment(raw).rstrip()
        field = FIELD.match(line)
        if field and not line.startswith("|"):
            name, value = field.groups()
            if name == "M" and (length := meter_length(value)) is not None:
                meters.append(length)
            if name == "V":
                voice = value.split()[0] if value.split() else "1"
            in_body = in_body or name == "K"
            continue
        if not in_body or not line.strip():
            continue
        for match in INLINE_FIELD.finditer(line):
            name, value = match.groups()
            if name == "M" and (length := meter_length(value)) is not None:
                meters.append(length)
            if name == "V":
                voice = value.split()[0] if value.split() else "1"
        chords += sum(1 for text in QUOTED.findall(line) if re.match(r"[A-G]", text))
        music = GRACE.sub("", DECORATION.sub("", QUOTED.sub("", INLINE_FIELD.sub("", line))))
        count = len(NOTE.findall(music))
        notes += count
        if count:
            voices.add(voice)
    deduped = [m for i, m in enumerate(meters) if i == 0 or m != meters[i - 1]]
    return {"notes": notes, "chords": chords, "meters": deduped, "voices": max(1, len(voices))}


def found(score) -> dict:
    """The same counts, read from a music21 score."""
    from music21 import harmony, meter, stream

    notes = chords = 0
    for part in score.parts:
        for element in part.recurse().notes:
            if isinstance(element, harmony.ChordSymbol):
                chords += 1
            elif not element.duration.isGrace:
                notes += len(element.pitches)
    meters = [Fraction(ts.barDuration.quarterLength) / 4
              for ts in score.parts[0].recurse().getElementsByClass(meter.TimeSignature)]
    deduped = [m for i, m in enumerate(meters) if i == 0 or m != meters[i - 1]]
    voices = sum(max(1, len(m.voices)) if (m := part.getElementsByClass(stream.Measure).first())
                 else 1 for part in score.parts)
    return {"notes": notes, "chords": chords, "meters": deduped, "voices": voices}


def group_voices(text: str) -> str:
    """Rewrite a tune whose voices alternate line by line as one block per voice (Segue's old
    path to music21's reader, kept here to measure it).

    ABC lets voices alternate (`V:1` four bars, `V:2` four bars, `V:1` ...); music21 reads each
    `V:` line as a new part, so before music21 sees such a tune its lines are gathered per voice.
    A tune with fewer than two voices is returned unchanged.
    """
    head, body = split_head(text)
    order: list[str] = []
    blocks: dict[str, list[str]] = {}
    current = None
    preamble: list[str] = []
    for line in body.split("\n"):
        voice = re.match(r"^V:\s*(\S+)", line) or re.match(r"^\[V:\s*([^\]\s]+)[^\]]*\]\s*$", line)
        if voice:
            current = voice.group(1)
            if current not in blocks:
                order.append(current)
                blocks[current] = []
            continue
        inline = re.match(r"^\[V:\s*([^\]\s]+)[^\]]*\](.*)$", line)
        if inline:
            current = inline.group(1)
            if current not in blocks:
                order.append(current)
                blocks[current] = []
            line = inline.group(2)
        if current is None:
            preamble.append(line)
        else:
            blocks[current].append(line)
    if len(order) < 2:
        return text
    out = [line for line in head.rstrip("\n").split("\n") if not line.startswith("V:")]
    out += preamble
    for voice in order:
        out.append(f"V:{voice}")
        out += [line for line in blocks[voice] if line.strip()]
    return "\n".join(out) + "\n"


def read_with_music21(text: str):
    from music21 import converter, stream

    score = converter.parseData(group_voices(text), format="abc")
    return score.scores[0] if isinstance(score, stream.Opus) else score


def read_with_abc2xml(text: str):
    from engine.abc.reader import read_abc

    return read_abc(text)


READERS = {"music21": read_with_music21, "abc2xml": read_with_abc2xml}
CHECKS = ("notes", "chords", "meters", "voices")


def measure(tunes: list[str]) -> dict:
    from engine.abc.music import quiet

    results = {}
    for name, reader in READERS.items():
        times, kept, read = [], dict.fromkeys((*CHECKS, "all"), 0), 0
        for tune in tunes:
            want = expected(tune)
            started = time.process_time()
            try:
                with quiet():
                    score = reader(tune)
                got = found(score)
            except Exception:
                continue
            finally:
                times.append(time.process_time() - started)
            read += 1
            agree = {check: got[check] == want[check] for check in CHECKS}
            for check, ok in agree.items():
                kept[check] += ok
            kept["all"] += all(agree.values())
        results[name] = {"tunes": len(tunes), "read": read, **{f"kept_{k}": v
                         for k, v in kept.items()},
                         "median_ms": round(1000 * statistics.median(times), 1)}
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--limit", type=int, help="every k-th corpus tune, N in all")
    parser.add_argument("--json", help="also write the figures here")
    args = parser.parse_args()
    corpus = [tune for path in bundled_abc_files()
              for tune in split_tunes(path.read_bytes().decode("utf-8", errors="replace"))]
    if args.limit:
        step = len(corpus) / args.limit
        corpus = [corpus[int(i * step)] for i in range(args.limit)]
    fixtures = [path.read_text() for path in sorted(FIXTURES.glob("*.abc"))]
    figures = {"fixtures": measure(fixtures), "corpus": measure(corpus)}
    for where, rows in figures.items():
        print(f"{where}:")
        for name, row in rows.items():
            print(f"  {name:8} " + " ".join(f"{k}={v}" for k, v in row.items()))
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
