"""Lead sheets from scores: the top part as the melody, chord symbols read off the others.

Most training music has no chord symbols, yet a model should learn to write them under a
melody. A song's accompaniment holds its harmony, so `lead_sheet` labels it: the score is cut
into harmonic segments (a half bar in meters of four beats, a bar otherwise), the sounding
pitch classes of the other parts are weighted by duration (the lowest note twice), and each
segment gets the chord from a fixed list of qualities that explains the most of that weight
and leaves the least unexplained. The melody part keeps its notes and gets a symbol at every
bar and at every change. `bench/chord_labels.py` measures how good the labels are.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from typing import TYPE_CHECKING

from engine.abc.chord_symbols import is_chord_symbol

if TYPE_CHECKING:
    from collections.abc import Iterable

    from music21 import meter, stream
    from music21.key import KeySignature

# Chord qualities, as music21 names them, and their pitch classes above the root.
QUALITIES: dict[str, tuple[int, ...]] = {
    "major": (0, 4, 7),
    "minor": (0, 3, 7),
    "dominant-seventh": (0, 4, 7, 10),
    "minor-seventh": (0, 3, 7, 10),
    "major-seventh": (0, 4, 7, 11),
    "diminished": (0, 3, 6),
    "diminished-seventh": (0, 3, 6, 9),
    "half-diminished": (0, 3, 6, 10),
    "augmented": (0, 4, 8),
    "suspended-fourth": (0, 5, 7),
}
MISSING_TONE_COST = 0.15  # of the segment's weight, for each chord tone that does not sound
BASS_WEIGHT = 2.0  # the lowest sounding note counts this many times its duration


@dataclass(frozen=True)
class Label:
    """A chord: root pitch class and music21 kind."""

    root: int
    kind: str


def best_chord(weights: list[float], bass: int | None) -> Label | None:
    """The chord that best explains pitch-class `weights` (12 values), or None if silent."""
    total = sum(weights)
    if total <= 0:
        return None
    best: tuple[float, int, Label] | None = None
    for root in range(12):
        if weights[root] <= 0:
            continue
        for order, (kind, steps) in enumerate(QUALITIES.items()):
            tones = {(root + step) % 12 for step in steps}
            covered = sum(weights[pc] for pc in tones)
            missing = sum(1 for pc in tones if weights[pc] <= 0)
            score = covered - (total - covered) - MISSING_TONE_COST * total * missing
            if bass == root:
                score += 0.25 * total
            candidate = (score, -order, Label(root, kind))
            if best is None or candidate[:2] > best[:2]:
                best = candidate
    return best[2] if best else None


def segment_length(time_signature: meter.TimeSignature) -> Fraction:
    """The harmonic segment in quarter notes: half a bar in meters of four beats, else a bar."""
    bar = Fraction(time_signature.barDuration.quarterLength).limit_denominator(64)
    return bar / 2 if time_signature.beatCount == 4 else bar


def segment_weights(notes: list[tuple[Fraction, Fraction, list[int]]], start: Fraction,
                    end: Fraction) -> tuple[list[float], int | None]:
    """Duration-weighted pitch classes of `notes` (onset, length, MIDI pitches) sounding in
    [start, end), with the lowest pitch there counted `BASS_WEIGHT` times; and that pitch."""
    weights = [0.0] * 12
    lowest: int | None = None
    sounding = []
    for onset, length, pitches in notes:
        overlap = min(end, onset + length) - max(start, onset)
        if overlap > 0 and pitches:
            sounding.append((overlap, pitches))
            low = min(pitches)
            lowest = low if lowest is None else min(lowest, low)
    for overlap, pitches in sounding:
        for pitch in pitches:
            weights[pitch % 12] += float(overlap) * (BASS_WEIGHT if pitch == lowest else 1.0)
    return weights, None if lowest is None else lowest % 12


def note_list(parts: Iterable[stream.Part]) -> list[tuple[Fraction, Fraction, list[int]]]:
    """(onset, length, MIDI pitches) of every sounding note or chord of `parts`, in quarters."""
    found = []
    for part in parts:
        for element in part.flatten().notes:
            if element.duration.isGrace or is_chord_symbol(element):
                continue
            onset = Fraction(element.getOffsetInHierarchy(part)).limit_denominator(1 << 12)
            length = Fraction(element.duration.quarterLength).limit_denominator(1 << 12)
            found.append((onset, length, [p.midi for p in element.pitches]))
    return found


def spelled_root(root: int, key_signature: KeySignature | None) -> str:
    """The root's name as music21 writes it (`B-`, `F#`), spelled for the key signature."""
    from music21 import pitch

    sharps = key_signature.sharps if key_signature is not None else 0
    if key_signature is not None:
        for name in key_signature.asKey("major").pitches:
            if name.pitchClass == root:
                return name.name
    spelled = pitch.Pitch(root)
    if sharps < 0 and spelled.accidental is not None:
        spelled = spelled.getEnharmonic() or spelled
    return spelled.name


