"""The MIDI bridge's one note type: what the musician plays and what Segue plays back."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Note:
    """A note on the host's timeline: MIDI pitch and velocity, start and end in beats (end
    None while its key is held)."""

    pitch: int
    velocity: int
    start: float
    end: float | None = None
