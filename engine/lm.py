"""Incremental decoding: next-token logits with a cache, whatever the architecture.

GPT-2 keeps its keys and values, Mamba its recurrent state, so a new token need not read the
prompt again. `decoder_for` picks the implementation for a model: the lean decoders of
engine.gpt2_fast and engine.mamba_fast, or transformers' own cache for any other model.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from engine.gpt2_fast import GPT2Decoder
    from engine.mamba_fast import MambaDecoder


class CachedDecoder:
    """Decodes with a transformers model's own cache (GPT-2's keys/values, Mamba's state)."""

    def __init__(self, model: torch.nn.Module) -> None:
        self.model = model
        self.cache = None

    @torch.inference_mode()
    def prefill(self, ids: torch.Tensor) -> torch.Tensor:
        """Read a batch of prompts (B, T); return the logits for the next token (B, V)."""
        out = self.model(input_ids=ids, use_cache=True)
        self.cache = out.cache
        return out.logits[:, -1].float()

    @torch.inference_mode()
    def step(self, ids: torch.Tensor) -> torch.Tensor:
        """Feed one token per sequence (B,); return the logits for the next token (B, V)."""
        out = self.model(input_ids=ids[:, None], cache=self.cache, use_cache=True)
        self.cache = out.cache
        return out.logits[:, -1].float()

    def extend(self, ids: torch.Tensor) -> torch.Tensor:
        """Feed several tokens per sequence (B, T); return the logits after the last (B, V).

        One step at a time: transformers' Mamba ignores its cached state when it reads
        several tokens at once."""
        for column in ids.unbind(1):
            logits = self.step(column)
        return logits


def sequence_logits(model: torch.nn.Module, ids: torch.Tensor) -> torch.Tensor:
    """The next-token logits at every position of ids (B, T) -> (B, T, V), in float32, for
    transformers' models and `engine.gpt2_fast.GPT2` alike."""
    from engine.gpt2_fast import GPT2

    if isinstance(model, GPT2):
        return model(ids)
    return model(input_ids=ids, use_cache=False).logits.float()


def decoder_for(model: torch.nn.Module) -> CachedDecoder | GPT2Decoder | MambaDecoder:
    """The fastest correct incremental decoder available for `model`."""
    from engine.gpt2_fast import GPT2Decoder, supports

    if supports(model):
        return GPT2Decoder(model)
    if getattr(getattr(model, "config", None), "model_type", None) == "mamba":
        from engine.mamba_fast import MambaDecoder

        return MambaDecoder(model)
    return CachedDecoder(model)
