"""Drafts: draw several answers, keep the one the others agree with.

One answer sampled from the model is one of many ways the music might go on, and a wide
draw: two answers to one prompt lie as far apart in their notes as each lies from the real
continuation (`segue eval`, "between seeds"). Of a few drafts, the one whose note profile
(pitch classes and melodic steps, `engine.abc.profile`) lies nearest the others' is what they
agree on, and the likeliest to be near the real continuation too: a minimum-Bayes-risk choice,
the drafts standing in for every way the model expects the music to go. What it costs is one
draft's time per draft: the notes are read off each draft's text (`engine.abc.text_events`),
in a millisecond where music21 takes fifty. Measured in docs/research/eval.md ("Drafts").

With several voices, the choice is made among the drafts that keep the voices in the prompt's
order of register (each voice's mean pitch, `engine.abc.registers`), where any does: a bass
that climbs over the tune, or a singer that sinks under the piano's right hand, is what a
musician hears as voices mixed up.
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


def keeps_order(centres: dict[str, float], abc: str) -> bool:
    """Whether a draft's voices keep the order of pitch that `centres` (each voice's mean pitch
    in the prompt, by name: `engine.abc.registers.voice_centres`) gives them, their mean
    pitches read as `segue eval` reads them (`engine.abc.text_events`: the key signature
    counted, a tied note once); True for one voice."""
    from engine.abc.registers import keeps_voice_order
    from engine.abc.text_events import text_voice_events

    events = text_voice_events(abc)
    means = [float(np.mean([pitch for _, _, pitch in events[name]]))
             if events.get(name) else None for name in centres]
    return keeps_voice_order(list(centres.values()), means) is not False


def agreed(profiles: Sequence[Profile], ordered: Sequence[bool] | None = None) -> int:
    """The index of the profile with the least total distance (pitch classes plus intervals)
    to the others, among those `ordered` marks (every one where it marks none or is None).
    Ties go to the first."""
    from engine.abc.profile import distance

    def cost(mine: Profile) -> float:
        return sum(distance(mine[0], other[0]) + distance(mine[1], other[1])
                   for other in profiles)

    candidates = [index for index, kept in enumerate(ordered or ()) if kept] \
        or range(len(profiles))
    return min(candidates, key=lambda index: cost(profiles[index]))
