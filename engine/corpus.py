"""The training corpus: music21's ~13,000 bundled ABC tunes, plus the user's own folders.

Tunes are normalized (`engine.abc_text.normalize_tune`), deduplicated, and split into train,
validation and test by a hash of their normalized text, so a tune keeps its split whatever
else is added and a tune that appears in two collections lands in one split only.

The models read tunes in their *canonical* form: read by `engine.music.parse_abc` (abc2xml,
then music21) and written again by `engine.abc_writer`, the path every prompt takes.
"""

from __future__ import annotations

import hashlib
import os
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from engine.abc_text import normalize_tune, split_tunes
from engine.errors import SegueError

SPLITS = ("train", "valid", "test")
# Per 100 hash buckets: 90 train, 5 validation, 5 test.
SPLIT_BUCKETS = (90, 95)
SCORE_SUFFIXES = {".musicxml", ".xml", ".mxl", ".mid", ".midi"}


@dataclass(frozen=True)
class Tune:
    """One normalized tune, where it came from, and its split."""

    source: str  # "collection/file.abc#X" or a user file's path
    text: str
    split: str


def split_of(text: str) -> str:
    """'train', 'valid' or 'test', fixed by the tune's normalized text."""
    bucket = int(hashlib.sha1(text.encode("utf-8")).hexdigest()[:8], 16) % 100
    if bucket < SPLIT_BUCKETS[0]:
        return "train"
    return "valid" if bucket < SPLIT_BUCKETS[1] else "test"


def bundled_root() -> Path:
    """The folder of music21's corpus."""
    import music21

    return Path(music21.__file__).parent / "corpus"


def bundled_abc_files() -> list[Path]:
    """music21's ABC files, in a fixed order."""
    return sorted(bundled_root().rglob("*.abc"))


def tunes_from_abc_text(text: str, source: str) -> Iterator[Tune]:
    for index, raw in enumerate(split_tunes(text)):
        reference = raw.split("\n", 1)[0][2:].strip() or str(index + 1)
        normalized = normalize_tune(raw)
        if normalized is not None:
            yield Tune(f"{source}#{reference}", normalized, split_of(normalized))


def tunes_from_folder(folder: Path) -> Iterator[Tune]:
    """The tunes of a user folder: every .abc tune, and each MusicXML or MIDI file as one tune."""
    from engine.abc_writer import write_abc
    from engine.music import read_score

    if not folder.is_dir():
        raise SegueError(f"{folder}: no such folder")
    for path in sorted(folder.rglob("*")):
        suffix = path.suffix.lower()
        if suffix == ".abc":
            text = path.read_bytes().decode("utf-8", errors="replace")
            yield from tunes_from_abc_text(text, str(path))
        elif suffix in SCORE_SUFFIXES:
            try:
                normalized = normalize_tune(write_abc(read_score(path)))
            except SegueError:
                continue  # skip an unreadable score: one bad file must not stop a run
            if normalized is not None:
                yield Tune(str(path), normalized, split_of(normalized))


def iter_tunes(folders: Sequence[str | os.PathLike[str]] = (), *, bundled: bool = True,
               split: str | None = None) -> Iterator[Tune]:
    """Every distinct normalized tune of the bundled corpus and `folders`, optionally one split."""
    seen: set[str] = set()

    def sources() -> Iterator[Tune]:
        if bundled:
            root = bundled_root()
            for path in bundled_abc_files():
                text = path.read_bytes().decode("utf-8", errors="replace")
                yield from tunes_from_abc_text(text, str(path.relative_to(root)))
        for folder in folders:
            yield from tunes_from_folder(Path(folder))

    for tune in sources():
        if tune.text in seen or (split is not None and tune.split != split):
            continue
        seen.add(tune.text)
        yield tune


def canonical(text: str) -> str:
    """A normalized tune as the models read it: read into a score and written as our ABC."""
    from engine.abc_writer import write_abc
    from engine.music import parse_abc

    return write_abc(parse_abc(text))


