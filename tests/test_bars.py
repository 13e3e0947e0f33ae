"""The bar-exact grammar (engine/abc/bars.py) on its own: whatever a model picks among the allowed
characters, the bars come out whole, abc2midi finds every tie's note, every triplet's notes
are of one length and no grace notes are cut off; ties only to the same pitch; chord symbols
in the normalized spelling; `Z` only where several voices are written."""

from __future__ import annotations

import random
import subprocess
import tempfile
from fractions import Fraction
from pathlib import Path

import mido
import pytest

from engine.abc.bars import BarState, bar_units, grid_for, key_alters
from engine.models.tokenizer import ALPHABET

CASES = [  # meter, L, key; the bar in unit notes follows
    ("4/4", "1/8", "C"), ("3/4", "1/8", "Bb"), ("6/8", "1/8", "F#m"), ("2/4", "1/16", "ADor"),
    ("2+3/8", "1/16", "Eb"), ("9/8", "1/8", "DMix"),
]


def state(meter: str, unit: str, key: str, bars: int, **options) -> BarState:
    numerator, _, denominator = meter.partition("/")
    bar = Fraction(sum(map(int, numerator.split("+"))), int(denominator)) / Fraction(unit)
    return BarState.start(bar=bar, bars_left=bars, grid=grid_for(unit), key=key_alters(key),
                          **options)


def write(text: str, start: BarState) -> BarState | None:
    current: BarState | None = start
    for ch in text:
        current = current.feed(ch) if current is not None else None
    return current


def random_walk(start: BarState, seed: int) -> str:
    """Characters picked uniformly among the allowed ones (the worst a model can do)."""
    rng = random.Random(seed)
    current, text = start, ""
    while not current.done:
        allowed = [(ch, s) for ch, s in zip(ALPHABET, current.successors(tuple(ALPHABET)),
                                            strict=True) if s is not None]
        assert allowed, f"dead end after {text!r}"
        ch, current = rng.choice(allowed)
        text += ch
        assert len(text) < 4000, text
    return text


def abc2midi_messages(tune: str) -> list[str]:
    with tempfile.TemporaryDirectory() as folder:
        source = Path(folder) / "tune.abc"
        source.write_text(tune)
        done = subprocess.run(["abc2midi", str(source), "-o", str(Path(folder) / "t.mid")],
                              capture_output=True, text=True, timeout=60)
    return [line for line in (done.stdout + done.stderr).splitlines()
            if ("Error" in line or "Warning" in line)
            and any(word in line.lower() for word in ("tie", "bar", "tuple", "grace"))]


def abc2midi_pitches(tune: str) -> list[int]:
    """The pitches abc2midi plays for a tune (a reader that is not ours)."""
    with tempfile.TemporaryDirectory() as folder:
        source, midi = Path(folder) / "tune.abc", Path(folder) / "tune.mid"
        source.write_text(tune)
        subprocess.run(["abc2midi", str(source), "-o", str(midi)], capture_output=True,
                       timeout=60, check=True)
        return [message.note for message in mido.MidiFile(midi)
                if message.type == "note_on" and message.velocity]


@pytest.mark.parametrize(("meter", "unit", "key"), CASES)
def test_any_choice_of_allowed_characters_ends_in_whole_bars_with_sound_ties(
        meter: str, unit: str, key: str):
    for seed in range(25):
        several_voices = seed % 2 == 0
        start = state(meter, unit, key, 4, chord_symbols=True, multi_rest=several_voices,
                      previous="\n" if several_voices else "|")
        body = random_walk(start, seed)
        tune = f"X:1\nM:{meter}\nL:{unit}\nK:{key}\n{body}\n"
        assert not abc2midi_messages(tune), tune


@pytest.mark.parametrize("time", [Fraction(1), Fraction(5, 2)])
def test_an_unfinished_bar_is_completed_first(time: Fraction):
    start = state("3/4", "1/8", "C", 3, time=time, previous=" ")
    for seed in range(10):
        assert random_walk(start, seed).count("|") == 3


