"""Incremental decoding: next-token logits with a cache, whatever the architecture.

GPT-2 keeps its keys and values, Mamba its recurrent state, so a new token need not read the
prompt again. `decoder_for` picks the implementation for a model: the lean decoders of
engine.models.gpt2_fast and engine.models.mamba_fast, or transformers' own cache for any other
model.

A request's drafts (`engine.models.drafts`) go on from one reading of the prompt and part
ways. `rows_for` decodes them as rows: for a GPT-2, the rows of one batch
(`engine.models.gpt2_fast.GPT2Rows`), a token for every draft in one pass over the weights;
for other models, and for a single row, each on its own decoder.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, NamedTuple, Protocol

import torch

from engine.models.cached_decoder import CachedDecoder

if TYPE_CHECKING:
    from engine.models.gpt2_fast import GPT2Decoder
    from engine.models.mamba_fast import MambaDecoder

    Decoder = CachedDecoder | GPT2Decoder | MambaDecoder


class Feed(NamedTuple):
    """What one row reads before its next token: `tokens`, after what it has read, or from the
    start with `restart` (a continuation that outgrew the context reads its fitted text)."""

    tokens: list[int]
    restart: bool = False


class Rows(Protocol):
    """Several continuations of one prompt, decoded row by row or together."""

    def feed(self, feeds: Sequence[Feed | None]) -> list[torch.Tensor | None]:
        """Each row reads its feed (None: nothing); the logits for each fed row's next token
        (V,), None for the others."""
        ...


class SeparateRows:
    """Rows each on its own decoder, read one after another."""

    def __init__(self, decoder: Decoder, count: int, device: str) -> None:
        self.decoders = [decoder, *(decoder.fork() for _ in range(count - 1))]
        self.device = device

    def feed(self, feeds: Sequence[Feed | None]) -> list[torch.Tensor | None]:
        logits: list[torch.Tensor | None] = []
        for decoder, fed in zip(self.decoders, feeds, strict=True):
            if fed is None:
                logits.append(None)
                continue
            ids = torch.tensor([fed.tokens], device=self.device)
            read = decoder.prefill(ids) if fed.restart else \
                decoder.step(ids[0]) if len(fed.tokens) == 1 else decoder.extend(ids)
            logits.append(read[0])
        return logits


def sequence_logits(model: torch.nn.Module, ids: torch.Tensor) -> torch.Tensor:
    """The next-token logits at every position of ids (B, T) -> (B, T, V), in float32, for
    transformers' models and `engine.models.gpt2_fast.GPT2` alike."""
    from engine.models.gpt2_fast import GPT2

    if isinstance(model, GPT2):
        return model(ids)
    return model(input_ids=ids, use_cache=False).logits.float()


def decoder_for(model: torch.nn.Module, half: bool = False) -> Decoder:
    """The fastest correct incremental decoder available for `model`; `half`: a GPT-2's
    matrices read in float16 (`engine.models.gpt2_fast.Weights.halved`; others ignore it)."""
    from engine.models.gpt2_fast import GPT2Decoder, supports

    if supports(model):
        return GPT2Decoder(model, half)
    if getattr(getattr(model, "config", None), "model_type", None) == "mamba":
        from engine.models.mamba_fast import MambaDecoder

        return MambaDecoder(model)
    return CachedDecoder(model)


def rows_for(decoder: Decoder, count: int, device: str, positions: int) -> Rows:
    """`count` rows going on from what `decoder` (batch 1) has read, none to read past
    `positions`: one batch for a GPT-2's several rows, else each row on its own decoder (a
    single row keeps the decoder's own steps, float16 where it reads so)."""
    from engine.models.gpt2_fast import GPT2Decoder, GPT2Rows

    if isinstance(decoder, GPT2Decoder) and count > 1:
        return GPT2Rows(decoder, count, positions)
    return SeparateRows(decoder, count, device)
