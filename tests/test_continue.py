"""Continuing music: exactly N bars of the prompt's meter and key, through the engine and
through `segue continue`, with clear one-line errors for bad input and no file half-written.

The model is the tiny random GPT-2 of conftest.py: bar-exact decoding must hold even for a
model that knows nothing, so these tests check the decoder, not the training.
"""

from __future__ import annotations

import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import pytest
from music21 import key, meter, stream
from server_helpers import abc2midi_errors, check_bars

from engine.abc.bars import BarState
from engine.abc.music import parse_abc
from engine.abc.registers import guarded, voice_registers
from engine.errors import SegueError
from engine.models.continuation import Engine, Sampling

TUNES = {
    "2/4": "X:1\nM:2/4\nL:1/16\nK:A\nA2c2 e2a2|f4 e4|c2A2 B2c2|A8|\n",
    "3/4": "X:1\nM:3/4\nL:1/8\nK:Eb\nE2G2B2|e4 d2|c2B2G2|B6|\n",
    "4/4": "X:1\nM:4/4\nL:1/8\nK:F#\nF2A2 c2f2|e2c2 A4|B2d2 c2A2|F8|\n",
    "6/8": "X:1\nM:6/8\nL:1/8\nK:Dmix\nA2d dcA|GBd c2A|A2d dcA|G3 G3|\n",
    "9/8": "X:1\nM:9/8\nL:1/8\nK:Gm\nG2B d2B G2B|A2c e2c A2c|G2B d2g f2d|g6 z3|\n",
    "2/2": "X:1\nM:2/2\nL:1/8\nK:Bb\nB2d2 f2d2|c2e2 g4|f2d2 B2c2|B8|\n",
}
TWO_VOICES = ("X:1\nM:3/4\nL:1/8\nK:G\nV:1\nB2d2g2|f4 e2|\nV:2\nG,4 D,2|D,6|\n")


def run_segue(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "bridge", *args], capture_output=True,
                          text=True, input=stdin, timeout=300)


def bar_lengths(abc: str) -> list[Fraction]:
    """Every bar's length in whole notes, as music21 (not our decoder) reads it."""
    score = parse_abc(abc)
    return [Fraction(m.duration.quarterLength) / 4
            for part in score.parts for m in part.getElementsByClass(stream.Measure)]


def key_of(abc: str) -> int:
    return parse_abc(abc).recurse().getElementsByClass(key.KeySignature).first().sharps


@pytest.mark.parametrize("signature", sorted(TUNES))
def test_continuation_has_four_full_bars_in_every_meter_and_key(tiny_engine: Engine,
                                                                signature: str):
    prompt = TUNES[signature]
    [result] = tiny_engine.continue_abc(prompt, bars=4, sampling=Sampling(seed=3))
    check_bars(result.abc, 4)
    bar = Fraction(meter.TimeSignature(signature).barDuration.quarterLength) / 4
    assert bar_lengths(result.abc) == [bar] * 4, result.abc
    assert key_of(result.abc) == key_of(prompt)
    assert f"M:{signature}" in result.abc


@pytest.mark.parametrize("bars", [1, 8, 16])
def test_continuation_has_exactly_the_bars_asked_for(tiny_engine: Engine, bars: int):
    [result] = tiny_engine.continue_abc(TUNES["6/8"], bars=bars, sampling=Sampling(seed=bars))
    check_bars(result.abc, bars)
    assert result.bars == bars
    assert bar_lengths(result.abc) == [Fraction(3, 4)] * bars


def test_the_last_bar_ties_to_nothing_never(tiny_engine: Engine):
    """A tie out of the last bar would point at a note that is never written."""
    full_last_bar = BarState.start(bar=Fraction(2), bars_left=1)
    for text in ("F2", "[CE]2"):
        state = full_last_bar
        for ch in text:
            state = state.feed(ch)
        assert state.feed("-") is None, text
    assert full_last_bar.feed("[").feed("C").feed("-") is None
    assert BarState.start(bar=Fraction(2), bars_left=2).feed("F").feed("2").feed("-") is not None
    for seed in range(12):
        [result] = tiny_engine.continue_abc(TUNES["4/4"], bars=2, sampling=Sampling(seed=seed))
        last_note = list(parse_abc(result.abc).recurse().notes)[-1]
        assert last_note.tie is None or last_note.tie.type == "stop", result.abc