@pytest.mark.parametrize(("text", "allowed"), [
    ("C2-C2", True), ("C2-D2", False), ("C2-^C2", False), ("^C2-^C2", True), ("^C2-C2", True),
    ("^C2-c2", False), ("C8- | C2", True), ("^C8- | C8", False), ("^C8- | ^C8", True),
    ("C2-z2", False), ("[CE]2-[CEG]2", True), ("[CE]2-C2", False), ("[C-E]2 C2", True),
    ("[C-E]2 E2", False), ("C2-[EC]2", True), ("C2-\"Am\"C2", True), ("_a C2-C2", True),
    ("[CC]2", False), ("F2-F2", True),
])
def test_a_tie_leads_only_to_the_same_pitch(text: str, allowed: bool):
    """In C major: an accidental holds to the bar line, and a doubled chord note is refused."""
    result = write(text, state("4/4", "1/8", "C", 2, chord_symbols=True))
    assert (result is not None) == allowed, text


@pytest.mark.parametrize(("text", "allowed"), [
    ("(3ABc", True), ("(3A2B2c2", True), ("(3A/B/c/", True), ("(3A2Bc", False),
    ("(3AB2", False), ("(3A[CE]c", False), ("(3zAB", True),
    ("(3AB/", False), ("(3ABc (3d2e2", True),
])
def test_a_triplets_notes_have_one_length(text: str, allowed: bool):
    """abc2midi warns of a triplet of notes of different lengths: the grammar writes none."""
    result = write(text, state("4/4", "1/8", "C", 2, chord_symbols=True))
    assert (result is not None) == allowed, text


@pytest.mark.parametrize(("text", "allowed"), [
    ("{D}C/ C/", True), ("{D}C/4 ", False), ("{GA}B/ ", False), ("{G/A/}B/ B/", True),
    ("{GAB}B ", True), ("{GABc}B ", False), ("{G2A}B ", True), ("{G2A2}B ", False),
    ("{GA/}B/ B/", True), ("{GA}[CE]/ ", False), ("{GA}[CE] ", True), ("C7 {G}G/", True),
    ("C7 z/ z/4 {", False), ("C7 {GA_", True), ("C7 {GABc", False),
])
def test_grace_notes_come_before_a_note_more_than_a_quarter_of_their_length(text: str,
                                                                           allowed: bool):
    """As abc2midi cuts them off: `{GA}B/` is cut, `{G/A/}B/` is not; and no grace note is
    begun where no note could follow (a quarter of a unit left of the bar, or one unit)."""
    result = write(text, state("4/4", "1/8", "C", 2))
    assert (result is not None) == allowed, text


def test_a_tie_is_refused_where_readers_hear_different_pitches():
    # `_a` flattens every A for abc2midi but only a' s octave for ABC 2.1: `A-` is ambiguous
    start = state("4/4", "1/8", "C", 2)
    assert write("_a A2-", start) is None
    assert write("_a =A2-=A2", start) is not None


@pytest.mark.parametrize(("text", "allowed"), [
    ('"Am7"A2', True), ('"D/F#"D2', True), ('"Bbm7b5"B2', True), ('"G7sus4"G2', True),
    ('"Amin"A2', False), ('"H"A2', False), ('"Am7" A2', False), ('"Am7"|', False),
    ('"Am7""D"A2', False), ('"A/A"A2', False),
])
def test_chord_symbols_use_the_normalized_spelling(text: str, allowed: bool):
    result = write(text, state("4/4", "1/8", "C", 2, chord_symbols=True))
    assert (result is not None) == allowed, text


def test_no_chord_symbols_for_a_model_that_never_read_any():
    assert write('"Am"A2', state("4/4", "1/8", "C", 2)) is None


@pytest.mark.parametrize(("text", "allowed"), [
    ("Z |", True), ("Z3 |", True), ("Z4 |", True), ("Z5 |", False), ("Z1 |", False),
    ("Z0 |", False), ("Z2 | C8 |", True), ("C4 Z", False),
])
def test_multi_bar_rests_in_several_voice_segments(text: str, allowed: bool):
    start = state("4/4", "1/8", "C", 4, multi_rest=True, previous="\n")
    assert (write(text, start) is not None) == allowed, text
    assert write("Z |", state("4/4", "1/8", "C", 4)) is None  # not for one voice


