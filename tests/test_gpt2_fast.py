"""The lean GPT-2 (engine.models.gpt2_fast) gives transformers' numbers on the same weights.

transformers' `GPT2LMHeadModel` with its own cache is the reference throughout: logits of
whole sequences, of a prompt followed by single steps and by several tokens at once, and the
music `Engine` writes, greedy and seeded, token for token. The checkpoints are the tiny random
one of conftest.py and the model Segue ships.
"""

from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
from decoder_helpers import assert_close, assert_forks_go_on_alike, assert_same_logits
from test_continue import TUNES, TWO_VOICES

from engine.models import continuation
from engine.models.cached_decoder import CachedDecoder
from engine.models.checkpoint import load_checkpoint
from engine.models.continuation import Engine, Sampling
from engine.models.gpt2_fast import GPT2, GPT2Decoder, GPT2Rows, supports
from engine.models.lm import Feed, SeparateRows, decoder_for, sequence_logits
from engine.models.model import build_model, model_config
from engine.study.evaluate import bits_per_char

VOCAB = 96


@pytest.fixture(scope="module", params=["tiny", "shipped"])
def pair(request: pytest.FixtureRequest, model_path: Path) -> tuple[torch.nn.Module, GPT2]:
    """(transformers' model, the lean one), loaded from the same checkpoint."""
    name = str(model_path) if request.param == "tiny" else None
    reference = load_checkpoint(name, device="cpu").model
    lean = load_checkpoint(name, device="cpu", lean=True).model
    assert isinstance(lean, GPT2) and not isinstance(reference, GPT2)
    return reference, lean


