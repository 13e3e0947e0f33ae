"""Training data: every corpus tune in canonical form, tokenized into one array per split.

The models read tunes as `engine.training.corpus.canonical` writes them (our ABC reader and
writer), the form every prompt takes at inference; a MusicXML or MIDI piece gives two texts, the
whole score and a lead sheet (`VIEWS`). Canonicalizing costs ~30 ms a tune and seconds a score,
so results are cached in `$SEGUE_HOME/cache` (default `~/.segue/cache`): one JSONL file per
writer version (`writer_version`), one line per tune keyed by a hash of its normalized text (or
of a score file's bytes), appended as tunes are done, so an interrupted build resumes and a new
user folder only costs its own tunes. Tunes that cannot be read are skipped and counted.

Training cuts the texts into windows (`engine.abc.windows`). The token arrays follow nanoGPT: the
texts of a split concatenated, each preceded by `TUNE_SEPARATOR` (`engine.abc.text`), so a
prompt must also be preceded by it.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from engine.abc.text import TUNE_SEPARATOR
from engine.errors import SegueError
from engine.home import segue_home
from engine.training.corpus import Tune, canonical, iter_tunes

if TYPE_CHECKING:
    from engine.models.tokenizer import CharTokenizer

# The version of the canonical text: raise it whenever Segue's readers or writer change what
# they make of any tune. tests/test_canonical.py keeps a digest of sample texts and fails,
# naming this constant, when they change; a refactoring that changes no text keeps the cache.
CANONICAL_VERSION = 3
# Transpositions for --augment: semitones, spelled the way music21 names the interval.
TRANSPOSITIONS = {-5: "-P4", -3: "-m3", -2: "-M2", 2: "M2", 3: "m3", 5: "P4"}
# The views of a MusicXML or MIDI piece: the whole score, and a lead sheet (its top part with
# chord symbols labelled from the others; `engine.abc.lead_sheet`).
VIEWS = ("score", "lead_sheet")
# What a job asks for: ("abc", normalized tune text, semitones) or ("score", file path, 0).
Job = tuple[str, str, int]


def cache_dir() -> Path:
    return segue_home() / "cache"


def writer_version() -> str:
    """A short hash of everything that decides a tune's canonical text: `CANONICAL_VERSION`
    and the versions of music21 and abctoolkit (whose abc2xml reads the ABC)."""
    from importlib.metadata import version

    text = f"{CANONICAL_VERSION} {version('music21')} {version('abctoolkit')}"
    return hashlib.sha1(text.encode()).hexdigest()[:12]


def tune_key(text: str, transpose: int = 0) -> str:
    return hashlib.sha1(f"{transpose}|{text}".encode()).hexdigest()[:20]


def job_key(job: Job) -> str:
    """The cache key of a job: its text and transposition, or its file's bytes."""
    kind, value, semitones = job
    if kind == "score":
        return "score-" + hashlib.sha1(Path(value).read_bytes()).hexdigest()[:20]
    return tune_key(value, semitones)


def job_of(tune: Tune, semitones: int = 0) -> Job:
    return ("score", tune.path, 0) if tune.path else ("abc", tune.text, semitones)


def canonical_or_none(job: Job) -> str | dict[str, str | None] | None:
    """A job's canonical text, None where it cannot be read: for an ABC tune (transposed by
    `semitones`) one text; for a score file, a text for each of `VIEWS`."""
    kind, value, semitones = job
    try:
        from engine.abc.music import parse_abc, quiet, read_score
        from engine.abc.writer import write_abc

        if kind == "score":
            from engine.abc.lead_sheet import lead_sheet

            with quiet():
                score = read_score(value)
                views: dict[str, str | None] = {"score": write_abc(score)}
                try:
                    sheet = lead_sheet(score)
                    views["lead_sheet"] = write_abc(sheet) if sheet is not None else None
                except Exception:  # a piece whose chords cannot be read still trains as a score
                    views["lead_sheet"] = None
            return views
        if not semitones:
            return canonical(value)
        with quiet():
            score = parse_abc(value).transpose(TRANSPOSITIONS[semitones])
        return write_abc(score)
    except Exception:  # music21 and the writer raise many kinds; any of them means "skip it"
        return None


def texts_of(result: str | dict[str, str | None] | None) -> list[str]:
    """The canonical texts of a job's result, in `VIEWS` order for a score."""
    if result is None:
        return []
    if isinstance(result, str):
        return [result]
    return [text for view in VIEWS if (text := result.get(view))]


@dataclass
class Corpus:
    """Canonical texts by split; their characters by collection and licence; skipped tunes."""

    splits: dict[str, list[str]] = field(default_factory=lambda: {"train": [], "valid": []})
    skipped: int = 0
    collections: Counter[str] = field(default_factory=Counter)
    licences: Counter[str] = field(default_factory=Counter)

    def add(self, split: str, texts: list[str], tune: Tune) -> None:
        self.splits[split].extend(texts)
        size = sum(map(len, texts))
        self.collections[tune.collection] += size
        self.licences[tune.licence] += size

    def summary(self) -> dict:
        return {"tunes": {s: len(t) for s, t in self.splits.items()}, "skipped": self.skipped,
                "characters": {s: sum(map(len, t)) for s, t in self.splits.items()},
                "characters_by_collection": dict(sorted(self.collections.items())),
                "characters_by_licence": dict(sorted(self.licences.items()))}


