"""The tokens a grammar state allows, as tensors made once per state.

Bar-exact decoding masks the model's logits before every token with what the grammar
(engine.abc.bars) allows next. Walking the alphabet for a new state and turning the answer into a
tensor every token costs more than sampling, and many states come back (every bar starts
alike, tunes repeat). `TokenMasks` keeps, for each state it has seen, the
allowed-token mask, the same mask narrowed to the tokens that finish bars quickly (a segment
that runs past its budget), and whether exactly one token is allowed (the model need not be
read before writing it).

The states that follow are not kept: the decoder makes the one for the token it draws
(`BarState.after`). Keeping every successor cost about 28 kB a state, and a server's model
process grew by 350 MB before the cache was full.

States are the cache keys: any hashable state with `successors(alphabet)` and
`masked_alike()` (an equal-masked state, the key: `BarState.masked_alike` drops the bars left
where they do not matter) will do.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any, NamedTuple

import torch

# States kept. An entry is its state (about 1.2 kB of Python objects, by tracemalloc) and two
# small tensors. About half the lookups of a request hit (a state holds the time in the bar
# and the accidentals and ties in force; a third before masks were shared across bars), and
# 4,096 states decode as fast as 20,000 did (measured: 3% apart, within the noise).
STATES = 4_096


class Mask(NamedTuple):
    """What a grammar state allows next."""

    allowed: torch.Tensor  # bool, one per token
    finishing: torch.Tensor  # `allowed` within the finishing tokens, or `allowed` if none is
    forced: bool  # exactly one token is allowed


class TokenMasks:
    """The masks of grammar states over one alphabet, built once per state.

    `finishing`: bool per token, the tokens that can only finish bars quickly.
    """

    def __init__(self, alphabet: tuple[str, ...], finishing: torch.Tensor,
                 states: int = STATES) -> None:
        self.alphabet = alphabet
        self.finishing_tokens = finishing
        self.built = lru_cache(maxsize=states)(self._build)

    def of(self, state: Any) -> Mask:
        """What `state` allows next."""
        return self.built(state.masked_alike())

    def _build(self, state: Any) -> Mask:
        allowed = torch.tensor([s is not None for s in state.successors(self.alphabet)])
        finishing = allowed & self.finishing_tokens
        return Mask(allowed, finishing if bool(finishing.any()) else allowed,
                    int(allowed.sum()) == 1)