def test_only_lengths_one_note_head_can_show_down_to_a_32nd_note():
    eighths = state("4/4", "1/8", "C", 1)
    assert write("C5", eighths) is None and write("C7/4", eighths) is not None
    assert write("C/8", eighths) is None and write("C/4", eighths) is not None
    sixteenths = state("2/4", "1/16", "C", 1)
    assert write("C/4", sixteenths) is None and write("C/", sixteenths) is not None


@pytest.mark.parametrize(("unit", "text", "allowed"), [
    ("1/32", "{G/A/}B ", True), ("1/32", "{G2A2}B ", False), ("1/32", "(3BBB B", True),
    ("1/32", "(3BBB2", False), ("1/32", "{G2A/B/c/}B ", True), ("1/64", "{G/}B2 ", True),
    ("1/64", "(3B2B2B2 B4 ", True), ("1/64", "B ", False), ("1/2", "(3B/4B/4B/4 B/ ", True),
    ("1/2", "{G/}B/8 ", False),
])
def test_short_units_count_grace_notes_and_triplets_exactly(unit: str, text: str,
                                                            allowed: bool):
    """Lengths are whole ticks for every unit: with L:1/64 the shortest note is two units,
    and half a unit (`{G/}`) and a triplet's two thirds still count exactly."""
    assert (write(text, state("4/4", unit, "C", 2)) is not None) == allowed, text


def test_a_time_off_the_grid_of_ticks_is_refused():
    with pytest.raises(ValueError, match="ticks"):
        BarState.start(Fraction(8), 1, time=Fraction(1, 7))


def test_key_signatures():
    assert key_alters("Bb") == (0, 0, -1, 0, 0, 0, -1)
    assert key_alters("F#m") == (1, 0, 0, 1, 1, 0, 0)
    assert key_alters("ADor") == (0, 0, 0, 1, 0, 0, 0)
    assert key_alters("EbMix") == (0, -1, -1, 0, 0, -1, -1)


def test_bar_lengths_in_unit_notes():
    assert bar_units("2+3/8", "1/8") == 5
    assert bar_units("C|", "1/8") == 8
    assert bar_units("6/8", "1/16") == 12


@pytest.mark.parametrize(("text", "allowed"), [
    ("C2", True), ("c'2", True), ("c''2", False), ("C,2", False), ("^c'2", True),
    ("^^c'2", True), ("^^d'2", False), ("_C2", False), ("[CEG]2", True), ("[C,EG]2", False),
    ("{c''}c'2", False), ("z2", True),
])
def test_notes_stay_in_the_voices_register(text: str, allowed: bool):
    """Register C4 (60) to D6 (86): a note outside it, as any reader hears it, is refused."""
    result = write(text, state("4/4", "1/8", "C", 2, register=(60, 86)))
    assert (result is not None) == allowed, text


@pytest.mark.parametrize("key", ["C", "F#", "Bb"])
def test_any_choice_in_a_register_ends_in_whole_bars_inside_it(key: str):
    for seed in range(20):
        start = state("6/8", "1/8", key, 4, chord_symbols=True, multi_rest=True,
                      previous="\n", register=(55, 74))
        body = random_walk(start, seed)
        tune = f"X:1\nM:6/8\nL:1/8\n%%MIDI gchordoff\nK:{key}\n{body}\n"
        assert not abc2midi_messages(tune), tune
        assert all(55 <= pitch <= 74 for pitch in abc2midi_pitches(tune)), tune


@pytest.mark.parametrize(("text", "allowed"), [
    ("[e^^d]2", False), ("[c^B]2", False), ("[B_c]2", False), ("[ce]2", True),
    ("[Ec]2-[^^DEc]2", False), ("[Ec]2-[Ec^^d]2", True),
])
def test_a_chord_sounds_each_key_once(text: str, allowed: bool):
    """`[e^^d]` would sound one key twice; readers pair notes and spellings by pitch."""
    result = write(text, state("4/4", "1/8", "C", 2))
    assert (result is not None) == allowed, text
