"""Drafts: draw several answers, keep the one the others agree with.

One answer sampled from the model is one of many ways the music might go on, and a wide
draw: two answers to one prompt lie as far apart in their notes as each lies from the real
continuation (`segue eval`, "between seeds"). Of a few drafts, the one whose note profile
(pitch classes and melodic steps, `engine.abc.profile`) lies nearest the others' is what they
agree on, and the likeliest to be near the real continuation too: a minimum-Bayes-risk choice,
the drafts standing in for every way the model expects the music to go. What it costs is one
draft's time per draft: the notes are read off each draft's text (`engine.abc.text_events`),
in a millisecond where music21 takes fifty. Measured in docs/research/eval.md ("Drafts").
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

Profile = tuple[np.ndarray, np.ndarray]  # pitch-class and interval histograms


def profile_of(abc: str) -> Profile:
    """A draft's note profile (`engine.abc.profile`), read off its ABC text."""
    from engine.abc.profile import histograms
    from engine.abc.text_events import text_note_events

    return histograms(text_note_events(abc))


def agreed(profiles: Sequence[Profile]) -> int:
    """The index of the profile with the least total distance (pitch classes plus intervals)
    to the others. Ties go to the first."""
    from engine.abc.profile import distance

    def cost(mine: Profile) -> float:
        return sum(distance(mine[0], other[0]) + distance(mine[1], other[1])
                   for other in profiles)

    return min(range(len(profiles)), key=lambda index: cost(profiles[index]))
