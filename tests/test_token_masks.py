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


def walk(steps: int, seed: int, multi_rest: bool = False) -> list[BarState]:
    """The states of random bar-exact walks through six 3/4 bars (unit 1/8), `steps` in all;
    `multi_rest`: multi-bar rests may be written."""
    rng = random.Random(seed)
    states: list[BarState] = []

    def start() -> BarState:
        return BarState.start(bar=Fraction(6), bars_left=6, multi_rest=multi_rest)

    state = start()
    while len(states) < steps:
        if state.done:
            state = start()
        states.append(state)
        state = rng.choice([s for s in state.successors(ALPHABET) if s is not None])
    return states


def test_masks_say_what_the_grammar_says() -> None:
    """Also for states with more bars left than their mask's key (`BarState.masked_alike`),
    multi-bar rests among them."""
    masks = TokenMasks(ALPHABET, FINISHING_TOKENS)
    seen = {"forced": 0, "narrowed": 0, "keyed with fewer bars": 0}
    for state in walk(400, seed=1) + walk(400, seed=2, multi_rest=True):
        seen["keyed with fewer bars"] += state.masked_alike() != state
        mask = masks.of(state)
        allowed = torch.tensor([s is not None for s in state.successors(ALPHABET)])
        assert torch.equal(mask.allowed, allowed)
        assert mask.forced == (int(allowed.sum()) == 1)
        finishing = allowed & FINISHING_TOKENS
        assert torch.equal(mask.finishing, finishing if finishing.any() else allowed)
        seen["forced"] += mask.forced
        seen["narrowed"] += not torch.equal(mask.finishing, allowed)
    assert all(seen.values())  # every case was met on the walks


def test_a_state_is_built_once() -> None:
    masks = TokenMasks(ALPHABET, FINISHING_TOKENS)
    state = BarState.start(bar=Fraction(6), bars_left=2)
    first = masks.of(state)
    assert masks.of(BarState.start(bar=Fraction(6), bars_left=2)) is first  # an equal state: a hit
    assert masks.built.cache_info().misses == 1
    # Not the last bar either: the same mask. The last bar's is built (no tie out of it).
    assert masks.of(BarState.start(bar=Fraction(6), bars_left=5)) is first
    assert masks.built.cache_info().misses == 1
    masks.of(BarState.start(bar=Fraction(6), bars_left=1))
    assert masks.built.cache_info().misses == 2


def test_a_multi_bar_rest_counts_the_bars_left() -> None:
    """After `Z` the count may be any number of the bars left: the one case where more bars
    left than two change the mask."""
    masks = TokenMasks(ALPHABET, FINISHING_TOKENS)
    for left in (6, 3):
        state = BarState.start(bar=Fraction(6), bars_left=left, multi_rest=True).after("Z")
        assert state is not None
        allowed = masks.of(state).allowed
        digits = {text for text, ok in zip(ALPHABET, allowed.tolist(), strict=True)
                  if ok and text.isdigit()}
        assert digits == {str(n) for n in range(2, left + 1)}
