"""The fast Mamba path (engine.models.mamba_fast) gives transformers' numbers on the same weights.

transformers' own CPU fallback is the reference throughout: logits of whole sequences, of a
prefill followed by recurrent steps, parameter gradients, generated tokens, and checkpoints
saved from one path and loaded into the other. Small random models keep the file fast; the
scan's chunk is made small too, so that prompts span several chunks and end inside one.
"""

from __future__ import annotations

import copy
import logging

import pytest
import torch
from decoder_helpers import assert_close, assert_forks_go_on_alike, assert_same_logits
from transformers import MambaConfig, MambaForCausalLM

from engine.models import mamba_fast
from engine.models.cached_decoder import CachedDecoder
from engine.models.lm import decoder_for
from engine.models.mamba_fast import FastMambaMixer, MambaDecoder, accelerate, selective_scan

VOCAB = 96
LENGTHS = (1, 2, 5, 16, 37)  # the chunk below is 16 steps at batch 2: 37 = 2 chunks + 5


@pytest.fixture(autouse=True)
def small_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Chunks of 16 steps for a batch of 2 (channels 64, state 16)."""
    monkeypatch.setattr(mamba_fast, "CHUNK_ELEMENTS", 16 * 2 * 64 * 16)


def tiny_config(**overrides) -> MambaConfig:
    settings = {"vocab_size": VOCAB, "hidden_size": 32, "num_hidden_layers": 2, "state_size": 16,
                "expand": 2, "conv_kernel": 4, "bos_token_id": None, "eos_token_id": None,
                "pad_token_id": None, **overrides}
    return MambaConfig(**settings)


@pytest.fixture
def pair() -> tuple[MambaForCausalLM, MambaForCausalLM]:
    """(transformers' reference, the same weights accelerated), in eval mode."""
    torch.manual_seed(0)
    reference = MambaForCausalLM(tiny_config()).eval()
    fast = copy.deepcopy(reference)
    assert accelerate(fast) == "segue chunked scan (cpu)"
    return reference, fast


def ids_of(length: int, batch: int = 2, seed: int = 1) -> torch.Tensor:
    return torch.randint(0, VOCAB, (batch, length), generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("length", LENGTHS)
def test_full_sequence_logits_match(pair, length: int) -> None:
    reference, fast = pair
    ids = ids_of(length)
    with torch.no_grad():
        assert_close(fast(ids).logits, reference(ids).logits)


@pytest.mark.parametrize("length", LENGTHS)
def test_prefill_then_steps_match(pair, length: int) -> None:
    reference, fast = pair
    ids = ids_of(length)
    expected, actual = CachedDecoder(reference), decoder_for(fast)
    assert isinstance(actual, MambaDecoder)
    assert_same_logits(expected, actual, ids, steps=6)


@pytest.mark.parametrize("length", LENGTHS)
def test_several_tokens_at_once_continue_the_state(pair, length: int) -> None:
    """`extend` reads more tokens from the kept windows and states: across chunks, after
    steps, and again after another extend, it gives the whole sequence's logits."""
    reference, fast = pair
    ids = ids_of(7 + 1 + 2 * length)
    with torch.no_grad():
        whole = reference(ids).logits
    decoder = decoder_for(fast)
    assert_close(decoder.prefill(ids[:, :7]), whole[:, 6])
    assert_close(decoder.step(ids[:, 7]), whole[:, 7])
    assert_close(decoder.extend(ids[:, 8:8 + length]), whole[:, 7 + length])
    assert_close(decoder.extend(ids[:, 8 + length:]), whole[:, -1])
    cached = CachedDecoder(reference)  # transformers' cache: one step at a time
    cached.prefill(ids[:, :7])
    assert_close(cached.extend(ids[:, 7:8 + length]), whole[:, 7 + length])


def test_a_fork_goes_on_alone_from_where_the_prompt_was_read(pair) -> None:
    reference, fast = pair
    assert_forks_go_on_alike(lambda: MambaDecoder(fast), ids_of(37))
    assert_forks_go_on_alike(lambda: CachedDecoder(reference), ids_of(37))


def test_transformers_cache_protocol(pair) -> None:
    """Through transformers' own cache (model(..., cache=...), generate) the fast mixer agrees,
    and a prompt read in two pieces gives what reading it whole gives."""
    reference, fast = pair
    ids = ids_of(40)
    with torch.no_grad():
        whole = reference(ids).logits
        first = fast(ids[:, :23], use_cache=True)
        second = fast(ids[:, 23:], cache=first.cache, use_cache=True)
        assert_close(torch.cat([first.logits, second.logits], dim=1), whole)
        assert torch.equal(fast.generate(ids, max_new_tokens=12, do_sample=False),
                           reference.generate(ids, max_new_tokens=12, do_sample=False))


def test_attention_mask_matches(pair) -> None:
    reference, fast = pair
    ids = ids_of(20)
    mask = torch.ones_like(ids)
    mask[0, :7] = 0  # left padding in the first row
    with torch.no_grad():
        assert_close(fast(ids, attention_mask=mask).logits,
                     reference(ids, attention_mask=mask).logits)


def test_gradients_match(pair) -> None:
    reference, fast = pair
    ids = ids_of(37)
    for model in pair:
        model.train()
        model(ids, labels=ids).loss.backward()
    expected = dict(reference.named_parameters())
    for name, parameter in fast.named_parameters():
        want = expected[name].grad
        scale = want.abs().max().item()
        assert scale > 0, name
        torch.testing.assert_close(parameter.grad, want, rtol=0, atol=1e-4 * scale, msg=name)


def test_scan_gradcheck_across_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    """The hand-written backward, in float64, against finite differences: every input,
    the initial state and the returned last state, over chunks of 3 steps."""
    monkeypatch.setattr(mamba_fast, "CHUNK_ELEMENTS", 3 * 2 * 5 * 4)
    monkeypatch.setattr(mamba_fast, "MIN_TRAINING_CHUNK", 1)
    gen = torch.Generator().manual_seed(0)

    def leaf(*shape: int, scale: float = 1.0, low: float | None = None) -> torch.Tensor:
        t = torch.rand(*shape, generator=gen, dtype=torch.float64) if low is not None else \
            torch.randn(*shape, generator=gen, dtype=torch.float64)
        return ((t + (low or 0)) * scale).requires_grad_()

    batch, steps, channels, state = 2, 8, 5, 4
    inputs = (leaf(batch, steps, channels), leaf(batch, steps, channels, low=0.05),
              leaf(channels, state, scale=-2, low=0.1), leaf(batch, steps, state),
              leaf(batch, steps, state), leaf(batch, channels, state))
    assert torch.autograd.gradcheck(selective_scan, inputs)


def test_large_steps_stay_finite(pair) -> None:
    """Big dt and strongly decaying A underflow exp(dt A) to zero; nothing overflows."""
    reference, fast = pair
    with torch.no_grad():
        for model in pair:
            for block in model.backbone.layers:
                block.mixer.dt_proj.bias.fill_(30.0)
                block.mixer.A_log.add_(3.0)
    ids = ids_of(37)
    with torch.no_grad():
        got = fast(ids).logits
        assert torch.isfinite(got).all()
        assert_close(got, reference(ids).logits)


def sample(decoder, prompt: torch.Tensor, tokens: int, temperature: float | None,
           seed: int) -> list[list[int]]:
    """Greedy (temperature None) or sampled continuation with a fixed seed."""
    gen = torch.Generator().manual_seed(seed)
    logits, out = decoder.prefill(prompt), []
    for _ in range(tokens):
        if temperature is None:
            token = logits.argmax(-1)
        else:
            probs = torch.softmax(logits / temperature, -1)
            token = torch.multinomial(probs, 1, generator=gen)[:, 0]
        out.append(token)
        logits = decoder.step(token)
    return torch.stack(out, 1).tolist()


@pytest.mark.parametrize("temperature", [None, 1.0])
def test_generation_gives_identical_tokens(pair, temperature: float | None) -> None:
    reference, fast = pair
    prompt = ids_of(21)
    want = sample(CachedDecoder(reference), prompt, 40, temperature, seed=7)
    assert sample(MambaDecoder(fast), prompt, 40, temperature, seed=7) == want


def test_checkpoints_load_unchanged_on_both_paths(pair, tmp_path) -> None:
    from engine.models.checkpoint import load_weights, save_checkpoint
    from engine.models.tokenizer import CharTokenizer

    reference, fast = pair
    assert [(n, p.shape) for n, p in fast.state_dict().items()] == \
        [(n, p.shape) for n, p in reference.state_dict().items()]
    with torch.no_grad():
        for parameter in fast.parameters():
            parameter.add_(0.01 * torch.randn_like(parameter))  # weights of its own
    folder = save_checkpoint(tmp_path / "fast", fast, CharTokenizer(),
                             {"architecture": "mamba", "model": {}, "block_size": 64})
    plain = MambaForCausalLM(tiny_config()).eval()
    load_weights(plain, folder)  # fast path's checkpoint -> transformers' path
    back = MambaForCausalLM(tiny_config()).eval()
    accelerate(back)
    load_weights(back, tmp_path / "fast")  # and into a fresh fast model
    ids = ids_of(30)
    with torch.no_grad():
        want = fast(ids).logits
        assert_close(plain(ids).logits, want)
        assert_close(back(ids).logits, want)
    plain.save_pretrained(tmp_path / "hf")  # transformers' own format, read back accelerated
    again = MambaForCausalLM.from_pretrained(tmp_path / "hf").eval()
    accelerate(again)
    with torch.no_grad():
        assert_close(again(ids).logits, want)


def test_accelerate_keeps_parameters_and_logs_the_choice(caplog) -> None:
    torch.manual_seed(0)
    model = MambaForCausalLM(tiny_config())
    names = [(n, p.data_ptr()) for n, p in model.named_parameters()]
    mamba_fast._logged.clear()
    with caplog.at_level(logging.INFO, logger="segue"):
        assert accelerate(model) == "segue chunked scan (cpu)"
        assert accelerate(model) == "segue chunked scan (cpu)"  # idempotent
        with torch.no_grad():
            model(ids_of(5))
            model(ids_of(5))
    assert [(n, p.data_ptr()) for n, p in model.named_parameters()] == names
    assert all(isinstance(block.mixer, FastMambaMixer) for block in model.backbone.layers)
    messages = [r.getMessage() for r in caplog.records if r.name == "segue"]
    assert messages == ["Mamba runs on segue chunked scan (cpu)"]
    with pytest.raises(TypeError):
        accelerate(torch.nn.Linear(2, 2))


def test_kernels_chosen_on_cuda_only_when_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    for installed in (False, True):
        monkeypatch.setattr(mamba_fast, "_have_kernels", lambda installed=installed: installed)
        assert not mamba_fast.uses_kernels("cpu")
        assert mamba_fast.path_label("cpu") == "segue chunked scan (cpu)"
        assert mamba_fast.uses_kernels("cuda") is installed
        assert mamba_fast.path_label("cuda") == \
            ("mamba-ssm kernels" if installed else "segue chunked scan (cuda)")


def test_presets_build_accelerated_models() -> None:
    from engine.models.model import build_model, model_config

    model = build_model(model_config(architecture="mamba", vocab_size=VOCAB, layers=2, width=32))
    assert all(isinstance(block.mixer, FastMambaMixer) for block in model.backbone.layers)
    assert isinstance(decoder_for(model), MambaDecoder)
