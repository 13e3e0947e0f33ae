"""GPT-2 for inference in plain PyTorch: a checkpoint's weights without transformers.

transformers' `GPT2LMHeadModel` is the model Segue trains. Using it for inference costs more
than its arithmetic: importing transformers takes seconds of CPU when `segue continue` starts,
and its module, mask and cache machinery made a token of the 6.9M default model cost 3.4-4.0 ms
on one thread of a busy 2-core machine, where this module's step takes 2.1-2.4 ms (most of it
the matrix products, reading 25 MB of weights). This module computes the same numbers from
the same weights without either:

- `GPT2`: the model as a plain `torch.nn.Module` whose parameters have transformers' names and
  shapes (Conv1D weights stored input-major, the output layer tied to the token embedding), so
  a checkpoint's model.safetensors loads into it as it is. `forward(ids)` gives the logits at
  every position (for evaluation); nothing here trains.
- `GPT2Decoder`: incremental decoding, the interface of `engine.models.lm.CachedDecoder`. `prefill`
  reads a batch of prompts with causal attention and keeps every layer's keys and values in
  one preallocated buffer; `step` writes one token's key and value in place and attends over
  the buffer, in about sixteen tensor operations a layer; `extend` reads several tokens in one
  pass (forced text, such as a voice given note for note, costs about one step); `fork` copies
  what was read, so that a prompt read once is continued several ways (drafts). It runs on
  this module's `GPT2` and on transformers' own `GPT2LMHeadModel` alike (the same parameter
  names). With `half`, single steps read the blocks' matrices in float16 (`Weights.halved`):
  the values a float16 checkpoint ships, in half the bytes, so a step of the default model
  takes about a quarter less time on a CPU, where reading the weights is most of it; their
  logits differ from float32's by the rounding of the activations to float16 (about 0.002 on
  the default model). Prompts and several tokens at once stay in float32: for them the CPU's
  float16 products are 3 to 4 times slower.
- `GPT2Rows`: several continuations of one prompt decoded as the rows of one batch, each at
  its own length (a request's drafts, `engine.models.lm.rows_for`). A token for every row costs
  one pass over the weights: for the default model, 8 rows take about 10 ms a token where 8
  single steps take about 16 ms (float32: the CPU's float16 products are slow for several rows).

The architecture is what Segue's checkpoints describe (engine.models.model.hf_config): transformers'
GPT-2 defaults, that is layer norm epsilon 1e-5, the tanh GELU ("gelu_new"), attention scaled
by 1/sqrt(head size), an inner width of 4 x width. `supports` says whether a transformers model
is of that kind.
"""

from __future__ import annotations

import copy
import weakref
from collections.abc import Sequence
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

EPS = 1e-5  # GPT2Config.layer_norm_epsilon, kept by every Segue model
MATRICES = ("qkv", "proj", "fc", "out")  # of a block, each with its "<name>_bias"


class Conv1D(nn.Module):
    """transformers' Conv1D: a linear layer whose weight is stored (inputs, outputs)."""

    def __init__(self, inputs: int, outputs: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(inputs, outputs))
        self.bias = nn.Parameter(torch.empty(outputs))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        flat = torch.addmm(self.bias, x.reshape(-1, x.shape[-1]), self.weight)
        return flat.view(*x.shape[:-1], -1)


def _module(**children: nn.Module) -> nn.Module:
    """A bare module holding `children` under their names (the layout of parameter names)."""
    module = nn.Module()
    for name, child in children.items():
        module.add_module(name, child)
    return module


def _block(width: int) -> nn.Module:
    return _module(ln_1=nn.LayerNorm(width, eps=EPS),
                   attn=_module(c_attn=Conv1D(width, 3 * width), c_proj=Conv1D(width, width)),
                   ln_2=nn.LayerNorm(width, eps=EPS),
                   mlp=_module(c_fc=Conv1D(width, 4 * width), c_proj=Conv1D(4 * width, width)))