def ids_of(length: int, batch: int = 2, seed: int = 1) -> torch.Tensor:
    return torch.randint(0, VOCAB, (batch, length), generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("length", [1, 2, 37, 200])
def test_whole_sequence_logits_match(pair, length: int) -> None:
    reference, lean = pair
    ids = ids_of(length)
    with torch.inference_mode():
        expected = reference(input_ids=ids).logits
    assert_close(lean(ids), expected)
    assert_close(sequence_logits(lean, ids), sequence_logits(reference, ids))


@pytest.mark.parametrize("length", [1, 5, 64])
def test_prompt_then_single_steps_match(pair, length: int) -> None:
    reference, lean = pair
    ids = ids_of(length)
    expected, actual = CachedDecoder(reference), decoder_for(lean)
    assert isinstance(actual, GPT2Decoder)
    assert_same_logits(expected, actual, ids, steps=12)


def test_several_tokens_at_once_match_single_steps(pair) -> None:
    reference, lean = pair
    ids = ids_of(61)
    with torch.inference_mode():
        whole = reference(input_ids=ids).logits
    decoder = GPT2Decoder(lean)
    assert_close(decoder.prefill(ids[:, :20]), whole[:, 19])
    assert_close(decoder.extend(ids[:, 20:21]), whole[:, 20])
    assert_close(decoder.extend(ids[:, 21:33]), whole[:, 32])
    assert_close(decoder.step(ids[:, 33]), whole[:, 33])
    assert_close(decoder.extend(ids[:, 34:60]), whole[:, 59])
    assert_close(decoder.step(ids[:, 60]), whole[:, 60])


def test_a_fork_goes_on_alone_from_where_the_prompt_was_read(pair) -> None:
    reference, lean = pair
    assert_forks_go_on_alike(lambda: GPT2Decoder(lean), ids_of(40))
    assert_forks_go_on_alike(lambda: GPT2Decoder(lean, half=True), ids_of(40))
    assert_forks_go_on_alike(lambda: CachedDecoder(reference), ids_of(40))


def test_a_new_prompt_starts_afresh(pair) -> None:
    """The buffers are kept between prompts: nothing of the first may leak into the second."""
    reference, lean = pair
    decoder = GPT2Decoder(lean)
    decoder.prefill(ids_of(50, seed=2))
    decoder.step(ids_of(1, seed=3)[:, 0])
    short = ids_of(10, seed=4)
    with torch.inference_mode():
        expected = reference(input_ids=short).logits[:, -1]
    assert_close(decoder.prefill(short), expected)


def test_transformers_models_get_the_lean_decoder_too(pair) -> None:
    reference, _ = pair
    assert supports(reference)
    assert isinstance(decoder_for(reference), GPT2Decoder)
    ids = ids_of(30)
    want = CachedDecoder(reference).prefill(ids)
    assert_close(GPT2Decoder(reference).prefill(ids), want)


def test_other_gpt2_variants_keep_transformers_cache() -> None:
    """A GPT-2 built with settings the lean decoder does not compute falls back, exactly."""
    model = build_model(model_config(architecture="gpt2", vocab_size=VOCAB, layers=1, width=32,
                                     heads=2, positions=64))
    config: Any = model.config
    config.activation_function = "relu"
    assert not supports(model)
    assert isinstance(decoder_for(model), CachedDecoder)


def test_positions_beyond_the_model_are_a_clear_error(model_path: Path) -> None:
    lean = load_checkpoint(str(model_path), device="cpu", lean=True).model
    decoder = GPT2Decoder(lean)
    decoder.prefill(ids_of(511, batch=1))
    decoder.step(ids_of(1, batch=1)[:, 0])  # position 511, the last of 512
    with pytest.raises(ValueError, match="beyond the model's 512 positions"):
        decoder.step(ids_of(1, batch=1)[:, 0])


@pytest.mark.parametrize("kind", ["batch", "separate"])
def test_rows_read_together_give_each_row_its_own_logits(pair, kind: str) -> None:
    """Drafts decoded as rows of one batch (`GPT2Rows`), or each on a decoder of its own
    (`SeparateRows`, for other models; here transformers' cache): rows in step, rows fed one
    token, several, none, more than are read together, and from the start again, each get
    the logits a lone decoder gives."""
    reference, lean = pair
    prompt = ids_of(30, batch=1)
    alone = [GPT2Decoder(lean) for _ in range(4)]
    reader = GPT2Decoder(lean) if kind == "batch" else CachedDecoder(reference)
    for decoder in (reader, *alone):
        decoder.prefill(prompt)
    rows = GPT2Rows(reader, 4, 512) if isinstance(reader, GPT2Decoder) else \
        SeparateRows(reader, 4, "cpu")
    token = iter(ids_of(60, batch=1, seed=5)[0].tolist())

    def fed(count: int, restart: bool = False) -> Feed:
        return Feed([next(token) for _ in range(count)], restart)

    for feeds in ([fed(1), fed(1), fed(1), fed(1)],  # in step
                  [fed(1), fed(2), None, fed(GPT2Rows.TOGETHER + 3)],
                  [fed(1), fed(1), fed(3), fed(1)],
                  [fed(9, restart=True), None, fed(1), fed(2)],
                  [fed(1), fed(1), fed(1), fed(1)]):
        got = rows.feed(feeds)
        for decoder, row, logits in zip(alone, feeds, got, strict=True):
            if row is None:
                assert logits is None
                continue
            ids = torch.tensor([row.tokens])
            assert logits is not None
            assert_close(logits, (decoder.prefill(ids) if row.restart else decoder.extend(ids))[0])


def test_rows_past_their_positions_are_a_clear_error(model_path: Path) -> None:
    lean = load_checkpoint(str(model_path), device="cpu", lean=True).model
    reader = GPT2Decoder(lean)
    reader.prefill(ids_of(20, batch=1))
    rows = GPT2Rows(reader, 2, 22)
    rows.feed([Feed([1, 2]), Feed([3])])  # positions 20 and 21: the last
    with pytest.raises(ValueError, match="beyond the rows' 22"):
        rows.feed([None, Feed([3, 4])])


def reference_engine(name: str | None, lean: Engine) -> Engine:
    """`lean` with transformers' model in place of the lean one (its sampling defaults, chord
    symbols and fill training kept), decoding with transformers' own cache."""
    reference = copy.copy(lean)
    reference.model = load_checkpoint(name, device="cpu").model.eval()
    return reference


@pytest.mark.parametrize("name", ["tiny", "shipped"])
def test_engine_writes_the_same_music_token_for_token(model_path: Path, name: str,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """Greedy and seeded, one voice and two, and past the context (the window slides); the
    matrices in float32 (float16 ones: `test_half_matrices_...`)."""
    model = str(model_path) if name == "tiny" else None
    lean = Engine.load(model, device="cpu")
    assert isinstance(lean.model, GPT2)
    lean.half = False
    cases = [(TUNES["6/8"], 8, Sampling(temperature=0)), (TUNES["3/4"], 8, Sampling(seed=3)),
             (TUNES["2/2"], 4, Sampling(seed=5, top_k=8, temperature=1.2)),
             (TWO_VOICES, 6, Sampling(seed=2, top_p=0.9)), (TUNES["9/8"], 24, Sampling(seed=4))]
    got = [lean.continue_abc(abc, bars, sampling)[0].abc for abc, bars, sampling in cases]
    reference = reference_engine(model, lean)
    monkeypatch.setattr(continuation, "decoder_for", lambda model, half: CachedDecoder(model))
    want = [reference.continue_abc(abc, bars, sampling)[0].abc for abc, bars, sampling in cases]
    assert got == want


def test_half_matrices_give_float32_logits_to_float16_rounding(model_path: Path) -> None:
    """A checkpoint that stores float16 weights (the shipped one) is decoded with its blocks'
    matrices in float16 for single steps (a quarter less time a step on a CPU): steps between
    prompts and several tokens at once give float32's logits to within 0.02. A float32
    checkpoint (the tiny one) keeps float32."""
    assert not Engine.load(str(model_path), device="cpu").half
    engine = Engine.load(None, device="cpu")
    assert engine.half
    full, half = GPT2Decoder(engine.model), decoder_for(engine.model, half=True)
    assert isinstance(half, GPT2Decoder) and half.step_weights.layers[0].qkv.dtype == torch.float16
    ids = ids_of(40)
    for logits in ((full.prefill(ids[:, :20]), half.prefill(ids[:, :20])),
                   (full.step(ids[:, 20]), half.step(ids[:, 20])),
                   (full.extend(ids[:, 21:40]), half.extend(ids[:, 21:40]))):
        torch.testing.assert_close(logits[1], logits[0], rtol=0, atol=0.02)


def test_bits_per_char_the_same_on_both(pair) -> None:
    reference, lean = pair
    data = ids_of(700, batch=1)[0].numpy()
    assert bits_per_char(lean, data, 64, 4, "cpu", progress=False) == pytest.approx(
        bits_per_char(reference, data, 64, 4, "cpu", progress=False), abs=1e-5)


def test_inference_never_imports_transformers(model_path: Path) -> None:
    code = ("import sys\n"
            "from engine.models.continuation import Engine, Sampling\n"
            f"engine = Engine.load({str(model_path)!r}, device='cpu')\n"
            "engine.continue_abc('X:1\\nM:3/4\\nL:1/8\\nK:G\\nB2d2g2|f4 e2|\\n', 2, "
            "Sampling(seed=1))\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] == 'transformers'))\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=300, check=True)
    assert result.stdout.strip() == "[]", result.stdout
