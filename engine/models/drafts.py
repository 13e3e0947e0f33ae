"""Drafts: draw several answers, keep the one the others agree with.

One answer sampled from the model is one of many ways the music might go on, and a wide
draw: two answers to one prompt lie as far apart in their notes as each lies from the real
continuation (`segue eval`, "between seeds"). Of a few drafts, the one whose note profile
(pitch classes and melodic steps, `engine.abc.profile`) lies nearest the others' is what they
agree on, and the likeliest to be near the real continuation too: a minimum-Bayes-risk choice,
the drafts standing in for every way the model expects the music to go. What it costs is one
draft's time per draft. Measured in docs/research/eval.md ("Drafts").
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

Profile = tuple[np.ndarray, np.ndarray]  # pitch-class and interval histograms


def agreed(profiles: Sequence[Profile | None]) -> int:
    """The index of the profile with the least total distance (pitch classes plus intervals)
    to the others; a draft without one (unreadable) is chosen only if every draft is. Ties go
    to the first."""
    from engine.abc.profile import distance

    read = [(index, profile) for index, profile in enumerate(profiles) if profile is not None]

    def cost(mine: Profile) -> float:
        return sum(distance(mine[0], other[0]) + distance(mine[1], other[1])
                   for _, other in read)

    return min(read, key=lambda item: cost(item[1]))[0] if read else 0