class GPT2(nn.Module):
    """GPT-2 with a language-model head, built from a Segue model description (engine.models.model).

    Parameters are left uninitialised: load a checkpoint's weights into them
    (`engine.models.checkpoint.load_weights`).
    """

    def __init__(self, config: dict[str, Any]) -> None:
        super().__init__()
        width, vocab = int(config["width"]), int(config["vocab_size"])
        self.heads = int(config["heads"])
        if width % self.heads:
            raise ValueError(f"width {width} is not divisible by {self.heads} heads")
        wte = nn.Embedding(vocab, width, _weight=torch.empty(vocab, width))
        self.transformer = _module(
            wte=wte,
            wpe=nn.Embedding(int(config["positions"]), width,
                             _weight=torch.empty(int(config["positions"]), width)),
            h=nn.ModuleList(_block(width) for _ in range(int(config["layers"]))),
            ln_f=nn.LayerNorm(width, eps=EPS),
        )
        self.lm_head = nn.Linear(width, vocab, bias=False, device="meta")
        self.lm_head.weight = wte.weight  # tied, as in transformers

    @torch.inference_mode()
    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        """The next-token logits at every position of a batch of sequences (B, T) -> (B, T, V)."""
        weights = Weights.of(self)
        hidden = weights.embed(ids, 0)
        for layer in weights.layers:
            hidden = _sequence_block(layer, hidden, weights.heads)
        return weights.logits(hidden)


class _Layer(NamedTuple):
    """One block's weights. Conv1D weights are (inputs, outputs): x @ weight + bias; in a
    halved layer, float16 and (outputs, inputs) (`_affine`)."""

    ln_1: torch.Tensor
    ln_1_bias: torch.Tensor
    qkv: torch.Tensor
    qkv_bias: torch.Tensor
    proj: torch.Tensor
    proj_bias: torch.Tensor
    ln_2: torch.Tensor
    ln_2_bias: torch.Tensor
    fc: torch.Tensor
    fc_bias: torch.Tensor
    out: torch.Tensor
    out_bias: torch.Tensor

    @classmethod
    def of(cls, block: Any) -> _Layer:
        attn, mlp = block.attn, block.mlp
        return cls(block.ln_1.weight, block.ln_1.bias, attn.c_attn.weight, attn.c_attn.bias,
                   attn.c_proj.weight, attn.c_proj.bias, block.ln_2.weight, block.ln_2.bias,
                   mlp.c_fc.weight, mlp.c_fc.bias, mlp.c_proj.weight, mlp.c_proj.bias)


class Weights(NamedTuple):
    """A GPT-2's weights, gathered once per prompt so that a step does no module lookups."""

    tokens: torch.Tensor  # wte, also the output layer
    positions: torch.Tensor  # wpe
    ln_f: torch.Tensor
    ln_f_bias: torch.Tensor
    layers: list[_Layer]
    heads: int

    @classmethod
    def of(cls, model: nn.Module) -> Weights:
        """The weights of this module's `GPT2` or of transformers' `GPT2LMHeadModel`."""
        found: Any = model
        heads = found.heads if isinstance(model, GPT2) else found.config.n_head
        body = found.transformer
        return cls(body.wte.weight, body.wpe.weight, body.ln_f.weight, body.ln_f.bias,
                   [_Layer.of(block) for block in body.h], int(heads))

    def embed(self, ids: torch.Tensor, start: int | torch.Tensor) -> torch.Tensor:
        """Token plus position embeddings for ids (B, T) placed from position `start`, or at
        the positions (B, T) given."""
        if isinstance(start, torch.Tensor):
            return F.embedding(ids, self.tokens) + self.positions[start]
        end = start + ids.shape[-1]
        if end > self.positions.shape[0]:
            raise ValueError(f"position {end - 1} is beyond the model's "
                             f"{self.positions.shape[0]} positions")
        return F.embedding(ids, self.tokens) + self.positions[start:end]

    def logits(self, hidden: torch.Tensor) -> torch.Tensor:
        hidden = F.layer_norm(hidden, hidden.shape[-1:], self.ln_f, self.ln_f_bias, EPS)
        return F.linear(hidden, self.tokens).float()

    def halved(self) -> Weights:
        """These weights with the blocks' matrices and their biases in float16, each matrix
        stored (outputs, inputs), the layout that float16 products read fastest; embeddings
        and layer norms stay as they are."""
        def half(layer: _Layer) -> _Layer:
            changed = {}
            for name in MATRICES:
                changed[name] = getattr(layer, name).t().contiguous().half()
                changed[f"{name}_bias"] = getattr(layer, f"{name}_bias").half()
            return layer._replace(**changed)

        return self._replace(layers=[half(layer) for layer in self.layers])


