"""The two architectures Segue trains, GPT-2 and Mamba (both from `transformers`), and presets.

A model is described by a small JSON-able dict (kept in every checkpoint's config.json):

    {"architecture": "gpt2" | "mamba", "vocab_size": 96, "layers": 8, "width": 256,
     "heads": 8, "positions": 2048, "dropout": 0.0}            # GPT-2
    {"architecture": "mamba", "vocab_size": 96, "layers": 15, "width": 256,
     "state_size": 16, "expand": 2}                             # Mamba

Presets give the study's two sizes of each (about 6M and 60M parameters with the 96-symbol
character vocabulary); `model_config` turns a preset and/or explicit sizes into such a dict,
and `build_model` makes the `transformers` model. No special tokens: tunes are separated by a
blank line (see `engine.abc.text.TUNE_SEPARATOR`).
"""

from __future__ import annotations

from typing import Any

import torch

from engine.errors import SegueError

PRESETS: dict[str, dict[str, Any]] = {
    "gpt2-6m": {"architecture": "gpt2", "layers": 8, "width": 256, "heads": 8},
    "gpt2-60m": {"architecture": "gpt2", "layers": 12, "width": 640, "heads": 10},
    "mamba-6m": {"architecture": "mamba", "layers": 15, "width": 256},
    "mamba-60m": {"architecture": "mamba", "layers": 23, "width": 640},
}
DEFAULTS: dict[str, dict[str, Any]] = {
    "gpt2": {"positions": 2048, "dropout": 0.0},
    "mamba": {"state_size": 16, "expand": 2},
}
SIZES = {"gpt2": ("layers", "width", "heads", "positions", "dropout"),
         "mamba": ("layers", "width", "state_size", "expand")}


def model_config(preset: str | None = None, *, vocab_size: int, architecture: str | None = None,
                 **sizes: Any) -> dict[str, Any]:
    """A model description from a preset, overridden by any of `sizes` that are not None.

    `sizes` keys: layers, width, heads, positions, dropout (GPT-2), state_size, expand (Mamba).
    Without a preset, `architecture` and at least layers and width are needed.
    """
    if preset is not None and preset not in PRESETS:
        raise SegueError(f"unknown preset {preset!r}; choose one of {', '.join(PRESETS)}")
    config: dict[str, Any] = dict(PRESETS[preset]) if preset else {}
    if architecture is not None:
        if preset and architecture != config["architecture"]:
            raise SegueError(f"preset {preset} is a {config['architecture']} model, "
                             f"not {architecture}")
        config["architecture"] = architecture
    arch = config.get("architecture")
    if arch not in DEFAULTS:
        raise SegueError("name a preset, or an architecture (gpt2 or mamba) with its sizes")
    config = {**DEFAULTS[arch], **config, "vocab_size": vocab_size}
    for name, value in sizes.items():
        if value is not None:
            if name not in SIZES[arch]:
                raise SegueError(f"a {arch} model has no {name.replace('_', ' ')} to set")
            config[name] = value
    if arch == "gpt2":
        config.setdefault("heads", max(1, config.get("width", 0) // 64))
    missing = [k for k in ("layers", "width") if not config.get(k)]
    if missing:
        raise SegueError(f"a {arch} model needs --{' and --'.join(missing)} (or a --preset)")
    if arch == "gpt2" and config["width"] % config["heads"]:
        raise SegueError(f"width {config['width']} is not divisible by {config['heads']} heads")
    return config


# a GPT2Config or a MambaConfig, typed Any: build_model passes it to the matching model class
def hf_config(config: dict[str, Any]) -> Any:
    """The `transformers` configuration object for a model description."""
    from transformers import GPT2Config, MambaConfig

    no_special: dict[str, Any] = {"bos_token_id": None, "eos_token_id": None, "pad_token_id": None}
    if config["architecture"] == "gpt2":
        p = config["dropout"]
        return GPT2Config(vocab_size=config["vocab_size"], n_layer=config["layers"],
                          n_embd=config["width"], n_head=config["heads"],
                          n_positions=config["positions"], resid_pdrop=p, embd_pdrop=p,
                          attn_pdrop=p, **no_special)
    return MambaConfig(vocab_size=config["vocab_size"], hidden_size=config["width"],
                       num_hidden_layers=config["layers"], state_size=config["state_size"],
                       expand=config["expand"], **no_special)


def build_model(config: dict[str, Any]) -> torch.nn.Module:
    """A freshly initialized model for a description made by `model_config`."""
    from transformers import GPT2LMHeadModel, MambaForCausalLM

    if config["architecture"] == "gpt2":
        return GPT2LMHeadModel(hf_config(config))
    from engine.models.mamba_fast import accelerate

    model = MambaForCausalLM(hf_config(config))
    # The one place Mamba models are made (training and checkpoints alike): mamba-ssm's
    # kernels on CUDA where installed, else the chunked scan; parameters unchanged.
    accelerate(model)
    return model


def count_parameters(model: torch.nn.Module) -> int:
    """Distinct parameters (tied input and output embeddings counted once)."""
    return sum(p.numel() for p in model.parameters())