def test_with_prompt_holds_the_prompt_then_the_new_bars(tiny_engine: Engine):
    [result] = tiny_engine.continue_abc(TUNES["3/4"], bars=4, sampling=Sampling(seed=1))
    check_bars(result.with_prompt, 8)
    assert "E2G2B2" in result.with_prompt.replace(" ", "")


def test_every_voice_gets_the_bars(tiny_engine: Engine):
    [result] = tiny_engine.continue_abc(TWO_VOICES, bars=4, sampling=Sampling(seed=2))
    check_bars(result.abc, 4)
    assert len(parse_abc(result.abc).parts) == 2


def test_each_voice_keeps_near_its_register_in_the_prompt(tiny_engine: Engine):
    """Even a model that knows nothing keeps each voice within REGISTER_MARGIN semitones of
    the notes it had in the prompt (music21 reads the pitches)."""
    registers = voice_registers(TWO_VOICES.split("K:G\n", 1)[1])
    for seed in range(6):
        [result] = tiny_engine.continue_abc(TWO_VOICES, bars=4, sampling=Sampling(seed=seed))
        for name, part in zip(("1", "2"), parse_abc(result.abc).parts, strict=True):
            low, high = guarded(registers[name])
            pitches = [p.midi for p in part.pitches]
            assert all(low <= pitch <= high for pitch in pitches), (name, pitches, result.abc)


def test_a_prompt_longer_than_the_context_keeps_its_last_bars(tiny_engine: Engine):
    long_prompt = TUNES["4/4"] + "F2A2 c2f2|e2c2 A4|" * 200  # 4,000 characters, context 256
    [result] = tiny_engine.continue_abc(long_prompt, bars=2, sampling=Sampling(seed=4))
    check_bars(result.abc, 2)


def test_same_seed_same_music_and_other_seeds_differ(tiny_engine: Engine):
    def take(seed: int) -> str:
        return tiny_engine.continue_abc(TUNES["4/4"], bars=4, sampling=Sampling(seed=seed))[0].abc

    assert take(11) == take(11)
    assert len({take(seed) for seed in range(4)}) > 1


def test_variations_differ(tiny_engine: Engine):
    results = tiny_engine.continue_abc(TUNES["2/2"], bars=2, sampling=Sampling(seed=5),
                                       variations=3)
    assert len(results) == 3
    assert len({r.abc for r in results}) > 1
    for result in results:
        check_bars(result.abc, 2)


@pytest.mark.parametrize(("call", "message"), [
    (lambda e: e.continue_abc(TUNES["3/4"], bars=0), "bars must be from 1 to 64"),
    (lambda e: e.continue_abc(TUNES["3/4"], bars=100000), "bars must be from 1 to 64"),
    (lambda e: e.continue_abc("X:1\nM:3/4\nL:1/8\nK:C\n", bars=2), "no notes"),
    (lambda e: e.continue_abc(TUNES["3/4"], sampling=Sampling(temperature=-1)), "temperature"),
    (lambda e: e.continue_abc(TUNES["3/4"], sampling=Sampling(top_p=0)), "top_p"),
    (lambda e: e.continue_abc(TUNES["3/4"], variations=0), "variations"),
])
def test_bad_requests_raise_a_clear_error(tiny_engine: Engine, call, message: str):
    with pytest.raises(SegueError, match=message):
        call(tiny_engine)


def test_cli_prints_abc_and_writes_musicxml(model_path: Path, tmp_path: Path):
    tune = tmp_path / "tune.abc"
    tune.write_text(TUNES["3/4"])
    printed = run_segue("continue", str(tune), "--bars", "4", "--seed", "1",
                        "--model", str(model_path))
    assert printed.returncode == 0, printed.stderr
    assert printed.stdout.endswith("|]\n")  # the status line on stderr starts a line of its own
    check_bars(printed.stdout, 4)
    out = tmp_path / "next.musicxml"
    saved = run_segue("continue", str(tune), "--bars", "4", "--seed", "1", "--model",
                      str(model_path), "-o", str(out))
    assert saved.returncode == 0, saved.stderr
    assert bar_lengths(printed.stdout) == [Fraction(3, 4)] * 4
    from engine.abc.music import note_events, read_score
    assert note_events(read_score(out)) == note_events(parse_abc(printed.stdout))


def test_cli_continues_a_selection_of_a_musicxml_score(model_path: Path, tmp_path: Path):
    source = tmp_path / "two.musicxml"
    subprocess.run([sys.executable, "-m", "bridge", "convert", "-", str(source)], check=True,
                   input=TWO_VOICES, capture_output=True, text=True)
    result = run_segue("continue", str(source), "--part", "1", "--measures", "1-2",
                       "--bars", "3", "--model", str(model_path), "--seed", "2")
    assert result.returncode == 0, result.stderr
    check_bars(result.stdout, 3)


