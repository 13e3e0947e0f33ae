"""The training corpus: music21's ~13,000 bundled ABC tunes, plus folders of ABC, MusicXML
and MIDI (such as the CC0 OpenScore collections beside the project, `../shared/corpora`).

ABC tunes are normalized (`engine.abc.text.normalize_tune`), deduplicated, and split into
train, validation and test by a hash of their normalized text, so a tune keeps its split
whatever else is added and a tune that appears in two collections lands in one split only.
A MusicXML or MIDI file is one piece, split by a hash of its bytes; it is read only when its
canonical text is made (and cached), never while the corpus is listed.

Every tune carries its collection (music21's folder, or the user folder's name) and licence:
music21's corpus is for research and non-commercial use; a folder's licence is read from its
LICENSE file (CC0 recognised by name).

The models read tunes in their *canonical* form: read by `engine.abc.music.parse_abc` (abc2xml,
then music21) and written again by `engine.abc.writer`, the path every prompt takes.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from engine.abc.text import normalize_tune, split_tunes
from engine.errors import SegueError

SPLITS = ("train", "valid", "test")
# Per 100 hash buckets: 90 train, 5 validation, 5 test.
SPLIT_BUCKETS = (90, 95)
SCORE_SUFFIXES = {".musicxml", ".xml", ".mxl", ".mid", ".midi"}
BUNDLED_LICENCE = "music21 corpus: research and non-commercial use"
LICENCE_FILES = ("LICENSE.txt", "LICENSE", "LICENCE.txt", "LICENCE", "LICENSE.md")


@dataclass(frozen=True)
class Tune:
    """One tune or piece, where it came from, its licence and its split.

    An ABC tune holds its normalized `text`; a MusicXML or MIDI piece holds its file's `path`
    (and `text` is empty until `engine.training.dataset` makes its canonical text).
    """

    source: str  # "collection/file.abc#X" or "collection/file.mxl": the same wherever it lies
    text: str
    split: str
    collection: str = ""
    licence: str = ""
    path: str | None = None


def split_of(text: str | bytes) -> str:
    """'train', 'valid' or 'test', fixed by the tune's normalized text (or a file's bytes)."""
    data = text.encode("utf-8") if isinstance(text, str) else text
    bucket = int(hashlib.sha1(data).hexdigest()[:8], 16) % 100
    if bucket < SPLIT_BUCKETS[0]:
        return "train"
    return "valid" if bucket < SPLIT_BUCKETS[1] else "test"


def split_key(normalized: str) -> str:
    """The text a tune's split is hashed from: its normalized text without chord symbols and
    voice definitions, as tunes were normalized when the splits were first drawn, so adding
    them to the normalized text moved no tune from one split to another."""
    head, _, body = normalized.partition("\nK:")
    head = "\n".join(line for line in head.split("\n") if not line.startswith("V:"))
    lines = [re.sub(r'"[^"\n]*"', "", line).rstrip() for line in body.split("\n")]
    return head + "\nK:" + "\n".join(line for line in lines if line.strip()) + "\n"


def licence_of(folder: Path) -> str:
    """A folder's licence from its LICENSE file: "CC0 1.0", its first line, or "unknown"."""
    for name in LICENCE_FILES:
        path = folder / name
        if path.is_file():
            text = path.read_text("utf-8", errors="replace")
            if "CC0" in text or "Creative Commons Zero" in text:
                return "CC0 1.0"
            first = next((line.strip() for line in text.splitlines() if line.strip()), "")
            return first[:80] or "unknown"
    return "unknown (no LICENSE file)"


def bundled_root() -> Path:
    """The folder of music21's corpus."""
    import music21

    return Path(music21.__file__).parent / "corpus"


def bundled_abc_files() -> list[Path]:
    """music21's ABC files, in a fixed order."""
    return sorted(bundled_root().rglob("*.abc"))


def tunes_from_abc_text(text: str, source: str, collection: str,
                        licence: str) -> Iterator[Tune]:
    for index, raw in enumerate(split_tunes(text)):
        reference = raw.split("\n", 1)[0][2:].strip() or str(index + 1)
        normalized = normalize_tune(raw)
        if normalized is not None:
            yield Tune(f"{source}#{reference}", normalized, split_of(split_key(normalized)),
                       collection, licence)


