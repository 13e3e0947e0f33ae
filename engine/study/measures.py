"""What `segue eval` measures in one piece of music: an answer, or a real continuation.

Each function takes the ABC text (read as voices of bars, `engine.abc.layout`) or the music21
score it reads as, and returns a figure whose meaning the README's "How good is the model?"
gives. They are pure: the same music gives the same figure.

- Bars: how long each bar of each voice is, as written (the reader, abc2xml, keeps the bars
  as written, so an overfull bar is seen, not re-barred).
- Pitch: how far apart one prompt's answers land (their profiles, `engine.abc.profile`).
- Form: the share of bars that repeat an earlier one.
- Voices: each voice's mean pitch (whether their order is kept: `engine.abc.registers`).
- Chords: the bars that carry a chord symbol, the strong-beat melody notes that belong to
  the chord in force, the bars whose chord has the root a labelling baseline gives them, and
  the symbols whose triad lies in the key's scale.
"""

from __future__ import annotations

import difflib
from fractions import Fraction
from functools import lru_cache
from itertools import combinations
from typing import TYPE_CHECKING, Any

import numpy as np

from engine.abc.bars import key_scale
from engine.abc.chord_symbols import SYMBOL, pitch_classes, triad
from engine.abc.layout import Layout
from engine.abc.meters import strong_beats
from engine.abc.profile import distance
from engine.abc.text import QUOTED

if TYPE_CHECKING:
    from music21 import stream


def mean(values: list[float]) -> float | None:
    """The mean of `values`, None for none."""
    return float(np.mean(values)) if values else None


def share(part: int, whole: int) -> float | None:
    """part / whole, None for a whole of 0."""
    return part / whole if whole else None


def bars(abc: str) -> list[tuple[str, ...]]:
    """The bars of a tune, as columns: bar i of every voice (spacing removed)."""
    voices = Layout.read(abc).voices
    count = max((len(v) for v in voices), default=0)
    return [tuple(v[i].music.replace(" ", "") if i < len(v) else "" for v in voices)
            for i in range(count)]


def bar_lengths(score: stream.Score) -> list[list[tuple[Fraction, Fraction]]]:
    """For each part, (length, meter's length) of each bar in quarter notes, as written."""
    from music21 import stream

    from engine.abc.writer import frac

    return [[(frac(m.duration.quarterLength), frac(m.barDuration.quarterLength))
             for m in part.getElementsByClass(stream.Measure)] for part in score.parts]


def bars_right(score: stream.Score, count: int, opening: Fraction = Fraction(0)) -> bool:
    """Whether every part of `score` has exactly `count` bars, each as long as its meter says,
    after an opening bar of `opening` quarter notes where the prompt's last bar was unfinished
    (the answer completes it first).

    A bar split in two by a repeat sign (a pickup at a repeat, "d2B2 B2 :: Bc |") counts as
    right when its two halves add up to a bar: the reader numbers the halves as two bars.
    """
    parts = bar_lengths(score)
    if not parts:
        return False
    for lengths in parts:
        if opening:
            if not lengths or lengths[0][0] != opening:
                return False
            lengths = lengths[1:]
        if len(lengths) != count:
            return False
        index = 0
        while index < len(lengths):
            length, expected = lengths[index]
            if length == expected:
                index += 1
            elif index + 1 < len(lengths) and length + lengths[index + 1][0] == expected:
                index += 2
            else:
                return False
    return True


def spread(drawn: list[np.ndarray]) -> float:
    """The mean distance between every two of one prompt's answers' histograms (two or more):
    how far apart its seeds land."""
    return float(np.mean([distance(a, b) for a, b in combinations(drawn, 2)]))


def repetition(abc: str) -> float:
    """Share of bars that repeat an earlier bar of the same tune (every voice alike; spacing
    ignored)."""
    found = bars(abc)
    return sum(b in found[:i] for i, b in enumerate(found)) / max(1, len(found))


def diversity(texts: list[str]) -> float | None:
    """1 - mean pairwise similarity of continuations of one prompt (None for a single one)."""
    bodies = [" ".join(" ".join(column) for column in bars(t)) for t in texts]
    pairs = list(combinations(bodies, 2))
    if not pairs:
        return None
    return 1.0 - sum(difflib.SequenceMatcher(None, a, b).ratio() for a, b in pairs) / len(pairs)


def voice_means(score: stream.Score) -> list[float | None]:
    """Each part's mean MIDI pitch (every note of a chord counted), None for a silent part."""
    from engine.abc.music import note_events

    return [float(np.mean([p for _, _, p in part])) if part else None
            for part in note_events(score)]


