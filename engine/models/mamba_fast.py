"""Mamba at full speed without the CUDA kernels: a chunked selective scan and a lean decoder.

transformers' `MambaForCausalLM` uses the `mamba-ssm` kernels when they are installed and the
model runs on CUDA. Everywhere else it falls back to a reference loop that materialises the
discretised state for every step, batch row, channel and state dimension and walks it in
Python (about 140 s for one training step of the 6M model at 16 x 256 on one CPU thread).
This module gives the same numbers, on the same weights, much faster:

- `selective_scan`: the recurrence h_t = exp(dt_t A) h_{t-1} + dt_t x_t B_t, y_t = C_t . h_t,
  walked a chunk of time steps at a time. Each chunk's decays and inputs are formed in one
  vectorised pass into reused buffers sized for a core's L2 cache, the recurrence runs in place
  (one fused multiply-add per step, on a (batch, channels, state) slab), and the outputs come
  out of one batched matmul.
  Only exp(dt A) with dt A <= 0 is ever taken, so nothing can overflow however large dt gets
  (the cumulative-sum trick exp(-cumsum(dt A)) can). The backward pass is written by hand: it
  keeps only the inputs and one state per chunk of at least 8 steps, recomputes the chunk's
  states, runs the adjoint recurrence backwards and forms every gradient with a few vectorised
  passes and batched matmuls, so a layer keeps about twice its input's size for the backward
  pass where the reference keeps a state for every step (gigabytes).
- `accelerate(model)` swaps that path into a transformers Mamba model in place (each mixer's
  class becomes `FastMambaMixer`; no parameter is renamed or reshaped, so checkpoints load
  unchanged everywhere). On CUDA with `mamba-ssm` installed the mixers keep transformers' own
  kernel path; the choice is made per call from the device, and logged once (logger "segue").
- `MambaDecoder`: `prefill(ids)` reads the prompt with the chunked scan and keeps each layer's
  (conv window, SSM state); `step(ids)` advances one token with a handful of tensor operations
  per layer, outside transformers' module and cache machinery, so a token costs the same at
  any prompt length; `extend(ids)` reads several more tokens with the chunked scan.

transformers' own full-sequence path ignores a cached SSM state (its kernels take none); this
one continues from it, so reading a prompt in several pieces gives the same result as reading
it at once.
"""

from __future__ import annotations

import copy
import functools
import importlib.util
import logging
import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NamedTuple

import torch
import torch.nn.functional as F
from transformers.models.mamba.modeling_mamba import MambaMixer, apply_mask_to_padding_states

if TYPE_CHECKING:
    from transformers.cache_utils import Cache

    from engine.models.cached_decoder import CachedDecoder

log = logging.getLogger("segue")

# Elements (time x batch x channels x state) a chunk's working buffers hold: about 1 MB each,
# so the chunk's passes stay in a CPU core's L2 cache.
CHUNK_ELEMENTS = 1 << 18
MAX_CHUNK = 128
# Training keeps each chunk's starting state for the backward pass; chunks of at least 8 steps
# keep that to 2 floats per step and channel (state_size 16), no more than the other activations.
MIN_TRAINING_CHUNK = 8
LOG2E = math.log2(math.e)

KERNELS = "mamba-ssm kernels"
_logged: set[str] = set()


# --------------------------------------------------------------------------- the scan
#
# Inside, time is the leading dimension (each step's slab is contiguous) and a state is laid
# out (batch, state_size, channels): channels innermost, so that every broadcast and reduction
# runs along a long contiguous row. The public functions take transformers' layouts.


def _chunk_length(batch: int, channels: int, state: int, steps: int, training: bool) -> int:
    length = CHUNK_ELEMENTS // (batch * channels * state)
    if training:
        length = max(length, MIN_TRAINING_CHUNK)
    return max(1, min(steps, MAX_CHUNK, length))


def _time_major(t: torch.Tensor) -> torch.Tensor:
    return t.transpose(0, 1).contiguous()


