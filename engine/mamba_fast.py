"""Mamba at full speed without the CUDA kernels: a chunked selective scan and a lean decoder.

transformers' `MambaForCausalLM` uses the `mamba-ssm` kernels when they are installed and the
model runs on CUDA. Everywhere else it falls back to a reference loop that materialises the
discretised state for every step, batch row, channel and state dimension and walks it in
Python (about 140 s for one training step of the 6M model at 16 x 256 on two CPU cores).
This module gives the same numbers, on the same weights, much faster:

- `selective_scan`: the recurrence h_t = exp(dt_t A) h_{t-1} + dt_t x_t B_t, y_t = C_t . h_t,
  walked a chunk of time steps at a time. Each chunk's decays and inputs are formed in one
  vectorised pass into reused buffers, the recurrence runs in place (one fused multiply-add per
  step, on a (batch, channels, state) slab), and the outputs come out of one batched matmul.
  Only exp(dt A) with dt A <= 0 is ever taken, so nothing can overflow however large dt gets
  (the cumulative-sum trick exp(-cumsum(dt A)) can). The backward pass is written by hand: it
  keeps only the inputs and one state per chunk, recomputes the chunk's states, runs the adjoint
  recurrence backwards and forms every gradient with a few vectorised passes and matmuls, so
  training needs a few MB per layer instead of the reference's gigabytes.
- `accelerate(model)` swaps that path into a transformers Mamba model in place (each mixer's
  class becomes `FastMambaMixer`; no parameter is renamed or reshaped, so checkpoints load
  unchanged everywhere). On CUDA with `mamba-ssm` installed the mixers keep transformers' own
  kernel path; the choice is made per call from the device, and logged once (logger "segue").
- `MambaDecoder`: `prefill(ids)` reads the prompt with the chunked scan and keeps each layer's
  (conv window, SSM state); `step(ids)` advances one token with a handful of tensor operations
  per layer, outside transformers' module and cache machinery, so a token costs the same at
  any prompt length.

transformers' own full-sequence path ignores a cached SSM state (its kernels take none); this
one continues from it, so reading a prompt in several pieces gives the same result as reading
it at once.
"""

from __future__ import annotations

import functools
import importlib.util
import logging

import torch
import torch.nn.functional as F
from transformers.models.mamba.modeling_mamba import MambaMixer, apply_mask_to_padding_states

log = logging.getLogger("segue")

# Elements (time x batch x channels x state) a chunk's working buffers hold: a few MB, so the
# chunk's passes stay in the CPU's caches.
CHUNK_ELEMENTS = 1 << 20
MAX_CHUNK = 128

_logged: set[str] = set()


# --------------------------------------------------------------------------- the scan