def chord_bars(abc: str) -> tuple[int, int]:
    """(bars with at least one chord symbol in some voice, bars)."""
    columns = bars(abc)
    return sum(any('"' in music for music in column) for column in columns), len(columns)


def chords_in_key(abc: str) -> tuple[int, int]:
    """(chord symbols whose triad lies in the scale of the tune's key signature, chord
    symbols), the key being the head's `K:` field (a key change inside the tune is not
    followed)."""
    key, _, body = abc.partition("\nK:")[2].partition("\n")
    scale = key_scale(key)
    symbols = [text for quoted in QUOTED.findall(body) if SYMBOL.fullmatch(text := quoted[1:-1])]
    return sum(triad(text) <= scale for text in symbols), len(symbols)


def chord_part(score: stream.Score) -> tuple[Any, list[tuple[Fraction, str]]] | None:
    """The first part with chord symbols, and its symbols (onset, normalized text) in time
    order; None if no part has one."""
    from music21 import harmony

    from engine.abc.chord_symbols import symbol_text
    from engine.abc.writer import frac

    for part in score.parts:
        symbols = sorted((frac(s.getOffsetInHierarchy(part)), text)
                         for s in part.recurse().getElementsByClass(harmony.ChordSymbol)
                         if (text := symbol_text(s)) is not None)
        if symbols:
            return part, symbols
    return None


def in_force(symbols: list[tuple[Fraction, str]], onset: Fraction) -> str | None:
    """The chord symbol sounding at `onset` (the last one at or before it), if any."""
    found = [text for offset, text in symbols if offset <= onset]
    return found[-1] if found else None


def chord_agreement(score: stream.Score) -> tuple[int, int]:
    """(strong-beat melody notes that belong to the chord in force, strong-beat melody notes
    with a chord in force). The melody is the first part with chord symbols; a note counts by
    its highest pitch, where it starts (not where a tie holds it); a symbol is in force from
    its onset to the next one; notes before the first symbol are not counted."""
    from music21 import harmony, meter, stream

    from engine.abc.writer import frac

    found = chord_part(score)
    if found is None:
        return 0, 0
    part, symbols = found
    agree = counted = 0
    for measure in part.getElementsByClass(stream.Measure):
        signature = measure.timeSignature or measure.getContextByClass(meter.TimeSignature)
        bar = frac(measure.barDuration.quarterLength)
        strong = strong_beats(bar, signature.beatCount if signature else 1)
        start = frac(measure.getOffsetInHierarchy(part))
        for note in measure.recurse().notes:
            if isinstance(note, harmony.Harmony) or note.duration.isGrace:
                continue
            if note.tie is not None and note.tie.type in ("stop", "continue"):
                continue
            at = frac(note.getOffsetInHierarchy(measure)) + frac(measure.paddingLeft)
            if at not in strong:
                continue
            chord = in_force(symbols, start + frac(note.getOffsetInHierarchy(measure)))
            if chord is None:
                continue
            counted += 1
            agree += max(p.midi for p in note.pitches) % 12 in pitch_classes(chord)
    return agree, counted


@lru_cache(maxsize=4096)
def chord_root(symbol: str) -> int:
    """The root pitch class of a normalized chord symbol (`Am7` -> 9)."""
    from engine.abc.chord_symbols import from_text

    return from_text(symbol).root().pitchClass


def chord_label_agreement(score: stream.Score) -> tuple[int, int]:
    """(bars whose chord symbol in force at the downbeat has the root the labelling baseline
    gives the bar's notes, bars with a symbol in force and notes). The baseline is the lead
    sheets' labeller (`engine.abc.lead_sheet.best_chord`): the chord that best explains the bar's
    duration-weighted pitch classes, every part's notes counted."""
    from music21 import stream

    from engine.abc.lead_sheet import best_chord, note_list, segment_weights
    from engine.abc.writer import frac

    found = chord_part(score)
    if found is None:
        return 0, 0
    part, symbols = found
    notes = note_list(score.parts)
    agree = counted = 0
    for measure in part.getElementsByClass(stream.Measure):
        start = frac(measure.getOffsetInHierarchy(part))
        chord = in_force(symbols, start)
        label = best_chord(*segment_weights(notes, start,
                                            start + frac(measure.duration.quarterLength)))
        if chord is None or label is None:
            continue
        counted += 1
        agree += chord_root(chord) == label.root
    return agree, counted
