"""A piece's note profile: how often it sounds each pitch class and each melodic step, and how
far two profiles lie apart.

`segue eval` measures an answer's distance from the real continuation with them
(`engine.study.measures`), and drafts choose the answer the others agree with
(`engine.models.drafts`).
"""

from __future__ import annotations

from fractions import Fraction
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from music21 import stream

INTERVAL_RANGE = 12  # melodic steps counted from an octave down to an octave up; wider clipped


def line_of(score: stream.Score) -> list[int]:
    """The top line's MIDI pitches, in time order (the highest note of each onset)."""
    from engine.abc.music import note_events

    top: dict[Fraction, int] = {}
    for onset, _, pitch in (e for part in note_events(score) for e in part):
        top[onset] = max(pitch, top.get(onset, pitch))
    return [top[onset] for onset in sorted(top)]


def histograms(score: stream.Score) -> tuple[np.ndarray, np.ndarray]:
    """Normalized pitch-class (12) and melodic interval (-12..12) histograms of a score."""
    from engine.abc.music import note_events

    pitches = [pitch for part in note_events(score) for _, _, pitch in part]
    classes = np.bincount(np.array(pitches, dtype=int) % 12, minlength=12).astype(float)
    line = np.array(line_of(score), dtype=int)
    steps = np.clip(np.diff(line), -INTERVAL_RANGE, INTERVAL_RANGE) + INTERVAL_RANGE
    intervals = np.bincount(steps, minlength=2 * INTERVAL_RANGE + 1).astype(float)
    return (classes / max(1.0, classes.sum()), intervals / max(1.0, intervals.sum()))


def distance(a: np.ndarray, b: np.ndarray) -> float:
    """Total variation distance of two histograms (1 when either is empty)."""
    if not a.any() or not b.any():
        return 1.0
    return float(0.5 * np.abs(a - b).sum())
