"""Chord symbols' pitch classes come from Segue's own table of qualities, for speed; every
quality on every root, with and without a bass note, agrees with music21's chord."""

from __future__ import annotations

import pytest

from engine.abc.chord_symbols import QUALITIES, ROOTS, from_text, pitch_classes, triad


@pytest.mark.parametrize("quality", QUALITIES)
def test_each_quality_sounds_as_music21_builds_it(quality: str) -> None:
    for root in ROOTS:
        for text in (root + quality, f"{root}{quality}/{'G' if root != 'G' else 'A'}"):
            built = [p.pitchClass for p in from_text(text).pitches]
            assert pitch_classes(text) == set(built), text
        stacked = [p.pitchClass for p in from_text(root + quality).pitches]
        assert triad(root + quality) == set(stacked[:3]), root + quality