def _chunk_states(dt: torch.Tensor, dtx: torch.Tensor, At: torch.Tensor, B: torch.Tensor,
                  h: torch.Tensor, decay: torch.Tensor, states: torch.Tensor) -> None:
    """One chunk's decays exp(dt A) into `decay`, and its states from state h into `states`.

    dt and dtx = dt * x: (n, b, d); At: (state, d); B: (n, b, state); h: (b, state, d);
    decay, states: (n, b, state, d) buffers. The decays are taken as exp2(dt A log2 e): the
    same numbers, and on CPUs torch's exp2 kernel is about three times faster than its exp.
    """
    torch.mul(dt[:, :, None, :], At * LOG2E, out=decay).exp2_()
    torch.mul(B[:, :, :, None], dtx[:, :, None, :], out=states)
    a, hs = decay.unbind(0), states.unbind(0)
    hs[0].addcmul_(a[0], h)
    for i in range(1, len(hs)):
        hs[i].addcmul_(a[i], hs[i - 1])


def _scan_forward(x: torch.Tensor, dt: torch.Tensor, At: torch.Tensor, B: torch.Tensor,
                  C: torch.Tensor, h0: torch.Tensor, keep_starts: bool,
                  ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The recurrence over time-major inputs: x, dt (T, b, d); B, C (T, b, state).

    At: (state, d); h0: (b, state, d). Returns y (T, b, d), the last state, and each chunk's
    starting state when asked (the backward pass starts from them).
    """
    steps, batch, channels = x.shape
    length = _chunk_length(batch, channels, At.shape[0], steps, training=keep_starts)
    decay = x.new_empty(length, batch, *At.shape)
    states = torch.empty_like(decay)
    dtx = dt * x
    y = x.new_empty(steps, batch, 1, channels)
    chunks = range(0, steps, length)
    starts = x.new_empty(len(chunks) if keep_starts else 0, *h0.shape)
    h, last = h0, torch.empty_like(h0)
    for index, s in enumerate(chunks):
        e = min(steps, s + length)
        hs = states[: e - s]
        if keep_starts:
            starts[index] = h
        _chunk_states(dt[s:e], dtx[s:e], At, B[s:e], h, decay[: e - s], hs)
        h = last.copy_(hs[-1])
        torch.matmul(C[s:e, :, None, :], hs, out=y[s:e])
    return y[:, :, 0], h, starts


def _scan_backward(gy: torch.Tensor, gh: torch.Tensor, x: torch.Tensor, dt: torch.Tensor,
                   At: torch.Tensor, B: torch.Tensor, C: torch.Tensor, starts: torch.Tensor,
                   ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor,
                              torch.Tensor, torch.Tensor]:
    """Gradients of the scan (time-major, as `_scan_forward`), chunk by chunk backwards.

    Each chunk's states are recomputed from its starting state. With the adjoint
    G_t = dL/dh_t = C_t gy_t + exp(dt_{t+1} A) G_{t+1} and P_t = G_t exp(dt_t A) h_{t-1}:
    dL/dx_t = dt_t (G_t . B_t), dL/ddt_t = x_t (G_t . B_t) + sum_n P_t A,
    dL/dA = sum_t P_t dt_t, dL/dB_t = sum_d G_t dt_t x_t, dL/dC_t = sum_d gy_t h_t,
    dL/dh0 = exp(dt_0 A) G_0. The sums over d and n are batched matmuls.
    """
    steps, batch, channels = x.shape
    length = _chunk_length(batch, channels, At.shape[0], steps, training=True)
    decay = x.new_empty(length, batch, *At.shape)
    states, adjoint, scratch = (torch.empty_like(decay) for _ in range(3))
    dtx = dt * x
    gx, gdt = torch.empty_like(x), torch.empty_like(dt)
    gB, gC = torch.empty_like(B)[:, :, None], torch.empty_like(C)[:, :, None]
    gb = x.new_empty(length, batch, 1, channels)
    gAt = torch.zeros_like(At)
    carry, carried = gh, torch.empty_like(gh)
    for index in reversed(range(len(starts))):
        s = index * length
        e = min(steps, s + length)
        a, hs, g, tmp = decay[: e - s], states[: e - s], adjoint[: e - s], scratch[: e - s]
        _chunk_states(dt[s:e], dtx[s:e], At, B[s:e], starts[index], a, hs)
        torch.mul(C[s:e, :, :, None], gy[s:e, :, None, :], out=g)
        decays, adjoints = a.unbind(0), g.unbind(0)
        adjoints[-1].add_(carry)
        for i in range(e - s - 2, -1, -1):
            adjoints[i].addcmul_(decays[i + 1], adjoints[i + 1])
        carry = torch.mul(decays[0], adjoints[0], out=carried)
        torch.matmul(gy[s:e, :, None, :], hs.transpose(-1, -2), out=gC[s:e])
        torch.matmul(dtx[s:e, :, None, :], g.transpose(-1, -2), out=gB[s:e])
        gbx = torch.matmul(B[s:e, :, None, :], g, out=gb[: e - s])[:, :, 0]  # G . B
        g.mul_(a)  # P = G exp(dt A) h_prev, in place
        g[0].mul_(starts[index])
        g[1:].mul_(hs[:-1])
        torch.sum(torch.mul(g, At, out=a), dim=-2, out=gdt[s:e]).addcmul_(gbx, x[s:e])
        torch.mul(gbx, dt[s:e], out=gx[s:e])
        gAt += torch.mul(g, dt[s:e, :, None, :], out=tmp).sum((0, 1))
    return gx, gdt, gAt, gB[:, :, 0], gC[:, :, 0], carry


class _SelectiveScan(torch.autograd.Function):
    """The scan over time-major tensors, with its hand-written backward pass."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, dt: torch.Tensor, A: torch.Tensor,
                B: torch.Tensor, C: torch.Tensor, h0: torch.Tensor,
                ) -> tuple[torch.Tensor, torch.Tensor]:
        At, h0 = A.t().contiguous(), h0.transpose(1, 2).contiguous()
        y, h, starts = _scan_forward(x, dt, At, B, C, h0, keep_starts=True)
        ctx.save_for_backward(x, dt, At, B, C, starts)
        return y, h.transpose(1, 2)

    @staticmethod
    def backward(ctx: Any, gy: torch.Tensor, gh: torch.Tensor,
                 ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor,
                            torch.Tensor, torch.Tensor]:
        x, dt, At, B, C, starts = ctx.saved_tensors
        gh = gh.transpose(1, 2).contiguous()
        gx, gdt, gAt, gB, gC, gh0 = _scan_backward(gy.contiguous(), gh, x, dt, At, B, C, starts)
        return gx, gdt, gAt.t(), gB, gC, gh0.transpose(1, 2)