def read_cache(path: Path) -> dict[str, str | dict | None]:
    """The cached canonical texts; a line cut short by a crash is ignored."""
    cached: dict[str, str | dict | None] = {}
    if path.exists():
        for line in path.read_text("utf-8").splitlines():
            try:
                entry = json.loads(line)
                cached[entry["key"]] = entry["text"]
            except (ValueError, KeyError, TypeError):
                continue
    return cached


def pool_pays(jobs: Sequence[Job]) -> bool:
    """Whether worker processes are worth starting (a second or two each, to import music21)
    for `jobs`: a score takes seconds to minutes, an ABC tune milliseconds."""
    return len(jobs) > 8 or sum(kind == "score" for kind, _, _ in jobs) > 1


def canonicalize(jobs: Sequence[Job], *, workers: int = 2,
                 progress: bool = True) -> list[str | dict[str, str | None] | None]:
    """Canonical results of `jobs` (see `canonical_or_none`), through the cache and a pool."""
    from tqdm import tqdm

    path = cache_dir() / f"canonical-{writer_version()}.jsonl"
    cached = read_cache(path)
    keys = [job_key(job) for job in jobs]
    todo = {key: job for key, job in zip(keys, jobs, strict=True) if key not in cached}
    if todo:
        path.parent.mkdir(parents=True, exist_ok=True)
        bar = tqdm(total=len(todo), disable=not progress, unit="tune", desc="canonical ABC")
        with open(path, "a", encoding="utf-8") as cache:
            results: Iterator[str | dict[str, str | None] | None]
            if workers > 1 and pool_pays(list(todo.values())):
                from multiprocessing import get_context

                pool = get_context("spawn").Pool(workers)
                # small chunks keep every worker busy when a few scores take most of the time
                results = pool.imap(canonical_or_none, list(todo.values()), chunksize=1)
            else:
                pool, results = None, map(canonical_or_none, todo.values())
            try:
                for key, text in zip(todo, results, strict=True):
                    cached[key] = text
                    cache.write(json.dumps({"key": key, "text": text}) + "\n")
                    cache.flush()
                    bar.update()
            finally:
                if pool is not None:
                    pool.terminate()
                bar.close()
    return [cached[key] for key in keys]


def load_corpus(folders: Sequence[str | os.PathLike[str]] = (), *, bundled: bool = True,
                limit: int | None = None, augment: int = 0, workers: int = 2,
                progress: bool = True) -> Corpus:
    """The canonical train and validation texts of the bundled corpus and `folders`.

    `limit` keeps the first `limit` training tunes and a tenth as many validation tunes (at
    least 4), for quick runs. `augment` adds that many transpositions of each training ABC
    tune (picked per tune from `TRANSPOSITIONS` with a fixed seed); validation is never
    augmented. A score file gives a text for each of its `VIEWS`.
    """
    tunes: dict[str, list[Tune]] = {"train": [], "valid": []}
    wanted = {"train": limit, "valid": None if limit is None else max(4, limit // 10)}
    for tune in iter_tunes(folders, bundled=bundled):
        chosen, most = tunes.get(tune.split), wanted.get(tune.split)
        if chosen is not None and (most is None or len(chosen) < most):
            chosen.append(tune)
    listed = [(split, tune) for split in ("train", "valid") for tune in tunes[split]]
    jobs = [job_of(tune) for _, tune in listed]
    extra: list[tuple[str, Tune]] = []
    if augment:
        rng = random.Random(0)
        for tune in tunes["train"]:
            if tune.path is None:
                for shift in rng.sample(sorted(TRANSPOSITIONS), augment):
                    extra.append(("train", tune))
                    jobs.append(job_of(tune, shift))
    results = canonicalize(jobs, workers=workers, progress=progress)
    corpus = Corpus()
    for index, ((split, tune), result) in enumerate(zip(listed + extra, results, strict=True)):
        texts = texts_of(result)
        if not texts:
            corpus.skipped += index < len(listed)  # failed transpositions are not tunes
            continue
        corpus.add(split, texts, tune)
    if not corpus.splits["train"] or not corpus.splits["valid"]:
        raise SegueError("no tunes to train on: the corpus and the --data folders gave "
                         f"{len(corpus.splits['train'])} training and "
                         f"{len(corpus.splits['valid'])} validation texts")
    return corpus


def token_array(texts: Sequence[str], tokenizer: CharTokenizer) -> np.ndarray:
    """The texts as one token array, each preceded by `TUNE_SEPARATOR` (uint8 when it fits)."""
    dtype = np.uint8 if tokenizer.vocab_size <= 256 else np.uint16
    ids = tokenizer.encode("".join(TUNE_SEPARATOR + text for text in texts))
    return np.array(ids, dtype=dtype)
