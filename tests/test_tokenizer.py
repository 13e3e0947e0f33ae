"""The character tokenizer: names and titles outside ASCII are read folded; control
characters are refused by name."""

from __future__ import annotations

import pytest

from engine.abc.text import TUNE_SEPARATOR
from engine.errors import SegueError
from engine.models.tokenizer import CharTokenizer
from engine.training.dataset import token_array


def test_letters_outside_ascii_are_folded_to_their_base_letters():
    tokenizer = CharTokenizer()
    text = 'T:Rêve d’un soir\nV:1 name="Flûte “solo”" clef=treble\n'
    assert tokenizer.decode(tokenizer.encode(text)) == \
        "T:Reve d'un soir\nV:1 name=\"Flute solo\" clef=treble\n"


def test_a_control_character_is_refused_by_name():
    with pytest.raises(SegueError, match=r"'\\t' cannot be given to the model"):
        CharTokenizer().encode("A\tB")


def test_training_text_with_names_outside_ascii_becomes_tokens() -> None:
    """What stopped a training run: a song's voice named "Sång Voice"."""
    text = 'X:1\nM:3/4\nL:1/8\nV:1 name="Sång Voice" clef=treble\nK:C\nV:1\nC2 D2 E2 |\n'
    tokenizer = CharTokenizer()
    ids = token_array([text], tokenizer)
    assert tokenizer.decode(ids.tolist()) == TUNE_SEPARATOR + text.replace("å", "a")
