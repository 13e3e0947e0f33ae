"""A checkpoint's own sampling defaults (config.json "sampling"): what a request that sets no
temperature, top_p or top_k gets, in the engine, the CLI and the server's model list."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from bridge.cli import main
from engine.errors import SegueError
from engine.models.checkpoint import DEFAULT_SAMPLING, read_config, write_sampling_defaults
from engine.models.continuation import Engine, Sampling

TUNE = "X:1\nM:4/4\nL:1/8\nK:G\nGABc d2B2 | c2A2 B2G2 |\n"


@pytest.fixture
def greedy_model(model_path: Path, tmp_path: Path) -> Path:
    """The tiny model, its config.json asking for greedy sampling."""
    folder = tmp_path / "greedy"
    shutil.copytree(model_path, folder)
    write_sampling_defaults(folder, {"temperature": 0.0, "top_p": 0.9, "top_k": 5,
                                     "chord_tones": 1.5, "register_lean": 2.0,
                                     "chord_fit": 2.5})
    return folder


def test_the_checkpoint_default_is_used_where_a_request_sets_none(greedy_model: Path) -> None:
    engine = Engine.load(str(greedy_model), device="cpu")
    assert engine.resolve_sampling(None) == Sampling(temperature=0.0, top_p=0.9, top_k=5,
                                                     chord_tones=1.5, register_lean=2.0,
                                                     chord_fit=2.5, drafts=1)
    assert engine.resolve_sampling(Sampling(chord_tones=0)).chord_tones == 0  # the request's
    assert engine.resolve_sampling(Sampling(register_lean=0)).register_lean == 0
    assert engine.resolve_sampling(Sampling(chord_fit=0)).chord_fit == 0
    # greedy by default: every seed gives the same answer, the explicit greedy one
    answers = {engine.continue_abc(TUNE, bars=2, sampling=Sampling(seed=seed))[0].abc
               for seed in (1, 2, 3)}
    [greedy] = engine.continue_abc(TUNE, bars=2, sampling=Sampling(temperature=0, seed=9))
    assert answers == {greedy.abc}
    # a request's own setting wins over the model's
    sampled = {engine.continue_abc(TUNE, bars=2, sampling=Sampling(temperature=1.5, top_k=0,
                                                                   top_p=1.0, seed=seed))[0].abc
               for seed in (1, 2, 3)}
    assert len(sampled) > 1


def test_a_model_without_an_entry_gets_the_engine_defaults(tiny_engine) -> None:
    assert tiny_engine.resolve_sampling(Sampling(seed=4)) == Sampling(**DEFAULT_SAMPLING, seed=4)


def test_the_cli_uses_the_model_default(greedy_model: Path, tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    prompt = tmp_path / "prompt.abc"
    prompt.write_text(TUNE)
    outputs = []
    for seed in ("1", "2"):
        assert main(["continue", str(prompt), "--model", str(greedy_model), "--bars", "2",
                     "--seed", seed, "--device", "cpu"]) == 0
        outputs.append(capsys.readouterr().out)
    assert outputs[0] == outputs[1] and "|" in outputs[0]


@pytest.mark.parametrize("entry", [{"temperature": "hot"}, {"top_p": 0}, {"top_k": 2.5},
                                   {"chord_tones": -1}, {"register_lean": 11},
                                   {"chord_fit": -0.5}, {"heat": 1},
                                   # above what a request may ask for (engine.settings.LIMITS)
                                   {"temperature": 7.0}, {"top_k": 200_000},
                                   [0.9]])
def test_a_bad_entry_is_refused_clearly(model_path: Path, tmp_path: Path, entry) -> None:
    folder = tmp_path / "bad"
    shutil.copytree(model_path, folder)
    config = read_config(folder) | {"sampling": entry}
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(SegueError, match="sampling"):
        Engine.load(str(folder), device="cpu")
    with pytest.raises(SegueError, match="sampling"):
        write_sampling_defaults(folder, entry)  # type: ignore[arg-type]
