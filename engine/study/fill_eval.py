"""`segue eval`'s fill figures: how a filled gap joins the music after it.

In a window of `bars` bars of each held-out piece, the two bars in the middle (the fourth and
the fifth of 8) are written anew by each system (`engine.models.infill.fill_score`). The melodic
interval from the gap's last note to the first note after it, in the top line of the first
voice, is compared with the real music's at the same place.

- join_leap: mean size of that interval, in semitones.
- join_step_share: joins of at most 2 semitones (a step, or the same note).
- join_distance: total variation distance between the systems' join intervals and the real
  ones (-12..12 semitones, wider leaps clipped), pooled over the windows.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from fractions import Fraction
from typing import TYPE_CHECKING, Any

import numpy as np

from engine.abc.profile import INTERVAL_RANGE, distance
from engine.errors import SegueError
from engine.study.measures import mean, share

if TYPE_CHECKING:
    from music21 import stream



def gap_of(bars: int) -> tuple[int, int]:
    """The bars of a window of `bars` bars written anew: the two in the middle (counted from
    0, the end excluded; 3, 5 of 8)."""
    return bars // 2 - 1, bars // 2 + 1


@dataclass
class JoinCase:
    """One window, the interval at its real join, and each system's."""

    source: str
    text: str  # ABC of the window
    real: int
    joins: dict[str, int | None] = field(default_factory=dict)  # None: no note to join


def join_interval(score: stream.Score, gap: tuple[int, int]) -> int | None:
    """Semitones from the last note that starts in the gap (bars `gap` of the score, counted
    from 0, the end excluded) to the first note after it, in the top line of the first part
    (None where either is missing)."""
    from music21 import stream

    from engine.abc.music import note_events
    from engine.abc.writer import frac

    part = score.parts[0]
    measures = list(part.getElementsByClass(stream.Measure))
    if len(measures) <= gap[1]:
        return None
    start, end = (frac(measures[index].getOffsetInHierarchy(part)) for index in gap)
    top: dict[Fraction, int] = {}
    for onset, _, pitch in note_events(score)[0]:
        top[onset] = max(pitch, top.get(onset, pitch))
    inside = [onset for onset in top if start <= onset < end]
    after = [onset for onset in top if onset >= end]
    if not inside or not after:
        return None
    return top[min(after)] - top[max(inside)]


def join_cases(pieces: Iterable[tuple[str, str]], bars: int, n: int) -> list[JoinCase]:
    """Up to `n` windows of `bars` bars, the first usable one of each piece in turn."""
    from engine.abc.music import parse_abc
    from engine.study.eval_sets import first_windows

    def case(where: str, window: str) -> JoinCase | None:
        real = join_interval(parse_abc(window), gap_of(bars))
        return None if real is None else JoinCase(where, window, real)

    return first_windows(pieces, bars, n, case)


def histogram(intervals: list[int]) -> np.ndarray:
    """Counts of intervals over -INTERVAL_RANGE..INTERVAL_RANGE (wider leaps clipped)."""
    clipped = np.clip(np.array(intervals, dtype=int), -INTERVAL_RANGE, INTERVAL_RANGE)
    return np.bincount(clipped + INTERVAL_RANGE, minlength=2 * INTERVAL_RANGE + 1).astype(float)


def figures_of(cases: list[JoinCase], system: str) -> dict[str, Any]:
    """One system's join figures over the windows it filled with a note on both sides."""
    joins = [case.real if system == "real" else case.joins.get(system) for case in cases]
    kept = [join for join in joins if join is not None]
    real = histogram([case.real for case in cases])
    mine = histogram(kept)
    return {"joins": len(kept),
            "join_leap": mean([float(abs(join)) for join in kept]),
            "join_step_share": share(sum(abs(join) <= 2 for join in kept), len(kept)),
            "join_distance": distance(mine / max(1.0, mine.sum()), real / max(1.0, real.sum()))
            if system != "real" else None}


def join_figures(name: str, pieces: list[tuple[str, str]], systems: dict[str, Any], bars: int,
                 n: int, progress: Callable[[Iterable[Any], str], Iterable[Any]]
                 ) -> dict[str, Any] | None:
    """The join figures of one set (None for windows too short for a gap between bars):
    every system in `systems` (name -> Engine) fills the middle of each window, one seed
    each."""
    from engine.abc.music import parse_abc
    from engine.models.continuation import Sampling
    from engine.models.infill import fill_score, read_score

    if bars < 4:
        return None
    gap = gap_of(bars)
    cases = join_cases(pieces, bars, n)
    for index, case in enumerate(progress(cases, f"{name}: fill")):
        score = parse_abc(case.text)
        first = read_score(score)[1]
        for system, engine in systems.items():
            try:
                [take] = fill_score(engine, score, (first + gap[0], first + gap[1] - 1),
                                    Sampling(seed=1000 * index))
                case.joins[system] = join_interval(parse_abc(take.abc), gap)
            except SegueError:
                case.joins[system] = None
    return {"windows": len(cases), "bars": bars, "gap": [gap[0] + 1, gap[1]],
            "systems": {system: figures_of(cases, system) for system in [*systems, "real"]}}