# The halved weights of each model decoded with `half`, made once: the key is where its
# float32 matrices live, so a model moved to another device is halved again.
_HALVED: weakref.WeakKeyDictionary[nn.Module, tuple[tuple[int, ...], Weights]] = \
    weakref.WeakKeyDictionary()


def halved_weights(model: nn.Module) -> Weights:
    """`Weights.of(model).halved()`, kept for the next call while the model stays put."""
    weights = Weights.of(model)
    key = tuple(getattr(layer, name).data_ptr() for layer in weights.layers
                for name in MATRICES)
    kept = _HALVED.get(model)
    if kept is None or kept[0] != key:
        kept = _HALVED[model] = (key, weights.halved())
    return kept[1]


def _affine(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """x @ weight + bias for one float32 row per sequence: a float32 weight is stored (inputs,
    outputs), a float16 one (outputs, inputs) and computed in float16."""
    if weight.dtype == torch.float16:
        return F.linear(x.half(), weight, bias).float()
    return torch.addmm(bias, x, weight)


class _Places(NamedTuple):
    """Where the new tokens of rows at their own lengths go: `slots` (B, T), each token's
    place in its row's cache (a pad's: the spare slot past the last position, which no query
    reads); `seen` (B, 1, T, end), the keys each token attends to."""

    slots: torch.Tensor
    seen: torch.Tensor


def _sequence_block(layer: _Layer, hidden: torch.Tensor, heads: int,
                    cache: torch.Tensor | None = None, start: int = 0,
                    places: _Places | None = None) -> torch.Tensor:
    """One block over new tokens (B, T, C) at positions start.. (causal attention), or at
    each row's own `places`.

    cache: the layer's keys and values (B, 2, heads, positions, head size): the new ones are
    written into it and attention also reads the `start` before them. None: a whole sequence.
    """
    batch, steps, width = hidden.shape
    x = F.layer_norm(hidden, (width,), layer.ln_1, layer.ln_1_bias, EPS)
    qkv = torch.addmm(layer.qkv_bias, x.view(batch * steps, width), layer.qkv)
    q, k, v = qkv.view(batch, steps, 3, heads, width // heads).permute(2, 0, 3, 1, 4).unbind(0)
    if cache is not None and places is not None:
        rows = torch.arange(batch, device=q.device)[:, None].expand(batch, steps)
        cache[rows, 0, :, places.slots] = k.transpose(1, 2)
        cache[rows, 1, :, places.slots] = v.transpose(1, 2)
        end = places.seen.shape[-1]
        k, v = cache[:, 0, :, :end], cache[:, 1, :, :end]
        mask: torch.Tensor | None = places.seen
    else:
        if cache is not None:
            end = start + steps
            cache[:, 0, :, start:end] = k
            cache[:, 1, :, start:end] = v
            k, v = cache[:, 0, :, :end], cache[:, 1, :, :end]
        # query i sees keys up to start + i
        mask = torch.ones(steps, start + steps, dtype=torch.bool, device=q.device).tril(start) \
            if start else None
    attended = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=mask is None)
    attended = attended.transpose(1, 2).reshape(batch * steps, width)
    hidden = torch.addmm(layer.proj_bias, attended, layer.proj).view(batch, steps, width) + hidden
    x = F.layer_norm(hidden, (width,), layer.ln_2, layer.ln_2_bias, EPS)
    x = F.gelu(torch.addmm(layer.fc_bias, x.view(batch * steps, width), layer.fc),
               approximate="tanh")
    return torch.addmm(layer.out_bias, x, layer.out).view(batch, steps, width) + hidden


def supports(model: nn.Module) -> bool:
    """Whether `GPT2Decoder` computes exactly what `model` computes (this module's GPT2, or a
    transformers GPT-2 with the defaults Segue's models keep)."""
    if isinstance(model, GPT2):
        return True
    config: Any = getattr(model, "config", None)
    if getattr(config, "model_type", None) != "gpt2":
        return False
    return bool(config.activation_function == "gelu_new" and config.scale_attn_weights
                and not config.scale_attn_by_inverse_layer_idx
                and not config.reorder_and_upcast_attn and not config.add_cross_attention
                and config.n_inner in (None, 4 * config.n_embd)
                and config.layer_norm_epsilon == EPS)


class GPT2Decoder:
    """Incremental decoding for a GPT-2 (`GPT2` or transformers' `GPT2LMHeadModel`).

    Keys and values live in one buffer (batch, 2, heads, positions, head size) per layer,
    allocated by `prefill` (positions: the model's) and kept for the next prompt of the same
    batch size; `step` and `extend` write into it at the next positions. `half`: `step` reads
    the blocks' matrices in float16 (`Weights.halved`).
    """

    def __init__(self, model: nn.Module, half: bool = False) -> None:
        self.model = model
        self.half = half
        self.weights = Weights.of(model)
        self.step_weights = halved_weights(model) if half else self.weights
        self.caches: list[torch.Tensor] = []
        self.length = 0

    @torch.inference_mode()
    def prefill(self, ids: torch.Tensor) -> torch.Tensor:
        """Read a batch of prompts (B, T); return the logits for the next token (B, V)."""
        self.weights = weights = Weights.of(self.model)  # the model may have moved
        self.step_weights = halved_weights(self.model) if self.half else weights
        positions, width = weights.positions.shape
        shape = (ids.shape[0], 2, weights.heads, positions, width // weights.heads)
        if not self.caches or self.caches[0].shape != shape or \
                self.caches[0].device != weights.tokens.device:
            self.caches = [weights.tokens.new_empty(shape) for _ in weights.layers]
        self.length = 0
        return self.extend(ids)

    def fork(self) -> GPT2Decoder:
        """A decoder that goes on from where this one stands, on its own copy of the keys and
        values read so far (a prompt read once, then continued several ways)."""
        twin = copy.copy(self)
        twin.caches = []
        for cache in self.caches:
            twin.caches.append(cache.new_empty(cache.shape))
            twin.caches[-1][:, :, :, :self.length] = cache[:, :, :, :self.length]
        return twin

    @torch.inference_mode()
    def extend(self, ids: torch.Tensor) -> torch.Tensor:
        """Feed several tokens per sequence (B, T) at once; return the logits after the last
        (B, V). The same numbers as T steps, for about the cost of one."""
        weights, start = self.weights, self.length
        hidden = weights.embed(ids, start)
        for layer, cache in zip(weights.layers, self.caches, strict=True):
            hidden = _sequence_block(layer, hidden, weights.heads, cache, start)
        self.length = start + ids.shape[1]
        return weights.logits(hidden[:, -1])

    @torch.inference_mode()
    def step(self, ids: torch.Tensor) -> torch.Tensor:
        """Feed one token per sequence (B,); return the logits for the next token (B, V)."""
        weights, position = self.step_weights, self.length
        hidden = weights.embed(ids[:, None], position)[:, 0]
        batch, width = hidden.shape
        heads = weights.heads
        size = width // heads
        end = position + 1
        for layer, cache in zip(weights.layers, self.caches, strict=True):
            x = F.layer_norm(hidden, (width,), layer.ln_1, layer.ln_1_bias, EPS)
            qkv = _affine(x, layer.qkv, layer.qkv_bias)
            cache[:, :, :, position].copy_(qkv.view(batch, 3, heads, size)[:, 1:])
            attended = F.scaled_dot_product_attention(
                qkv[:, :width].view(batch, heads, 1, size), cache[:, 0, :, :end],
                cache[:, 1, :, :end])
            hidden = _affine(attended.view(batch, width), layer.proj,
                             layer.proj_bias).add_(hidden)
            x = F.layer_norm(hidden, (width,), layer.ln_2, layer.ln_2_bias, EPS)
            x = F.gelu(_affine(x, layer.fc, layer.fc_bias), approximate="tanh")
            hidden = _affine(x, layer.out, layer.out_bias).add_(hidden)
        self.length = end
        return weights.logits(hidden)


class GPT2Rows:
    """Continuations of one prompt decoded together, each row at its own length.

    Made from a `GPT2Decoder` that has read the prompt (batch 1): every row starts from a copy
    of what it read. `feed` gives each row its own tokens, or none (the row waits): they go at
    that row's next positions, and its attention reads its own keys only. A row fed with
    `restart` forgets what it read and reads its tokens from position 0 (a continuation that
    outgrew the context). Rows fed a few tokens each are read together; a row fed more than
    `TOGETHER` is read alone (a view of the shared buffer), so that one long read does not
    pad every other row.
    """

    TOGETHER = 4

    def __init__(self, decoder: GPT2Decoder, count: int, positions: int) -> None:
        """`count` rows from what `decoder` has read, none to read past `positions`."""
        self.weights = decoder.weights  # float32: float16 products of several rows are slow
        self.positions = min(positions, self.weights.positions.shape[0])
        self.caches = []
        for cache in decoder.caches:  # one spare slot past the last position, for pads
            rows = cache.new_zeros(count, *cache.shape[1:3], self.positions + 1, cache.shape[4])
            rows[:, :, :, :decoder.length] = cache[:1, :, :, :decoder.length]
            self.caches.append(rows)
        self.lengths = [decoder.length] * count

    @torch.inference_mode()
    def feed(self, feeds: Sequence[tuple[list[int], bool] | None]) -> list[torch.Tensor | None]:
        """Each row reads its feed, (tokens, restart) (`engine.models.lm.Feed`; None:
        nothing); the logits for each fed row's next token (V,), None for the others."""
        logits: list[torch.Tensor | None] = [None] * len(feeds)
        together: list[list[int]] = []
        for row, fed in enumerate(feeds):
            tokens, restart = fed if fed is not None else ([], False)
            if restart:
                self.lengths[row] = 0
            if len(tokens) > self.TOGETHER:
                logits[row] = self._read(row, [tokens])[0]
                tokens = []
            together.append(tokens)
        if any(together):
            read = self._read(0, together)
            for row, tokens in enumerate(together):
                if tokens:
                    logits[row] = read[row]
        return logits

    def _read(self, first: int, tokens: list[list[int]]) -> torch.Tensor:
        """Rows first, first + 1, ... read their tokens (some none) together: the logits after
        each row's last token (B, V)."""
        weights, rows = self.weights, slice(first, first + len(tokens))
        lengths, counts = self.lengths[rows], [len(fed) for fed in tokens]
        steps = max(counts)
        device = weights.tokens.device
        ids = torch.tensor([fed + [0] * (steps - len(fed)) for fed in tokens], device=device)
        caches = [cache[rows] for cache in self.caches]
        end = max(length + count for length, count in zip(lengths, counts, strict=True))
        if end > self.positions:
            raise ValueError(f"position {end - 1} is beyond the rows' {self.positions}")
        if len(set(lengths)) == 1 and len(set(counts)) == 1:  # in step: the plain batch
            hidden = weights.embed(ids, lengths[0])
            for layer, cache in zip(weights.layers, caches, strict=True):
                hidden = _sequence_block(layer, hidden, weights.heads, cache, lengths[0])
        else:
            offsets = torch.arange(steps, device=device)
            positions = torch.tensor(lengths, device=device)[:, None] + offsets
            real = offsets < torch.tensor(counts, device=device)[:, None]
            places = _Places(torch.where(real, positions, self.positions),
                             (torch.arange(end, device=device) <= positions[..., None])[:, None])
            hidden = weights.embed(ids, torch.where(real, positions, 0))
            for layer, cache in zip(weights.layers, caches, strict=True):
                hidden = _sequence_block(layer, hidden, weights.heads, cache, places=places)
        for row, count in enumerate(counts):
            self.lengths[first + row] += count
        last = torch.tensor(counts, device=device).sub(1).clamp(min=0)
        return weights.logits(hidden[torch.arange(len(tokens), device=device), last])


__all__ = ["GPT2", "GPT2Decoder", "GPT2Rows", "Weights", "supports"]
