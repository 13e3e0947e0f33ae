"""The sets `segue eval` measures on: held-out music cut into prompts and real continuations.

Each set is drawn from one split ("test" for `segue eval`, "valid" when sampling settings are
chosen, so the test split never steers a choice):

- folk: the bundled corpus's tunes (music21's folk collections), cut exactly as `segue eval`
  cut them before corpus v2: each tune with one voice, no field change and enough bars gives
  one prompt of its first `prompt_bars` bars (bar numbers as music21 counts them) and the
  `bars` after them as the real continuation. This is the "old test split" column, whose
  figures compare with the first shipped model's.
- voices: the pieces of the `--data` folders with two or more voices, in their "score" view
  (a song: voice, piano right hand, left hand; a quartet: four voices).
- chords: prompts that carry chord symbols: the folk tunes that have them (cut as in folk) and
  the "lead_sheet" view of the `--data` pieces (the melody, chords read off the accompaniment).

A piece of voices or chords is cut like a training window (`engine.abc.layout`): a prompt
starts at a line of four bars, under the head in force there, and runs `prompt_bars` bars; the
next `bars` are the real continuation; the next prompt of the same piece starts after them.
Prompts are taken from each piece in turn (pieces in a fixed shuffled order), so a small
`--n` still spans many pieces. A cut is kept when meter, unit length and key stay the same
through it, the prompt's last bar is whole (so answers have exactly `bars` bars), and, for
voices, every voice sounds in both the prompt and the real continuation (so the voices have
an order to keep); for chords, when the prompt has a chord symbol.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from itertools import islice
from typing import TYPE_CHECKING, Any, TypeVar

from engine.abc.layout import BARS_PER_LINE, Layout
from engine.errors import SegueError

T = TypeVar("T")

if TYPE_CHECKING:
    from music21 import stream

SETS = ("folk", "voices", "chords")
SPLITS = ("test", "valid")


@dataclass
class Case:
    """One prompt and the truth it is measured against."""

    source: str
    prompt: Any  # music21 Score
    scale: frozenset[int]  # pitch classes of the prompt key's scale
    means: list[float | None]  # each voice's mean pitch in the prompt
    chords: bool  # whether the prompt carries chord symbols
    answers: dict[str, list[str]] = field(default_factory=dict)  # system -> ABC texts
    opening: Fraction = Fraction(0)  # quarter notes an answer first completes the prompt with


@dataclass
class Material:
    """The held-out music of one split: the bundled tunes and the `--data` pieces' views."""

    split: str
    folk: list[tuple[str, str]]  # (source, canonical text)
    data: list[tuple[str, dict[str, str]]]  # (source, {view: text})

    def texts(self, name: str) -> list[tuple[str, str]]:
        """(source, text) of the pieces set `name` is drawn from."""
        if name == "folk":
            return self.folk
        if name == "voices":
            return [(source, views["score"]) for source, views in self.data
                    if "score" in views and voice_count(views["score"]) > 1]
        if name == "chords":
            sheets = [(source, sheet) for source, views in self.data
                      if has_chords(sheet := views.get("lead_sheet") or views.get("score", ""))]
            return [(s, t) for s, t in self.folk if has_chords(t)] + sheets
        raise SegueError(f"unknown set {name!r}; sets are {', '.join(SETS)}")

    def available(self) -> list[str]:
        """The sets this material has pieces for."""
        return [name for name in SETS if self.texts(name)]


def voice_count(text: str) -> int:
    return len(re.findall(r"^V:\S+.*$", text.split("\nK:", 1)[0], re.MULTILINE)) or 1


def has_chords(text: str) -> bool:
    """Whether a tune's body holds a chord symbol."""
    return bool(re.search(r'"[A-G]', text.split("\nK:", 1)[-1]))


