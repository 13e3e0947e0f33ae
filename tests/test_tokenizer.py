"""The character tokenizer: names and titles outside ASCII are read folded; control
characters are refused by name."""

from __future__ import annotations

import pytest
from server_helpers import check_bars

from engine.continuation import Engine, Sampling
from engine.errors import SegueError
from engine.tokenizer import CharTokenizer


def test_letters_outside_ascii_are_folded_to_their_base_letters():
    tokenizer = CharTokenizer()
    text = 'T:Rêve d’un soir\nV:1 name="Flûte “solo”" clef=treble\n'
    assert tokenizer.decode(tokenizer.encode(text)) == \
        "T:Reve d'un soir\nV:1 name=\"Flute solo\" clef=treble\n"


def test_a_control_character_is_refused_by_name():
    with pytest.raises(SegueError, match=r"'\\t' cannot be given to the model"):
        CharTokenizer().encode("A\tB")


def test_a_voice_named_outside_ascii_is_continued(tiny_engine: Engine):
    prompt = 'X:1\nM:4/4\nL:1/8\nV:1 name="Flûte" clef=treble\nK:D\nV:1\nDEFG ABcd |\n'
    [result] = tiny_engine.continue_abc(prompt, bars=2, sampling=Sampling(seed=1))
    check_bars(result.abc, 2)
