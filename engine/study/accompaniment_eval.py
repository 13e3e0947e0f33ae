"""`segue eval`'s accompaniment figures: a part taken out of held-out music, written anew by each
system (`engine.models.infill.accompany_score`) and measured against the part that was there.

- bass (the voices set): a window of `bars` bars of a piece with two or more voices loses its
  last voice (the lowest staff: the cello, the piano's left hand), and each system adds a bass
  to the rest.
  - given_kept: answers whose given voices come back note for note (must be 1).
  - register_error: |mean pitch of the new part - mean pitch of the real one|, in semitones.
  - below_share: answers whose new part lies below every given voice (by mean pitch).
  - notes_per_bar: note onsets per bar of the new part.
  - duration_distance: total variation distance between the note lengths of the new part and
    those of the real one (`LENGTH_BINS`).
- chords (the chords set): a window with chord symbols loses them, and each system writes
  symbols for the rest. Beside the model and the n-gram, "common" gives each bar the chord that
  best explains the bar's notes (`engine.abc.lead_sheet.best_chord`), the simple baseline.
  - given_kept; chord_agreement: strong-beat melody notes that belong to the chord in force
    (as for continuations, `engine.study.measures.chord_agreement`); root_match: bars whose chord at
    the downbeat has the root of the real one; in_key: symbols whose triad lies in the key's
    scale (`engine.study.measures.chords_in_key`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from fractions import Fraction
from typing import TYPE_CHECKING, Any

import numpy as np

from engine.abc.layout import Bar, Layout, leading_fields
from engine.errors import SegueError

if TYPE_CHECKING:
    from music21 import stream

    from engine.models.continuation import Sampling

ADDED_BY_SET = {"voices": "bass", "chords": "chords"}
LENGTH_BINS = (Fraction(1, 4), Fraction(1, 3), Fraction(1, 2), Fraction(2, 3), Fraction(3, 4),
               Fraction(1), Fraction(3, 2), Fraction(2), Fraction(3), Fraction(4))  # quarters


@dataclass
class PartCase:
    """One window: the music given to the systems, the music as it was, and the answers."""

    source: str
    given: str  # ABC without the part
    real: str  # ABC with it
    bars: int
    answers: dict[str, str | None] = field(default_factory=dict)  # None: the system failed


def without_last_voice(window: Layout) -> Layout:
    """The window less its last voice (and that voice's `V:` line in the head)."""
    last = re.compile(rf"V:\s*{len(window.voices)}(\s|$)")
    return Layout([line for line in window.head if not last.match(line)], window.voices[:-1])


def cases_for(add: str, pieces: Iterable[tuple[str, str]], bars: int, n: int) -> list[PartCase]:
    """Up to `n` windows of `bars` bars, the first usable one of each piece in turn."""
    from engine.abc.music import note_events, parse_abc
    from engine.models.infill import CHORD_SYMBOL
    from engine.study.eval_sets import first_windows, has_chords

    def case(where: str, real: str) -> PartCase | None:
        if add == "chords":
            given = CHORD_SYMBOL.sub("", real)
            if not has_chords(real) or given == real:
                return None
        else:
            window = Layout.read(real)
            if len(window.voices) < 2:
                return None
            given = without_last_voice(window).write()
        if not all(note_events(parse_abc(real))):
            return None  # a part that does not sound in this window
        parse_abc(given)
        return PartCase(where, given, real, bars)

    return first_windows(pieces, bars, n, case)


def common_chords(given: str) -> str:
    """The baseline's answer: `given` with, at each bar of its first voice, the chord that
    best explains that bar's notes (every voice counted)."""
    from music21 import harmony, stream

    from engine.abc.chord_symbols import symbol_text
    from engine.abc.lead_sheet import best_chord, note_list, segment_weights, spelled_root
    from engine.abc.music import parse_abc
    from engine.abc.writer import frac

    score = parse_abc(given)
    notes = note_list(score.parts)
    layout = Layout.read(given)
    key = score.parts[0].recurse().getElementsByClass("KeySignature").first()
    measures = list(score.parts[0].getElementsByClass(stream.Measure))
    voice = []
    for bar, measure in zip(layout.voices[0], measures, strict=False):
        start = frac(measure.getOffsetInHierarchy(score.parts[0]))
        label = best_chord(*segment_weights(notes, start,
                                            start + frac(measure.duration.quarterLength)))
        text = None if label is None else symbol_text(harmony.ChordSymbol(
            root=spelled_root(label.root, key), kind=label.kind))
        opening = leading_fields(bar.music)
        music = bar.music if text is None else \
            f'{opening}"{text}"{bar.music[len(opening):]}'
        voice.append(Bar(bar.opening, music, bar.closing))
    voice += layout.voices[0][len(voice):]
    return Layout(layout.head, [voice, *layout.voices[1:]]).write()


def downbeat_roots(score: stream.Score) -> list[int | None]:
    """The root of the chord in force at each bar's downbeat (None where none is)."""
    from music21 import stream

    from engine.abc.writer import frac
    from engine.study.measures import chord_part, chord_root, in_force

    found = chord_part(score)
    if found is None:
        return []
    part, symbols = found
    roots: list[int | None] = []
    for measure in part.getElementsByClass(stream.Measure):
        chord = in_force(symbols, frac(measure.getOffsetInHierarchy(part)))
        roots.append(None if chord is None else chord_root(chord))
    return roots


def length_histogram(part: list[tuple[Fraction, Fraction, int]]) -> np.ndarray:
    """Note lengths of one part's (onset, length, pitch) triples over `LENGTH_BINS` and one
    bin for any other length, one count per onset."""
    lengths = {onset: length for onset, length, _ in part}
    counts = np.zeros(len(LENGTH_BINS) + 1)
    for length in lengths.values():
        counts[LENGTH_BINS.index(length) if length in LENGTH_BINS else -1] += 1
    return counts / max(1.0, counts.sum())


def figures_of(add: str, cases: list[PartCase], system: str) -> dict[str, Any]:
    """One system's accompaniment figures over the cases it answered."""
    from engine.abc.music import note_events, parse_abc
    from engine.abc.profile import distance
    from engine.study.measures import chord_agreement, chords_in_key, mean, share

    kept = answered = below = notes = bars = agree = strong = matched = roots = 0
    in_key = symbols = 0
    register: list[float] = []
    lengths: list[float] = []
    for case in cases:
        text = case.real if system == "real" else case.answers.get(system)
        if text is None:
            continue
        answered += 1
        score = parse_abc(text)
        given = note_events(parse_abc(case.given))
        parts = note_events(score)
        kept += parts[:len(given)] == given if add != "chords" else parts == given
        if add == "chords":
            got, counted = chord_agreement(score)
            agree, strong = agree + got, strong + counted
            got, counted = chords_in_key(text)
            in_key, symbols = in_key + got, symbols + counted
            real = downbeat_roots(parse_abc(case.real))
            for mine, theirs in zip(downbeat_roots(score), real, strict=False):
                if theirs is not None:
                    roots += 1
                    matched += mine == theirs
            continue
        new, real_part = parts[-1], note_events(parse_abc(case.real))[-1]
        bars += case.bars
        notes += len({onset for onset, _, _ in new})
        if new:
            height = float(np.mean([pitch for _, _, pitch in new]))
            register.append(abs(height - float(np.mean([p for _, _, p in real_part]))))
            below += all(height < float(np.mean([p for _, _, p in part]))
                         for part in given if part)
        lengths.append(distance(length_histogram(new), length_histogram(real_part)))
    result: dict[str, Any] = {"answers": answered, "failed": len(cases) - answered,
                              "given_kept": share(kept, answered)}
    if add == "chords":
        result.update(chord_agreement=share(agree, strong),
                      root_match=share(matched, roots) if system != "real" else None,
                      in_key=share(in_key, symbols))
    else:
        result.update(register_error=mean(register) if system != "real" else None,
                      below_share=share(below, answered), notes_per_bar=share(notes, bars),
                      duration_distance=mean(lengths) if system != "real" else None)
    return result


def accompaniment_figures(name: str, pieces: list[tuple[str, str]], systems: dict[str, Any],
                          bars: int, n: int,
                          progress: Callable[[Iterable[Any], str], Iterable[Any]],
                          sampling: Sampling | None = None) -> dict[str, Any] | None:
    """The accompaniment figures of set `name` (None for a set without them): every system in
    `systems` (name -> Engine) adds the part to each case, one seed each, with `sampling`
    (None: each model's own)."""
    from engine.abc.music import parse_abc
    from engine.models.continuation import Sampling
    from engine.models.infill import accompany_score

    sampling = sampling or Sampling()

    add = ADDED_BY_SET.get(name)
    if add is None:
        return None
    cases = cases_for(add, pieces, bars, n)
    for index, case in enumerate(progress(cases, f"{name}: add {add}")):
        for system, engine in systems.items():
            try:
                [take] = accompany_score(engine, parse_abc(case.given), add,
                                         replace(sampling, seed=1000 * index))
                case.answers[system] = take.abc
            except SegueError:
                case.answers[system] = None
        if add == "chords":
            case.answers["common"] = common_chords(case.given)
    names = [*systems, *(["common"] if add == "chords" else []), "real"]
    return {"add": add, "cases": len(cases), "bars": bars,
            "sources": [case.source for case in cases],
            "systems": {system: figures_of(add, cases, system) for system in names}}