def load_material(split: str, folders: Sequence[str], *, test_tunes: int | None = None,
                  workers: int = 2, progress: bool = True) -> Material:
    """The canonical texts of `split`: the bundled tunes (the first `test_tunes` if given) and
    each piece of `folders` in its views (an ABC tune there is its own "score" view)."""
    from engine.training.corpus import iter_tunes
    from engine.training.dataset import canonicalize, job_of

    if split not in SPLITS:
        raise SegueError(f"unknown split {split!r}; use {' or '.join(SPLITS)}")
    bundled = list(islice(iter_tunes(split=split), test_tunes))
    pieces = list(iter_tunes(folders, bundled=False, split=split)) if folders else []
    results = canonicalize([job_of(t) for t in bundled + pieces], workers=workers,
                           progress=progress)
    folk = [(t.source, text) for t, text in zip(bundled, results[:len(bundled)], strict=True)
            if isinstance(text, str)]
    data: list[tuple[str, dict[str, str]]] = []
    for tune, result in zip(pieces, results[len(bundled):], strict=True):
        views = {"score": result} if isinstance(result, str) else \
            {view: text for view, text in (result or {}).items() if text}
        if views:
            data.append((tune.source, views))
    return Material(split, folk, data)


def scale_of(score: stream.Score) -> frozenset[int]:
    """Pitch classes of the scale of a score's first key signature (C major without one)."""
    from music21 import key

    signature = score.recurse().getElementsByClass(key.KeySignature).first()
    signature = signature or key.KeySignature(0)
    return frozenset(p.pitchClass for p in signature.asKey("major").pitches)


def make_case(source: str, prompt: stream.Score, answers: dict[str, list[str]]) -> Case:
    from engine.abc.music import chord_events
    from engine.study.measures import voice_means

    return Case(source, prompt, scale_of(prompt), voice_means(prompt),
                any(chord_events(prompt)), answers, opening_of(prompt))


def opening_of(prompt: stream.Score) -> Fraction:
    """The quarter notes left in the prompt's unfinished last bar, which an answer completes
    before its first whole bar (0: the prompt ends at a bar line)."""
    from music21 import stream

    from engine.abc.prompt import unfinished_bar
    from engine.abc.writer import frac

    reached = unfinished_bar(prompt, "1/4")  # in quarter notes
    if not reached:
        return Fraction(0)
    last = list(prompt.parts[0].getElementsByClass(stream.Measure))[-1]
    return frac(last.barDuration.quarterLength) - reached


def folk_cases(texts: Iterable[tuple[str, str]], prompt_bars: int, bars: int, *,
               chords: bool = False) -> Iterator[Case]:
    """The prompts of folk tunes, cut by music21's bar numbers as `segue eval` always cut
    them; with `chords`, only prompts that carry chord symbols."""
    from music21 import stream

    from engine.abc.music import parse_abc, quiet, select
    from engine.abc.writer import write_abc

    need = prompt_bars + bars
    for source, text in texts:
        body = text.split("K:", 1)[-1]
        if "V:" in body or re.search(r"\[[MLK]:", body) or body.count("|") < need:
            continue
        try:
            score = parse_abc(text)
        except SegueError:
            continue
        numbers = [m.number for m in score.parts[0].getElementsByClass(stream.Measure)]
        if len(score.parts) != 1 or len(numbers) < need or \
                numbers[:need] != list(range(numbers[0], numbers[0] + need)):
            continue
        first = numbers[0]
        try:
            with quiet():
                prompt = select(score, measures=(first, first + prompt_bars - 1))
                real = select(score, measures=(first + prompt_bars, first + need - 1))
                last = select(score, measures=(first + max(0, prompt_bars - bars),
                                               first + prompt_bars - 1))
            answers = {"real": [write_abc(real)], "repeat": [write_abc(last)]}
        except (SegueError, ValueError, ZeroDivisionError):
            continue
        case = make_case(source, prompt, answers)
        if case.chords or not chords:
            yield case