def tunes_from_folder(folder: Path) -> Iterator[Tune]:
    """The tunes of a user folder: every .abc tune, and each MusicXML or MIDI file as one piece."""
    if not folder.is_dir():
        raise SegueError(f"{folder}: no such folder")
    collection, licence = folder.resolve().name, licence_of(folder)
    for path in sorted(folder.rglob("*")):
        suffix = path.suffix.lower()
        # named within its collection, not by where the folder lies: `segue eval` orders
        # pieces by a hash of this name, and the same folder reached by another path (relative,
        # absolute, a link) must give the same prompts
        source = f"{collection}/{path.relative_to(folder).as_posix()}"
        if suffix == ".abc":
            text = path.read_bytes().decode("utf-8", errors="replace")
            yield from tunes_from_abc_text(text, source, collection, licence)
        elif suffix in SCORE_SUFFIXES and path.is_file():
            yield Tune(source, "", split_of(path.read_bytes()), collection, licence, str(path))


def iter_tunes(folders: Sequence[str | os.PathLike[str]] = (), *, bundled: bool = True,
               split: str | None = None) -> Iterator[Tune]:
    """Every distinct normalized tune of the bundled corpus and `folders`, optionally one split."""
    seen: set[str] = set()

    def sources() -> Iterator[Tune]:
        if bundled:
            root = bundled_root()
            for path in bundled_abc_files():
                text = path.read_bytes().decode("utf-8", errors="replace")
                relative = path.relative_to(root)
                yield from tunes_from_abc_text(text, str(relative), relative.parts[0],
                                               BUNDLED_LICENCE)
        for folder in folders:
            yield from tunes_from_folder(Path(folder))

    for tune in sources():
        identity = tune.text or f"file:{tune.path}"
        if identity in seen or (split is not None and tune.split != split):
            continue
        seen.add(identity)
        yield tune


def canonical(text: str) -> str:
    """A normalized tune as the models read it: read into a score and written as our ABC."""
    from engine.abc.music import parse_abc
    from engine.abc.writer import write_abc

    return write_abc(parse_abc(text))


def roundtrip_failure(text: str) -> str | None:
    """Why ABC -> stream -> our ABC -> stream changes the notes or chord symbols of `text`, or
    None if it changes neither.

    Tunes the reader cannot read at all are not the writer's failures: `parse_abc` raises
    SegueError for them and `roundtrip_report` counts them apart.
    """
    from engine.abc.music import chord_events, note_events, parse_abc
    from engine.abc.writer import write_abc

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
    for chords_before, chords_after in zip(chord_events(first), chord_events(second),
                                           strict=True):
        if len(chords_before) != len(chords_after):
            return "chord symbol count changed"
        if chords_before != chords_after:
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
    """Run the round trip over the ABC tunes of `tunes` (in `workers` processes) and group
    the failures."""
    from tqdm import tqdm

    tunes = [tune for tune in tunes if tune.path is None]
    if workers > 1:
        from multiprocessing import Pool

        with Pool(workers) as pool:
            results = list(tqdm(pool.imap(roundtrip_one, tunes, chunksize=16), total=len(tunes),
                                disable=not progress, unit="tune"))
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


def corpus_stats(tunes: Iterable[Tune], sizes: Sequence[int]) -> dict:
    """Counts and characters by split, by collection and by licence; `sizes` are the
    characters of each tune's canonical text(s), 0 for a tune that could not be read."""
    counts: dict[str, Counter[str]] = {"splits": Counter(), "collections": Counter(),
                                       "licences": Counter()}
    chars: dict[str, Counter[str]] = {name: Counter() for name in counts}
    for tune, size in zip(tunes, sizes, strict=True):
        for name, value in (("splits", tune.split), ("collections", tune.collection),
                            ("licences", tune.licence)):
            counts[name][value] += 1
            chars[name][value] += size
    stats: dict = {"tunes": sum(counts["splits"].values()),
                   "characters": sum(chars["splits"].values())}
    for name in counts:
        keys = SPLITS if name == "splits" else sorted(counts[name])
        stats[name] = {key: {"tunes": counts[name][key], "characters": chars[name][key]}
                       for key in keys}
    return stats