def test_cli_says_which_path_a_mamba_model_runs_on(tmp_path: Path):
    from engine.models.checkpoint import save_checkpoint
    from engine.models.model import build_model, model_config
    from engine.models.tokenizer import CharTokenizer

    tokenizer = CharTokenizer()
    config = model_config(architecture="mamba", vocab_size=tokenizer.vocab_size, layers=2,
                          width=32)
    folder = save_checkpoint(tmp_path / "tiny-mamba", build_model(config), tokenizer,
                             {"architecture": "mamba", "model": config, "block_size": 256})
    tune = tmp_path / "tune.abc"
    tune.write_text(TUNES["2/4"])
    printed = run_segue("continue", str(tune), "--bars", "1", "--seed", "1",
                        "--model", str(folder))
    assert printed.returncode == 0, printed.stderr
    check_bars(printed.stdout, 1)
    assert "segue: Mamba runs on segue chunked scan (cpu)" in printed.stderr.splitlines()


@pytest.mark.parametrize(("args", "message"), [
    (["--bars", "0"], "--bars must be from 1 to 64"),
    (["--bars", "100000"], "--bars must be from 1 to 64"),
    (["--measures", "40-41"], "error: --measures 40-41 is outside the score"),
    (["--part", "3"], "error: --part 3: the score has parts 1"),
    (["--model", "/nonexistent/model"], "model"),
    (["--temperature", "-2"], "temperature"),
    (["--temperature", "7"], "error: --temperature must be from 0 to 5, not 7.0"),
    (["--seed", "-1"], "error: --seed must be from 0 to 9223372036854775807, not -1"),
    (["--register-lean", "11"], "error: --register-lean must be from 0 to 10, not 11.0"),
])
def test_cli_bad_input_is_one_line_and_writes_nothing(model_path: Path, tmp_path: Path,
                                                      args: list[str], message: str):
    tune = tmp_path / "tune.abc"
    tune.write_text(TUNES["3/4"])
    out = tmp_path / "answer.mid"
    model = [] if "--model" in args else ["--model", str(model_path)]
    result = run_segue("continue", str(tune), *model, *args, "-o", str(out))
    assert result.returncode == 1, result.stderr
    assert message in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert not out.exists()
    assert list(tmp_path.iterdir()) == [tune]  # no temporary file left behind either


def test_cli_unknown_output_format_is_refused_before_any_work(tmp_path: Path):
    result = run_segue("continue", str(tmp_path / "missing.abc"), "-o", str(tmp_path / "a.pdf"))
    assert result.returncode == 1
    assert ".pdf" in result.stderr and "Traceback" not in result.stderr


def test_cli_corrupt_checkpoint_is_a_clear_error(model_path: Path, tmp_path: Path):
    broken = tmp_path / "broken"
    broken.mkdir()
    for item in model_path.iterdir():
        (broken / item.name).write_bytes(item.read_bytes())
    weights = broken / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    tune = tmp_path / "tune.abc"
    tune.write_text(TUNES["3/4"])
    result = run_segue("continue", str(tune), "--model", str(broken))
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert str(broken) in result.stderr or "broken" in result.stderr


@pytest.fixture(scope="module")
def shipped_engine() -> Engine:
    """The model that ships with Segue, as `segue continue` loads it with no --model."""
    return Engine.load(None, device="cpu")


@pytest.mark.parametrize("signature", sorted(TUNES))
def test_shipped_model_writes_exact_bars_that_music21_and_abc2midi_read(shipped_engine: Engine,
                                                                        signature: str):
    bar = Fraction(meter.TimeSignature(signature).barDuration.quarterLength) / 4
    for bars in (1, 4, 8, 16):
        [result] = shipped_engine.continue_abc(TUNES[signature], bars=bars,
                                               sampling=Sampling(seed=bars))
        assert bar_lengths(result.abc) == [bar] * bars, result.abc
        assert key_of(result.abc) == key_of(TUNES[signature])
        assert not abc2midi_errors(result.abc), result.abc


def test_shipped_model_same_seed_same_music(shipped_engine: Engine):
    def answer(seed: int) -> str:
        [result] = shipped_engine.continue_abc(TUNES["6/8"], bars=4, sampling=Sampling(seed=seed))
        return result.abc

    assert answer(5) == answer(5)
    assert len({answer(seed) for seed in (5, 6, 7)}) == 3
