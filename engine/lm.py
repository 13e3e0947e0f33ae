"""Incremental decoding: next-token logits with a cache, whatever the architecture.

GPT-2 keeps its keys and values, Mamba its recurrent state, so each new token costs the same
however long the prompt was. `decoder_for` picks the implementation for a model.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
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


def decoder_for(model: torch.nn.Module) -> CachedDecoder | MambaDecoder:
    """The fastest correct incremental decoder available for `model`."""
    if getattr(model.config, "model_type", None) == "mamba":
        from engine.mamba_fast import MambaDecoder

        return MambaDecoder(model)
    return CachedDecoder(model)