def _scan(x: torch.Tensor, dt: torch.Tensor, A: torch.Tensor, B: torch.Tensor, C: torch.Tensor,
          h0: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    """`selective_scan` on time-major x, dt (T, b, d) and B, C (T, b, state), all contiguous."""
    if h0 is None:
        h0 = x.new_zeros(x.shape[1], x.shape[2], A.shape[1])
    if torch.is_grad_enabled() and any(t.requires_grad for t in (x, dt, A, B, C, h0)):
        return _SelectiveScan.apply(x, dt, A, B, C, h0)
    y, h, _ = _scan_forward(x, dt, A.t().contiguous(), B, C, h0.transpose(1, 2).contiguous(),
                            keep_starts=False)
    return y, h.transpose(1, 2)


def selective_scan(x: torch.Tensor, dt: torch.Tensor, A: torch.Tensor, B: torch.Tensor,
                   C: torch.Tensor, h0: torch.Tensor | None = None,
                   ) -> tuple[torch.Tensor, torch.Tensor]:
    """Mamba's selective scan, batch-first: h_t = exp(dt_t A) h_{t-1} + dt_t x_t B_t.

    x, dt: (batch, T, channels), dt already through softplus; A: (channels, state), negative;
    B, C: (batch, T, state); h0: (batch, channels, state) or None for zeros (transformers'
    layouts). Returns y (batch, T, channels) with y_t = C_t . h_t (no D skip, no gate) and the
    last state (batch, channels, state). Float32; differentiable in every input.
    """
    y, h = _scan(_time_major(x), _time_major(dt), A, _time_major(B), _time_major(C), h0)
    return y.transpose(0, 1), h


# --------------------------------------------------------------------------- the mixer


def mixer_sequence(mixer: MambaMixer, hidden: torch.Tensor, window: torch.Tensor | None = None,
                   state: torch.Tensor | None = None, mask: torch.Tensor | None = None,
                   ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One Mamba mixer over a sequence (batch, T, hidden), continuing from (window, state).

    window: the last `conv_kernel` inputs of the convolution (batch, channels, kernel), as
    transformers caches it; state: the SSM state (batch, channels, state_size); mask: the
    attention mask (batch, T) or None. Returns the mixer's output and the new window and state.
    The operations of transformers' `MambaMixer.slow_forward`, time-major inside, with the
    causal depthwise convolution written as `conv_kernel` shifted multiply-adds.
    """
    dtype = hidden.dtype
    hidden = apply_mask_to_padding_states(hidden, mask).transpose(0, 1)
    mask = None if mask is None else mask.transpose(0, 1)
    x, gate = mixer.in_proj(hidden).chunk(2, dim=-1)  # (T, batch, channels) each
    steps, kernel = x.shape[0], mixer.conv_kernel_size
    if window is None:
        past = x.new_zeros(kernel - 1, *x.shape[1:])
    else:
        past = window[:, :, 1:].permute(2, 0, 1).to(x.dtype)
    padded = torch.cat([past, x])
    weight = mixer.conv1d.weight[:, 0]  # (channels, kernel)
    x = padded[kernel - 1:] * weight[:, -1]
    for k in range(kernel - 1):
        x = x.addcmul(padded[k:k + steps], weight[:, k])
    if mixer.conv1d.bias is not None:
        x = x + mixer.conv1d.bias
    x = apply_mask_to_padding_states(mixer.act(x), mask)
    step, B, C = mixer.x_proj(x).split(
        [mixer.time_step_rank, mixer.ssm_state_size, mixer.ssm_state_size], dim=-1)
    dt = F.softplus(F.linear(step, mixer.dt_proj.weight).float() + mixer.dt_proj.bias.float())
    A = -torch.exp(mixer.A_log.float())
    h0 = None if state is None else state.float()
    y, state = _scan(x.float().contiguous(), dt, A, B.float().contiguous(),
                     C.float().contiguous(), h0)
    y = (y + x * mixer.D.float()) * F.silu(gate.float())
    out = mixer.out_proj(y.to(dtype)).transpose(0, 1)
    return out, padded[-kernel:].permute(1, 2, 0), state


@functools.cache
def _have_kernels() -> bool:
    """Whether mamba-ssm's CUDA kernels are importable (transformers then uses them on CUDA)."""
    if importlib.util.find_spec("mamba_ssm") is None:
        return False
    try:
        importlib.import_module("mamba_ssm.ops.selective_scan_interface")
    except Exception as error:  # a broken build: say why once, use the fast path
        log.warning("mamba-ssm is installed but does not load (%s); using the chunked scan",
                    error)
        return False
    return True


def uses_kernels(device: torch.device | str) -> bool:
    """Whether a Mamba model on `device` runs on mamba-ssm's kernels rather than this module."""
    return torch.device(device).type == "cuda" and _have_kernels()


def path_label(device: torch.device | str) -> str:
    """What a Mamba model on `device` runs on, in words."""
    device = torch.device(device)
    return KERNELS if uses_kernels(device) else f"segue chunked scan ({device.type})"


def _log_choice(device: torch.device) -> str:
    label = path_label(device)
    if label not in _logged:
        _logged.add(label)
        log.info("Mamba runs on %s", label)
    return label


class FastMambaMixer(MambaMixer):
    """transformers' `MambaMixer` with the chunked scan; same parameters, same cache protocol.

    Not constructed directly: `accelerate` switches existing mixers to this class.
    """

    def forward(self, hidden_states: torch.Tensor, cache: Cache | None = None,
                attention_mask: torch.Tensor | None = None, **kwargs: Any) -> torch.Tensor:
        recording = cache is not None and cache.is_recording_past(self.layer_idx)
        if _log_choice(hidden_states.device) == KERNELS or recording:
            return super().forward(hidden_states, cache=cache, attention_mask=attention_mask,
                                   **kwargs)
        window = state = None
        if cache is not None:
            window = cache.get_conv_state(self.layer_idx)
            state = cache.get_recurrent_state(self.layer_idx)
        out, window, state = mixer_sequence(self, hidden_states, window, state, attention_mask)
        if cache is not None:
            cache.update_conv_state(window, self.layer_idx, conv_kernel_size=self.conv_kernel_size)
            cache.update_recurrent_state(state.to(hidden_states.dtype), self.layer_idx)
        return out


def _mixers(model: torch.nn.Module) -> list[MambaMixer]:
    return [m for m in model.modules() if isinstance(m, MambaMixer)]


def accelerate(model: torch.nn.Module) -> str:
    """Switch every Mamba mixer of `model` to the fast path, in place; returns what it runs on.

    Parameters, their names and shapes are untouched (checkpoints load unchanged before or
    after). The kernels-or-chunked-scan choice follows the device of each call, so the model
    may be moved afterwards; the label describes the device the model is on now, and the
    choice is logged (once per process and path) when a model first runs.
    """
    mixers = _mixers(model)
    if not mixers:
        raise TypeError(f"{type(model).__name__} has no Mamba mixers to accelerate")
    for mixer in mixers:
        mixer.__class__ = FastMambaMixer
    return path_label(next(model.parameters()).device)


# --------------------------------------------------------------------------- decoding


def _rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    """transformers' `MambaRMSNorm` (one fused operation in float32)."""
    if x.dtype == weight.dtype == torch.float32:
        return F.rms_norm(x, weight.shape, weight, eps)
    x32 = x.float()
    x32 = x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + eps)
    return weight * x32.to(weight.dtype)


class _Layer(NamedTuple):
    """One block's weights, gathered once per prompt so that a step does no module lookups."""

    norm: torch.Tensor
    eps: float
    fp32_residual: bool
    in_proj: torch.Tensor
    conv: torch.Tensor  # (channels, kernel)
    conv_bias: torch.Tensor | None
    act: Callable[[torch.Tensor], torch.Tensor]
    x_proj: torch.Tensor
    split: list[int]
    dt_proj: torch.Tensor
    dt_bias: torch.Tensor
    A: torch.Tensor  # (channels, state), -exp(A_log)
    D: torch.Tensor
    out_proj: torch.Tensor
    out_bias: torch.Tensor | None

    @classmethod
    def of(cls, block: Any) -> _Layer:
        """The weights of a transformers MambaBlock (typed Any: nn.Module's attributes are)."""
        m = block.mixer
        return cls(block.norm.weight, block.norm.variance_epsilon, block.residual_in_fp32,
                   m.in_proj.weight, m.conv1d.weight[:, 0], m.conv1d.bias,
                   F.silu if m.activation == "silu" else m.act, m.x_proj.weight,
                   [m.time_step_rank, m.ssm_state_size, m.ssm_state_size],
                   m.dt_proj.weight, m.dt_proj.bias, -torch.exp(m.A_log.float()), m.D.float(),
                   m.out_proj.weight, m.out_proj.bias)


class MambaDecoder:
    """Incremental decoding for a transformers Mamba model: `prefill` a prompt, then `step`.

    The interface of `engine.models.lm.CachedDecoder`. Each layer's state is its convolution window
    (batch, channels, kernel) and its SSM state (batch, channels, state_size); a step is about
    twenty tensor operations a layer, the same at any prompt length. On CUDA with mamba-ssm
    it defers to transformers' own kernel path.
    """

    def __init__(self, model: torch.nn.Module) -> None:
        self.model: Any = model  # a transformers MambaForCausalLM
        self.backbone: Any = model.backbone
        device = next(model.parameters()).device
        self.kernels = uses_kernels(device)
        _log_choice(device)
        self.windows: list[torch.Tensor] = []
        self.states: list[torch.Tensor] = []
        self.layers: list[_Layer] = []
        self.cached: CachedDecoder | None = None  # the kernels' path (CUDA with mamba-ssm)

    def _logits(self, hidden: torch.Tensor) -> torch.Tensor:
        norm = self.backbone.norm_f
        hidden = _rms_norm(hidden, norm.weight, norm.variance_epsilon)
        return F.linear(hidden.to(self.model.lm_head.weight.dtype),
                        self.model.lm_head.weight).float()

    @torch.inference_mode()
    def prefill(self, ids: torch.Tensor) -> torch.Tensor:
        """Read a batch of prompts (B, T); return the logits for the next token (B, V)."""
        if self.kernels:
            from engine.models.cached_decoder import CachedDecoder

            self.cached = CachedDecoder(self.model)
            return self.cached.prefill(ids)
        self.layers = [_Layer.of(block) for block in self.backbone.layers]
        self.windows, self.states = [], []
        return self._read(ids)

    @torch.inference_mode()
    def extend(self, ids: torch.Tensor) -> torch.Tensor:
        """Feed several tokens per sequence (B, T) at once, with the chunked scan from the kept
        windows and states; return the logits after the last (B, V)."""
        if self.cached is not None:
            return self.cached.extend(ids)
        return self._read(ids)

    def fork(self) -> MambaDecoder:
        """A decoder that goes on from where this one stands, on its own copy of the windows
        and states (a prompt read once, then continued several ways)."""
        twin = copy.copy(self)
        twin.windows = [window.clone() for window in self.windows]
        twin.states = [state.clone() for state in self.states]
        twin.cached = self.cached.fork() if self.cached is not None else None
        return twin

    def _read(self, ids: torch.Tensor) -> torch.Tensor:
        """Run (B, T) tokens through every layer from the kept states (none: from the start)."""
        hidden = self.backbone.embeddings(ids)
        fresh = not self.states
        for i, (block, layer) in enumerate(zip(self.backbone.layers, self.layers, strict=True)):
            residual = hidden.float() if layer.fp32_residual else hidden
            normed = _rms_norm(hidden.to(layer.norm.dtype), layer.norm, layer.eps)
            if fresh:
                out, window, state = mixer_sequence(block.mixer, normed)
                self.windows.append(window.contiguous())
                self.states.append(state)
            else:
                out, window, state = mixer_sequence(block.mixer, normed, self.windows[i],
                                                    self.states[i])
                self.windows[i], self.states[i] = window.contiguous(), state
            hidden = residual + out
        return self._logits(hidden[:, -1])

    @torch.inference_mode()
    def step(self, ids: torch.Tensor) -> torch.Tensor:
        """Feed one token per sequence (B,); return the logits for the next token (B, V)."""
        if self.cached is not None:
            return self.cached.step(ids)
        hidden = F.embedding(ids, self.backbone.embeddings.weight)
        for i, layer in enumerate(self.layers):
            residual = hidden.float() if layer.fp32_residual else hidden
            normed = _rms_norm(hidden.to(layer.norm.dtype), layer.norm, layer.eps)
            x, gate = F.linear(normed, layer.in_proj).chunk(2, dim=-1)
            window = torch.cat((self.windows[i][:, :, 1:], x[:, :, None]), dim=-1)
            self.windows[i] = window
            x = torch.linalg.vecdot(window, layer.conv)
            x = layer.act(x if layer.conv_bias is None else x + layer.conv_bias)
            step, B, C = F.linear(x, layer.x_proj).split(layer.split, dim=-1)
            dt = F.softplus(F.linear(step, layer.dt_proj, layer.dt_bias).float())
            state = self.states[i]
            state.mul_(torch.exp(dt[:, :, None] * layer.A))
            state.addcmul_((dt * x)[:, :, None], B[:, None, :].float())
            y = torch.bmm(state, C[:, :, None].float())[:, :, 0].addcmul_(x, layer.D)
            y = (y * F.silu(gate.float())).to(hidden.dtype)
            hidden = residual + F.linear(y, layer.out_proj, layer.out_bias)
        return self._logits(hidden)


__all__ = ["MambaDecoder", "accelerate", "mixer_sequence", "path_label", "selective_scan",
           "uses_kernels"]