def label_segments(melody: stream.Part,
                   accompaniment_notes: list[tuple[Fraction, Fraction, list[int]]],
                   ) -> list[tuple[Fraction, Label, stream.Measure]]:
    """(offset in quarters, chord, measure) for each bar start and each chord change of
    `melody`'s measures, labelled from `accompaniment_notes`."""
    from music21 import meter, stream

    labels: list[tuple[Fraction, Label, stream.Measure]] = []
    previous: Label | None = None
    time_signature = None
    notes = sorted(accompaniment_notes, key=lambda item: item[0])
    first = 0  # the first note that may still sound: notes before it have ended
    for measure in melody.getElementsByClass(stream.Measure):
        time_signature = measure.timeSignature or time_signature or meter.TimeSignature("4/4")
        start = Fraction(measure.offset).limit_denominator(1 << 12)
        bar = Fraction(time_signature.barDuration.quarterLength).limit_denominator(1 << 12)
        while first < len(notes) and notes[first][0] + notes[first][1] <= start \
                and notes[first][0] + 64 <= start:  # a long note may still sound: keep 16 bars
            first += 1
        window = [n for n in notes[first:] if n[0] < start + bar]
        step = min(bar, segment_length(time_signature))
        position = start
        while position < start + bar:
            weights, bass = segment_weights(window, position, min(start + bar, position + step))
            label = best_chord(weights, bass)
            if label is not None and (position == start or label != previous):
                labels.append((position, label, measure))
            if label is not None:
                previous = label
            position += step
    return labels


def lead_sheet(score: stream.Score) -> stream.Score | None:
    """A one-part score: the top part of `score` with chord symbols labelled from the other
    parts; None when there are no other parts or no chord could be read."""
    import copy

    from music21 import harmony, key, stream

    parts = list(score.parts)
    if len(parts) < 2:
        return None
    melody = copy.deepcopy(parts[0])
    for old in list(melody.recurse().getElementsByClass(harmony.Harmony)):
        old.activeSite.remove(old)
    labels = label_segments(melody, note_list(parts[1:]))
    if not labels:
        return None
    signatures: dict[int, key.KeySignature | None] = {}  # the key in force in each bar
    signature = None
    for measure in melody.getElementsByClass(stream.Measure):
        signature = measure.keySignature or signature
        signatures[id(measure)] = signature
    for offset, label, measure in labels:
        symbol = harmony.ChordSymbol(root=spelled_root(label.root, signatures[id(measure)]),
                                     kind=label.kind)
        symbol.writeAsChord = False
        measure.insert(float(offset - Fraction(measure.offset).limit_denominator(1 << 12)),
                       symbol)
    result = stream.Score()
    if score.metadata is not None:
        result.metadata = copy.deepcopy(score.metadata)
    result.insert(0, melody)
    return result
