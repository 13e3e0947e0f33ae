"""The grammar's masks as TokenMasks keeps them: what the grammar says, built once per state."""

from __future__ import annotations

import random
from fractions import Fraction

import torch

from engine.abc.bars import BarState
from engine.abc.token_masks import TokenMasks
from engine.models.continuation import FINISHING
from engine.models.tokenizer import CharTokenizer

ALPHABET = tuple(CharTokenizer().token_text)
FINISHING_TOKENS = torch.tensor([ch in FINISHING for ch in ALPHABET])


def walk(steps: int, seed: int) -> list[BarState]:
    """The states of random bar-exact walks through 3/4 bars (unit 1/8), `steps` in all."""
    rng = random.Random(seed)
    states: list[BarState] = []
    state = BarState(bar=Fraction(6), bars_left=4)
    while len(states) < steps:
        if state.done:
            state = BarState(bar=Fraction(6), bars_left=4)
        states.append(state)
        state = rng.choice([s for s in state.successors(ALPHABET) if s is not None])
    return states


def test_masks_say_what_the_grammar_says() -> None:
    masks = TokenMasks(ALPHABET, FINISHING_TOKENS)
    seen = {"forced": 0, "narrowed": 0}
    for state in walk(400, seed=1):
        mask = masks.of(state)
        allowed = torch.tensor([s is not None for s in state.successors(ALPHABET)])
        assert torch.equal(mask.allowed, allowed)
        assert mask.forced == (int(allowed.sum()) == 1)
        finishing = allowed & FINISHING_TOKENS
        assert torch.equal(mask.finishing, finishing if finishing.any() else allowed)
        seen["forced"] += mask.forced
        seen["narrowed"] += not torch.equal(mask.finishing, allowed)
    assert seen["forced"] and seen["narrowed"]  # both cases were met on the walk


def test_a_state_is_built_once() -> None:
    masks = TokenMasks(ALPHABET, FINISHING_TOKENS)
    state = BarState(bar=Fraction(6), bars_left=2)
    first = masks.of(state)
    assert masks.of(BarState(bar=Fraction(6), bars_left=2)) is first  # an equal state: a hit
    assert masks.of.cache_info().misses == 1