def roundtrip_failure(text: str) -> str | None:
    """Why ABC -> stream -> our ABC -> stream changes the notes or chord symbols of `text`, or
    None if it changes neither.

    Tunes the reader cannot read at all are not the writer's failures: `parse_abc` raises
    SegueError for them and `roundtrip_report` counts them apart.
    """
    from engine.abc_writer import write_abc
    from engine.music import chord_events, note_events, parse_abc

    first = parse_abc(text)
    try:
        written = write_abc(first)
    except Exception as error:
        return f"writer: {type(error).__name__}: {error}"
    try:
        second = parse_abc(written)
    except SegueError as error:
        return f"reread: {error}"
    before, after = note_events(first), note_events(second)
    if len(before) != len(after):
        return f"parts: {len(before)} became {len(after)}"
    for part_before, part_after in zip(before, after, strict=True):
        if len(part_before) != len(part_after):
            return "note count changed"
        for (onset_a, length_a, pitch_a), (onset_b, length_b, pitch_b) in zip(
                part_before, part_after, strict=True):
            if pitch_a != pitch_b and (onset_a, length_a) == (onset_b, length_b):
                return "pitch changed"
            if length_a != length_b:
                return "duration changed"
            if onset_a != onset_b:
                return "onset changed"
            if pitch_a != pitch_b:
                return "pitch changed"
    for part_before, part_after in zip(chord_events(first), chord_events(second), strict=True):
        if len(part_before) != len(part_after):
            return "chord symbol count changed"
        if part_before != part_after:
            return "chord symbol changed"
    return None


@dataclass
class RoundtripReport:
    """How many tunes survived the round trip, and why the others did not."""

    total: int
    unreadable: int  # the reader cannot read them at all: not counted against the writer
    passed: int
    failures: dict[str, list[str]]  # reason -> sources

    @property
    def rate(self) -> float:
        readable = self.total - self.unreadable
        return self.passed / readable if readable else 0.0


def roundtrip_one(tune: Tune) -> tuple[str, str | None, bool]:
    """(source, failure reason, readable) for one tune; used by a process pool."""
    try:
        return tune.source, roundtrip_failure(tune.text), True
    except SegueError:
        return tune.source, None, False


def roundtrip_report(tunes: Iterable[Tune], *, workers: int = 1,
                     progress: bool = False) -> RoundtripReport:
    """Run the round trip over `tunes` (in `workers` processes) and group the failures."""
    from tqdm import tqdm

    tunes = list(tunes)
    if workers > 1:
        from multiprocessing import Pool

        with Pool(workers) as pool:
            results = pool.imap(roundtrip_one, tunes, chunksize=16)
            results = list(tqdm(results, total=len(tunes), disable=not progress, unit="tune"))
    else:
        results = [roundtrip_one(t) for t in tqdm(tunes, disable=not progress, unit="tune")]
    failures: dict[str, list[str]] = {}
    unreadable = passed = 0
    for source, reason, readable in results:
        if not readable:
            unreadable += 1
        elif reason is None:
            passed += 1
        else:
            failures.setdefault(reason, []).append(source)
    return RoundtripReport(len(tunes), unreadable, passed, failures)


def collection_of(source: str) -> str:
    """music21's collection folder ("essenFolksong") or, for a user file, its folder."""
    path = Path(source.split("#")[0])
    return str(path.parent) if path.is_absolute() else path.parts[0]


def corpus_stats(tunes: Iterable[Tune]) -> dict:
    """Counts and sizes by split and by collection."""
    by_split: Counter[str] = Counter()
    chars: Counter[str] = Counter()
    by_collection: Counter[str] = Counter()
    for tune in tunes:
        by_split[tune.split] += 1
        chars[tune.split] += len(tune.text)
        by_collection[collection_of(tune.source)] += 1
    return {
        "tunes": sum(by_split.values()),
        "characters": sum(chars.values()),
        "splits": {s: {"tunes": by_split[s], "characters": chars[s]} for s in SPLITS},
        "collections": dict(sorted(by_collection.items())),
    }
