"""Incremental decoding with a transformers model's own cache: the fallback of
`engine.models.lm.decoder_for`, and what `engine.models.mamba_fast` uses on mamba-ssm's kernels."""

from __future__ import annotations

import copy

import torch


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

    def fork(self) -> CachedDecoder:
        """A decoder that goes on from where this one stands, on its own copy of the cache."""
        twin = CachedDecoder(self.model)
        twin.cache = copy.deepcopy(self.cache)
        return twin

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