def shuffled(pieces: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    """Pieces in a fixed order that mixes collections: by a hash of their source (named within
    its collection, `engine.training.corpus.Tune`, so the order does not depend on where the
    folder lies)."""
    return sorted(pieces, key=lambda piece: hashlib.sha1(piece[0].encode()).hexdigest())


def layout_cases(pieces: Iterable[tuple[str, str]], prompt_bars: int, bars: int, *,
                 voices: bool = False, chords: bool = False) -> Iterator[Case]:
    """Prompts cut like training windows, one per piece in turn (see the module docstring)."""
    need = prompt_bars + bars
    step = -(-need // BARS_PER_LINE) * BARS_PER_LINE
    plans = []
    for source, text in shuffled(pieces):
        layout = Layout.read(text)
        if not voices or len(layout.voices) > 1:
            plans.append((source, layout, range(0, layout.bar_count - need + 1, step)))
    for depth in range(max((len(starts) for *_, starts in plans), default=0)):
        for source, layout, starts in plans:
            if depth < len(starts):
                case = layout_case(source, layout, starts[depth], prompt_bars, bars,
                                   voices=voices, chords=chords)
                if case is not None:
                    yield case


def steady(layout: Layout, start: int, stop: int) -> bool:
    """Whether meter, unit length and key stay as they are at `start` up to `stop`."""
    def fields(index: int) -> dict[str, str]:
        return {k: v for k, v in layout.fields_at(index).items() if k != "Q"}

    first = fields(start)
    return all(fields(index) == first for index in range(start + 1, stop))


def layout_case(source: str, layout: Layout, start: int, prompt_bars: int, bars: int, *,
                voices: bool, chords: bool) -> Case | None:
    """The case that starts at bar `start` of a piece, or None where the cut is not kept."""
    from engine.abc.music import parse_abc
    from engine.abc.prompt import unfinished_bar
    from engine.study.measures import voice_means

    end = start + prompt_bars
    if not steady(layout, start, end + bars):
        return None
    text = layout.write(start, end)
    if chords and not has_chords(text):
        return None
    real = layout.write(end, end + bars)
    try:
        prompt = parse_abc(text)
        real_means = voice_means(parse_abc(real))
    except SegueError:
        return None
    unit = layout.fields_at(end - 1).get("L", "1/8")
    if unfinished_bar(prompt, unit):
        return None
    case = make_case(f"{source}@{start}", prompt,
                     {"real": [real], "repeat": [layout.write(max(start, end - bars), end)]})
    if voices and (None in case.means or None in real_means):
        return None
    return case


def set_cases(material: Material, name: str, n: int, prompt_bars: int,
              bars: int) -> list[Case]:
    """The first `n` prompts of set `name` (chords: folk and lead-sheet prompts in turn)."""
    texts = material.texts(name)
    if name == "folk":
        found: Iterator[Case] = folk_cases(texts, prompt_bars, bars)
    elif name == "voices":
        found = layout_cases(texts, prompt_bars, bars, voices=True)
    else:
        folk = {source for source, _ in material.folk}
        found = alternate(
            folk_cases([p for p in texts if p[0] in folk], prompt_bars, bars, chords=True),
            layout_cases([p for p in texts if p[0] not in folk], prompt_bars, bars,
                         chords=True))
    return list(islice(found, n))


def first_windows(pieces: Iterable[tuple[str, str]], bars: int, n: int,
                  make: Callable[[str, str], T | None]) -> list[T]:
    """Up to `n` cases, one a piece in turn (`shuffled`): `make(where, window)` is tried on
    each window of `bars` bars of a piece whose meter, unit and key hold (`where` names it,
    `window` is its ABC) until it makes a case (None, or a SegueError: not this window)."""
    found: list[T] = []
    for source, text in shuffled(pieces):
        layout = Layout.read(text)
        for start in range(0, layout.bar_count - bars + 1, bars):
            if not steady(layout, start, start + bars):
                continue
            try:
                case = make(f"{source}@{start}", layout.write(start, start + bars))
            except SegueError:
                continue
            if case is not None:
                found.append(case)
                break
        if len(found) >= n:
            break
    return found


def alternate(*sources: Iterator[Case]) -> Iterator[Case]:
    """One item of each source in turn, until all are spent."""
    active = list(sources)
    while active:
        for source in list(active):
            item = next(source, None)
            if item is None:
                active.remove(source)
            else:
                yield item


def window_texts(texts: Sequence[str], limit: int, characters: int) -> list[str]:
    """Training-style windows of `texts` (each at most `limit` characters, under its head),
    one window of each text in turn, until they hold `characters` characters."""
    from engine.abc.windows import windows

    queues = [windows(text, limit) for text in texts]
    found: list[str] = []
    total = 0
    for depth in range(max((len(q) for q in queues), default=0)):
        for queue in queues:
            if depth < len(queue):
                layout, start, stop = queue[depth]
                found.append(layout.write(start, stop))
                total += len(found[-1])
                if total >= characters:
                    return found
    return found
