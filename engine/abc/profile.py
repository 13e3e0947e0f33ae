"""A piece's note profile: how often it sounds each pitch class and each melodic step, and how
far two profiles lie apart.

A profile is made from note events, each part's (onset, duration, MIDI pitch) triples: read
by music21 (`engine.abc.music.note_events`) where `segue eval` measures an answer's distance
from the real continuation (`engine.study.measures`), read off the text
(`engine.abc.text_events`) where drafts choose the answer the others agree with
(`engine.models.drafts`).
"""

from __future__ import annotations

from collections.abc import Sequence
from fractions import Fraction

import numpy as np

Events = Sequence[Sequence[tuple[Fraction, Fraction, int]]]  # per part: onset, length, pitch
INTERVAL_RANGE = 12  # melodic steps counted from an octave down to an octave up; wider clipped


def line_of(events: Events) -> list[int]:
    """The top line's MIDI pitches, in time order (the highest note of each onset)."""
    top: dict[Fraction, int] = {}
    for onset, _, pitch in (event for part in events for event in part):
        top[onset] = max(pitch, top.get(onset, pitch))
    return [top[onset] for onset in sorted(top)]


def histograms(events: Events) -> tuple[np.ndarray, np.ndarray]:
    """Normalized pitch-class (12) and melodic interval (-12..12) histograms of note events."""
    pitches = [pitch for part in events for _, _, pitch in part]
    classes = np.bincount(np.array(pitches, dtype=int) % 12, minlength=12).astype(float)
    line = np.array(line_of(events), dtype=int)
    steps = np.clip(np.diff(line), -INTERVAL_RANGE, INTERVAL_RANGE) + INTERVAL_RANGE
    intervals = np.bincount(steps, minlength=2 * INTERVAL_RANGE + 1).astype(float)
    return (classes / max(1.0, classes.sum()), intervals / max(1.0, intervals.sum()))


def distance(a: np.ndarray, b: np.ndarray) -> float:
    """Total variation distance of two histograms (1 when either is empty)."""
    if not a.any() or not b.any():
        return 1.0
    return float(0.5 * np.abs(a - b).sum())
