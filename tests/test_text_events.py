"""Note events read off ABC text (engine/abc/text_events.py) against music21's reading of the
same text (engine.abc.music.note_events): hand-written tunes in the bar grammar's dialect, and
answers the grammar lets a model write."""

from __future__ import annotations

import re
from fractions import Fraction

import pytest

from engine.abc.music import note_events, parse_abc
from engine.abc.text_events import length_of, text_note_events
from engine.models.continuation import Engine, Sampling

HEAD = "X:1\nM:{meter}\nL:{unit}\nK:{key}\n"
TUNES = {
    "lengths": ("3/4", "1/8", "C", "C2 D E/F/ G// A//B/ c3/2 z/ | d6 |"),
    "sixteenths": ("2/4", "1/16", "G", "g2fe d4 | B/c/d/e/ f3 z | g8 |"),
    "key signature": ("6/8", "1/8", "D", "fed cBA | GFE DCB, |"),
    "accidentals hold to the bar line": ("4/4", "1/8", "C", "^c2 c2 c'2 ^C2 | c2 _e2 e2 =e2 |"),
    "octave marks": ("4/4", "1/8", "Bb", "B,,2 B,2 b2 b'2 | C,4 c'4 |"),
    "triplets": ("2/4", "1/8", "Am", "(3ABc (3d/e/f/ g | (3z2e2c2 A2 |"),
    "grace notes": ("3/4", "1/8", "D", "{g}a2 {ag}f2 {B}d2 | {c'}b6 |"),
    "ties": ("3/4", "1/8", "Dmix", "A6- | A2 B2- B2 | c2- c2 =c2 |"),
    "chords": ("4/4", "1/8", "F", "[FAc]2 [EGc]2 [F_A]4 | [CEG]2- [CEG]2 z4 |"),
    "chord symbols": ("4/4", "1/8", "C", '"C"c2 e2 "Am7"a4 | "G/B"B2 "F#dim"d2 c4 |'),
    "meter change": ("4/4", "1/8", "C", "c8 | [M:3/4] e6 | [M:4/4] g8 |"),
    "anacrusis": ("6/8", "1/8", "G", "d | gfe dBG | A3 A2 |"),
    "common time": ("C", "1/8", "E", "B8 | e4 B4 |"),
    "additive meter": ("2+3/8", "1/8", "C", "c2 d3 | e2 f3 |"),
}
TWO_VOICES = ("X:1\nM:2/4\nL:1/8\nV:1 name=\"Fiddle\" clef=treble\nV:2 name=\"Cello\" clef=bass\n"
              "K:G\nV:1\nd2 e2 | f4 | g2 a2 | b4 |\nV:2\nG,4 | Z | D,4 | G,4 |\n"
              "V:1\nc2 B2 | A4 |\nV:2\nZ2 |\n")


@pytest.mark.parametrize("name", TUNES)
def test_the_text_is_read_as_music21_reads_it(name: str) -> None:
    meter, unit, key, music = TUNES[name]
    tune = HEAD.format(meter=meter, unit=unit, key=key) + music + "\n"
    assert text_note_events(tune) == note_events(parse_abc(tune))


def test_each_voice_is_read_apart_and_a_multi_bar_rest_keeps_time() -> None:
    events = text_note_events(TWO_VOICES)
    assert events == note_events(parse_abc(TWO_VOICES))
    assert [pitch for _, _, pitch in events[1]] == [55, 50, 55]  # G, D, G,: no rest sounds
    assert events[1][1][0] == Fraction(4)  # D, after 4 quarters: G,4 and a bar's rest


def test_a_tie_into_a_chord_sounds_once() -> None:
    # music21 leaves these apart (the module's docstring): here the tied notes sound once.
    tune = HEAD.format(meter="4/4", unit="1/8", key="C") + "C4- [CE]4 | [EG]2- [EGc]6 |\n"
    assert text_note_events(tune) == [[
        (Fraction(0), Fraction(4), 60), (Fraction(2), Fraction(2), 64),
        (Fraction(4), Fraction(4), 64), (Fraction(4), Fraction(4), 67),
        (Fraction(5), Fraction(3), 72)]]


@pytest.mark.parametrize(("text", "value"), [
    ("", Fraction(1)), ("2", Fraction(2)), ("/", Fraction(1, 2)), ("//", Fraction(1, 4)),
    ("/4", Fraction(1, 4)), ("3/2", Fraction(3, 2)), ("3/", Fraction(3, 2)),
])
def test_lengths(text: str, value: Fraction) -> None:
    assert length_of(text) == value


def ties_a_chord(abc: str) -> bool:
    """Whether a tie in `abc` leads out of, into or within a chord (where music21 differs)."""
    return re.search(r"\]-|-[ |\n]*\[|\[[^\]]*-", abc) is not None


def test_answers_the_grammar_lets_a_model_write_are_read_as_music21_reads_them(
        tiny_engine: Engine) -> None:
    # Random weights write whatever the grammar allows: chords, ties, triplets, grace notes.
    prompts = [HEAD.format(meter="6/8", unit="1/8", key="Dmix") + "A2d dcA|GBd c2A|\n",
               HEAD.format(meter="3/4", unit="1/16", key="Eb") + "B4 G4 E4 | F12 |\n",
               TWO_VOICES]
    compared = 0
    for seed in range(30):
        for prompt in prompts:
            [answer] = tiny_engine.continue_abc(prompt, bars=4, sampling=Sampling(
                seed=seed, drafts=1, temperature=1.0, top_p=1.0))
            if ties_a_chord(answer.abc):
                continue
            assert text_note_events(answer.abc) == note_events(parse_abc(answer.abc)), \
                answer.abc
            compared += 1
    assert compared >= 20