def _chunk_length(batch: int, channels: int, state: int, steps: int) -> int:
    return max(1, min(steps, MAX_CHUNK, CHUNK_ELEMENTS // (batch * channels * state)))


def _time_major(t: torch.Tensor) -> torch.Tensor:
    return t.transpose(0, 1).contiguous()


def _scan_forward(x, dt, A, B, C, h0, keep_starts: bool):
    """Forward recurrence on time-major inputs: x, dt (T, b, d); B, C (T, b, n); h0 (b, d, n).

    Returns y (T, b, d), the last state (b, d, n), and each chunk's starting state if asked.
    """
    steps, batch, channels = x.shape
    length = _chunk_length(batch, channels, A.shape[1], steps)
    decay = x.new_empty(length, batch, channels, A.shape[1])
    states = torch.empty_like(decay)
    dtx = dt * x
    y = x.new_empty(steps, batch, channels)
    h, starts = h0, []
    for s in range(0, steps, length):
        e = min(steps, s + length)
        n = e - s
        a, hs = decay[:n], states[:n]
        torch.mul(dt[s:e, :, :, None], A, out=a).exp_()
        torch.mul(dtx[s:e, :, :, None], B[s:e, :, None, :], out=hs)
        if keep_starts:
            starts.append(h)
        hs[0].addcmul_(a[0], h)
        for i in range(1, n):
            hs[i].addcmul_(a[i], hs[i - 1])
        torch.linalg.vecdot(hs, C[s:e, :, None, :], out=y[s:e])
        h = hs[n - 1].clone()
    return y, h, starts


def _scan_backward(gy, gh, x, dt, A, B, C, starts):
    """Gradients of the chunked scan (time-major, as `_scan_forward`), chunk by chunk backwards.

    With G_t = dL/dh_t = C_t gy_t + exp(dt_{t+1} A) G_{t+1} and P_t = G_t exp(dt_t A) h_{t-1}:
    dL/dx_t = dt_t (G_t . B_t), dL/ddt_t = x_t (G_t . B_t) + sum_n P_t A,
    dL/dA = sum_t P_t dt_t, dL/dB_t = sum_d G_t dt_t x_t, dL/dC_t = sum_d gy_t h_t,
    dL/dh0 = exp(dt_0 A) G_0.
    """
    steps, batch, channels = x.shape
    width = A.shape[1]
    length = _chunk_length(batch, channels, width, steps)
    decay = x.new_empty(length, batch, channels, width)
    states, adjoint = torch.empty_like(decay), torch.empty_like(decay)
    dtx = dt * x
    gx, gdt = torch.empty_like(x), torch.empty_like(dt)
    gB, gC = torch.empty_like(B), torch.empty_like(C)
    gA = torch.zeros_like(A)
    carry = gh
    for index in reversed(range(len(starts))):
        s = index * length
        e = min(steps, s + length)
        n, rows = e - s, (e - s) * batch
        a, hs, g = decay[:n], states[:n], adjoint[:n]
        torch.mul(dt[s:e, :, :, None], A, out=a).exp_()
        torch.mul(dtx[s:e, :, :, None], B[s:e, :, None, :], out=hs)
        hs[0].addcmul_(a[0], starts[index])
        for i in range(1, n):
            hs[i].addcmul_(a[i], hs[i - 1])
        torch.mul(gy[s:e, :, :, None], C[s:e, :, None, :], out=g)
        if carry is not None:
            g[n - 1].add_(carry)
        for i in range(n - 2, -1, -1):
            g[i].addcmul_(a[i + 1], g[i + 1])
        carry = a[0] * g[0]
        flat_g = g.view(rows, channels, width)
        gC[s:e] = torch.bmm(gy[s:e].reshape(rows, 1, channels),
                            hs.view(rows, channels, width)).view(n, batch, width)
        gB[s:e] = torch.bmm(dtx[s:e].reshape(rows, 1, channels), flat_g).view(n, batch, width)
        gb = torch.linalg.vecdot(g, B[s:e, :, None, :])
        g.mul_(a)  # P = G exp(dt A) h_prev, in place
        g[0].mul_(starts[index])
        g[1:].mul_(hs[:-1])
        torch.linalg.vecdot(g, A, out=gdt[s:e]).addcmul_(gb, x[s:e])
        torch.mul(gb, dt[s:e], out=gx[s:e])
        gA += torch.mul(g, dt[s:e, :, :, None], out=g).sum((0, 1))
    return gx, gdt, gA, gB, gC, carry


class _SelectiveScan(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, dt, A, B, C, h0):
        x, dt, B, C = (_time_major(t) for t in (x, dt, B, C))
        y, h, starts = _scan_forward(x, dt, A, B, C, h0, keep_starts=True)
        ctx.save_for_backward(x, dt, A, B, C, *starts)
        return y.transpose(0, 1), h

    @staticmethod
    def backward(ctx, gy, gh):
        x, dt, A, B, C, *starts = ctx.saved_tensors
        grads = _scan_backward(_time_major(gy), gh, x, dt, A, B, C, starts)
        gx, gdt, gA, gB, gC, gh0 = grads
        return gx.transpose(0, 1), gdt.transpose(0, 1), gA, gB.transpose(0, 1), \
            gC.transpose(0, 1), gh0


def selective_scan(x: torch.Tensor, dt: torch.Tensor, A: torch.Tensor, B: torch.Tensor,
                   C: torch.Tensor, h0: torch.Tensor | None = None,
                   ) -> tuple[torch.Tensor, torch.Tensor]:
    """Mamba's selective scan, batch-first: h_t = exp(dt_t A) h_{t-1} + dt_t x_t B_t.

    x, dt: (batch, T, channels), dt already through softplus; A: (channels, state), negative;
    B, C: (batch, T, state); h0: (batch, channels, state) or None for zeros. Returns
    y (batch, T, channels) with y_t = C_t . h_t (no D skip, no gate) and the last state h_T.
    Float32 throughout; differentiable in every input.
    """
    tensors = (x, dt, A, B, C)
    if h0 is None:
        h0 = x.new_zeros(x.shape[0], x.shape[2], A.shape[1])
    if torch.is_grad_enabled() and any(t.requires_grad for t in (*tensors, h0)):
        return _SelectiveScan.apply(x, dt, A, B, C, h0)
    x, dt, B, C = (_time_major(t) for t in (x, dt, B, C))
    y, h, _ = _scan_forward(x, dt, A, B, C, h0, keep_starts=False)
    return y.transpose(0, 1), h


# --------------------------------------------------------------------------- the mixer


def mixer_sequence(mixer: MambaMixer, hidden: torch.Tensor, window: torch.Tensor | None = None,
                   state: torch.Tensor | None = None, mask: torch.Tensor | None = None,
                   ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One Mamba mixer over a sequence (batch, T, hidden), continuing from (window, state).

    window: the last `conv_kernel` inputs of the convolution (batch, channels, kernel), as
    transformers caches it; state: the SSM state (batch, channels, state_size). Returns the
    mixer's output and the new window and state. Same operations as transformers'
    `MambaMixer.slow_forward`, with the chunked scan.
    """
    dtype = hidden.dtype
    hidden = apply_mask_to_padding_states(hidden, mask)
    x, gate = mixer.in_proj(hidden).chunk(2, dim=-1)
    x = x.transpose(1, 2)  # (batch, channels, T), the convolution's layout
    kernel = mixer.conv_kernel_size
    if window is None:
        window = x.new_zeros(x.shape[0], x.shape[1], kernel)
    padded = torch.cat([window[:, :, 1:].to(x.dtype), x], dim=-1)
    x = F.conv1d(padded, mixer.conv1d.weight, mixer.conv1d.bias, groups=x.shape[1])
    x = apply_mask_to_padding_states(mixer.act(x).transpose(1, 2), mask)
    step, B, C = mixer.x_proj(x).split(
        [mixer.time_step_rank, mixer.ssm_state_size, mixer.ssm_state_size], dim=-1)
    dt = F.softplus(F.linear(step, mixer.dt_proj.weight).float() + mixer.dt_proj.bias.float())
    A = -torch.exp(mixer.A_log.float())
    h0 = None if state is None else state.float()
    y, state = selective_scan(x.float(), dt, A, B.float(), C.float(), h0)
    y = (y + x * mixer.D.float()) * F.silu(gate.float())
    return mixer.out_proj(y.to(dtype)), padded[:, :, -kernel:], state


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
    return "mamba-ssm kernels" if uses_kernels(device) else f"segue chunked scan ({device.type})"


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

    def forward(self, hidden_states, cache=None, attention_mask=None, **kwargs):
        recording = cache is not None and cache.is_recording_past(self.layer_idx)
        if recording or uses_kernels(hidden_states.device):
            _log_choice(hidden_states.device)
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
    may be moved afterwards; the label describes the device the model is on now.
    """
    mixers = _mixers(model)
    if not mixers:
        raise TypeError(f"{type(model).__name__} has no Mamba mixers to accelerate")
    for mixer in mixers:
        mixer.__class__ = FastMambaMixer
    return _log_choice(next(model.parameters()).device)


# --------------------------------------------------------------------------- decoding


def _rms_norm(norm: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """transformers' `MambaRMSNorm`, inlined."""
    x32 = x.float()
    x32 = x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + norm.variance_epsilon)
    return norm.weight * x32.to(norm.weight.dtype)


class MambaDecoder:
    """Incremental decoding for a transformers Mamba model: `prefill` a prompt, then `step`.

    The interface of `engine.lm.CachedDecoder`. Each layer's state is its convolution window
    (batch, channels, kernel) and its SSM state (batch, channels, state_size); a step costs
    the same at any prompt length. On CUDA with mamba-ssm it defers to transformers' own
    kernel path.
    """

    def __init__(self, model: torch.nn.Module) -> None:
        self.model = model
        self.backbone = model.backbone
        self.kernels = uses_kernels(next(model.parameters()).device)
        _log_choice(next(model.parameters()).device)
        self.windows: list[torch.Tensor] = []
        self.states: list[torch.Tensor] = []
        self.cached = None
        self.layers: list[tuple] = []

    def _logits(self, hidden: torch.Tensor) -> torch.Tensor:
        hidden = _rms_norm(self.backbone.norm_f, hidden)
        return self.model.lm_head(hidden.to(self.model.lm_head.weight.dtype)).float()

    @torch.inference_mode()
    def prefill(self, ids: torch.Tensor) -> torch.Tensor:
        """Read a batch of prompts (B, T); return the logits for the next token (B, V)."""
        if self.kernels:
            from engine.lm import CachedDecoder

            self.cached = CachedDecoder(self.model)
            return self.cached.prefill(ids)
        hidden = self.backbone.embeddings(ids)
        self.windows, self.states, self.layers = [], [], []
        for block in self.backbone.layers:
            residual = hidden.float() if block.residual_in_fp32 else hidden
            normed = _rms_norm(block.norm, hidden.to(block.norm.weight.dtype))
            out, window, state = mixer_sequence(block.mixer, normed)
            hidden = residual + out
            self.windows.append(window.contiguous())
            self.states.append(state)
            self.layers.append(self._step_weights(block))
        return self._logits(hidden[:, -1])

    @staticmethod
    def _step_weights(block: torch.nn.Module) -> tuple:
        m = block.mixer
        return (block.norm, block.residual_in_fp32, m.in_proj, m.conv1d.weight[:, 0],
                m.conv1d.bias, m.act, m.x_proj,
                [m.time_step_rank, m.ssm_state_size, m.ssm_state_size],
                m.dt_proj.weight, m.dt_proj.bias.float(), -torch.exp(m.A_log.float()),
                m.D.float(), m.out_proj)

    @torch.inference_mode()
    def step(self, ids: torch.Tensor) -> torch.Tensor:
        """Feed one token per sequence (B,); return the logits for the next token (B, V)."""
        if self.kernels:
            return self.cached.step(ids)
        hidden = self.backbone.embeddings(ids)
        for layer, window, state in zip(self.layers, self.windows, self.states, strict=True):
            (norm, fp32, in_proj, conv_w, conv_b, act, x_proj, split, dt_w, dt_b, A, D,
             out_proj) = layer
            residual = hidden.float() if fp32 else hidden
            x, gate = in_proj(_rms_norm(norm, hidden.to(norm.weight.dtype))).chunk(2, dim=-1)
            window[:, :, :-1] = window[:, :, 1:].clone()
            window[:, :, -1] = x
            x = (window * conv_w).sum(-1)
            if conv_b is not None:
                x = x + conv_b
            x = act(x)
            step, B, C = x_proj(x).split(split, dim=-1)
            dt = F.softplus(F.linear(step, dt_w).float() + dt_b)
            state.mul_(torch.exp(dt[:, :, None] * A))
            state.addcmul_((dt * x)[:, :, None], B[:, None, :].float())
            y = torch.bmm(state, C[:, :, None].float())[:, :, 0].addcmul_(x, D)
            hidden = residual + out_proj((y * F.silu(gate.float())).to(hidden.dtype))
        return self._logits(hidden)


__all__ = ["MambaDecoder", "accelerate", "mixer_sequence", "path_label", "selective_scan",
           "uses_kernels"]
