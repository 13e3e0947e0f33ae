"""Incremental decoding: next-token logits with a cache, whatever the architecture.

GPT-2 keeps its keys and values, Mamba its recurrent state, so a new token need not read the
prompt again. `decoder_for` picks the implementation for a model: the lean decoders of
engine.models.gpt2_fast and engine.models.mamba_fast, or transformers' own cache for any other
model.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from engine.models.cached_decoder import CachedDecoder

if TYPE_CHECKING:
    from engine.models.gpt2_fast import GPT2Decoder
    from engine.models.mamba_fast import MambaDecoder


def sequence_logits(model: torch.nn.Module, ids: torch.Tensor) -> torch.Tensor:
    """The next-token logits at every position of ids (B, T) -> (B, T, V), in float32, for
    transformers' models and `engine.models.gpt2_fast.GPT2` alike."""
    from engine.models.gpt2_fast import GPT2

    if isinstance(model, GPT2):
        return model(ids)
    return model(input_ids=ids, use_cache=False).logits.float()


def decoder_for(model: torch.nn.Module, half: bool = False
                ) -> CachedDecoder | GPT2Decoder | MambaDecoder:
    """The fastest correct incremental decoder available for `model`; `half`: a GPT-2's
    matrices read in float16 (`engine.models.gpt2_fast.Weights.halved`; others ignore it)."""
    from engine.models.gpt2_fast import GPT2Decoder, supports

    if supports(model):
        return GPT2Decoder(model, half)
    if getattr(getattr(model, "config", None), "model_type", None) == "mamba":
        from engine.models.mamba_fast import MambaDecoder

        return MambaDecoder(model)
    return CachedDecoder(model)
