"""Training data: every corpus tune in canonical form, tokenized into one array per split.

The models read tunes as `engine.corpus.canonical` writes them (our ABC reader and writer), the
form every prompt takes at inference. Canonicalizing costs ~30 ms a tune, so results are cached
in `$SEGUE_HOME/cache` (default `~/.segue/cache`): one JSONL file per writer version (a hash of
the reader's and writer's sources and of the music21 and abctoolkit versions), one line per
tune keyed by a hash of its normalized text, appended as tunes are done, so an interrupted
build resumes and a new user folder only costs its own tunes. Tunes that cannot be read are
skipped and counted.

The token arrays follow nanoGPT: the tunes of a split concatenated, each preceded by
`TUNE_SEPARATOR`. Since every tune ends with a newline, the separator "\\n" leaves a blank
line before each tune: a model reads "a tune starts after a blank line", so a prompt for
continuation must also be preceded by `TUNE_SEPARATOR`.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from engine.corpus import Tune, canonical, iter_tunes
from engine.errors import SegueError

TUNE_SEPARATOR = "\n"
# The sources whose behaviour decides the canonical text; a change to any of them is a new cache.
WRITER_SOURCES = (
    "abc_writer.py", "abc_reader.py", "chord_symbols.py", "music.py", "abc_text.py")
# Transpositions for --augment: semitones, spelled the way music21 names the interval.
TRANSPOSITIONS = {-5: "-P4", -3: "-m3", -2: "-M2", 2: "M2", 3: "m3", 5: "P4"}


def segue_home() -> Path:
    """Segue's own folder: $SEGUE_HOME, default ~/.segue."""
    return Path(os.environ.get("SEGUE_HOME") or "~/.segue").expanduser()


def cache_dir() -> Path:
    return segue_home() / "cache"


def writer_version() -> str:
    """A short hash of everything that decides a tune's canonical text (our sources, and the
    versions of music21 and abctoolkit, whose abc2xml reads the ABC)."""
    from importlib.metadata import version

    digest = hashlib.sha1(f"{version('music21')} {version('abctoolkit')}".encode())
    for name in WRITER_SOURCES:
        digest.update((Path(__file__).parent / name).read_bytes())
    return digest.hexdigest()[:12]


def tune_key(text: str, transpose: int = 0) -> str:
    return hashlib.sha1(f"{transpose}|{text}".encode()).hexdigest()[:20]


def canonical_or_none(job: tuple[str, int]) -> str | None:
    """The canonical text of a tune, transposed by `semitones`; None if music21 cannot read it."""
    text, semitones = job
    try:
        if not semitones:
            return canonical(text)
        from engine.abc_writer import write_abc
        from engine.music import parse_abc, quiet

        with quiet():
            score = parse_abc(text).transpose(TRANSPOSITIONS[semitones])
        return write_abc(score)
    except Exception:  # music21 and the writer raise many kinds; any of them means "skip it"
        return None


@dataclass
class Corpus:
    """Canonical tunes by split, and how many source tunes had to be skipped."""

    splits: dict[str, list[str]] = field(default_factory=lambda: {"train": [], "valid": []})
    skipped: int = 0

    def summary(self) -> dict:
        return {"tunes": {s: len(t) for s, t in self.splits.items()}, "skipped": self.skipped,
                "characters": {s: sum(map(len, t)) for s, t in self.splits.items()}}


def read_cache(path: Path) -> dict[str, str | None]:
    """The cached canonical texts; a line cut short by a crash is ignored."""
    cached: dict[str, str | None] = {}
    if path.exists():
        for line in path.read_text("utf-8").splitlines():
            try:
                entry = json.loads(line)
                cached[entry["key"]] = entry["text"]
            except (ValueError, KeyError, TypeError):
                continue
    return cached


def canonicalize(jobs: Sequence[tuple[str, int]], *, workers: int = 2,
                 progress: bool = True) -> list[str | None]:
    """Canonical texts of (tune, transposition) jobs, through the cache and a process pool."""
    from tqdm import tqdm

    path = cache_dir() / f"canonical-{writer_version()}.jsonl"
    cached = read_cache(path)
    keys = [tune_key(text, shift) for text, shift in jobs]
    todo = {key: job for key, job in zip(keys, jobs, strict=True) if key not in cached}
    if todo:
        path.parent.mkdir(parents=True, exist_ok=True)
        bar = tqdm(total=len(todo), disable=not progress, unit="tune", desc="canonical ABC")
        with open(path, "a", encoding="utf-8") as cache:
            results: Iterator[str | None]
            if workers > 1 and len(todo) > 8:
                from multiprocessing import get_context

                pool = get_context("spawn").Pool(workers)
                results = pool.imap(canonical_or_none, list(todo.values()), chunksize=8)
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
    """The canonical train and validation tunes of the bundled corpus and `folders`.

    `limit` keeps the first `limit` training tunes and a tenth as many validation tunes (at
    least 4), for quick runs. `augment` adds that many transpositions of each training tune
    (picked per tune from `TRANSPOSITIONS` with a fixed seed); validation is never augmented.
    """
    tunes: dict[str, list[Tune]] = {"train": [], "valid": []}
    wanted = {"train": limit, "valid": None if limit is None else max(4, limit // 10)}
    for tune in iter_tunes(folders, bundled=bundled):
        chosen = tunes.get(tune.split)
        if chosen is not None and (wanted[tune.split] is None
                                   or len(chosen) < wanted[tune.split]):
            chosen.append(tune)
    jobs = [(t.text, 0) for split in ("train", "valid") for t in tunes[split]]
    if augment:
        rng = random.Random(0)
        jobs += [(t.text, shift) for t in tunes["train"]
                 for shift in rng.sample(sorted(TRANSPOSITIONS), augment)]
    texts = canonicalize(jobs, workers=workers, progress=progress)
    corpus = Corpus()
    n_train, n_valid = len(tunes["train"]), len(tunes["valid"])
    for index, text in enumerate(texts):
        split = "valid" if n_train <= index < n_train + n_valid else "train"
        if text is None:
            corpus.skipped += index < n_train + n_valid  # failed transpositions are not tunes
        else:
            corpus.splits[split].append(text)
    if not corpus.splits["train"] or not corpus.splits["valid"]:
        raise SegueError("no tunes to train on: the corpus and the --data folders gave "
                         f"{len(corpus.splits['train'])} training and "
                         f"{len(corpus.splits['valid'])} validation tunes")
    return corpus


def token_array(texts: Sequence[str], tokenizer) -> np.ndarray:
    """The tunes as one token array, each preceded by `TUNE_SEPARATOR` (uint8 when it fits)."""
    dtype = np.uint8 if tokenizer.vocab_size <= 256 else np.uint16
    ids = tokenizer.encode("".join(TUNE_SEPARATOR + text for text in texts))
    return np.array(ids, dtype=dtype)
