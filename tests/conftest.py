"""Fixtures shared by the test files: small real checkpoints and sample tunes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def model_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small real GPT-2 checkpoint with random weights, saved as `segue train` saves one.

    Bar-exact decoding makes even random weights answer with exactly the bars asked for, so
    transports (HTTP, OSC, MIDI, the plug-in) are tested end to end on it in seconds.
    """
    import torch

    from engine.models.checkpoint import save_checkpoint
    from engine.models.model import build_model, model_config
    from engine.models.tokenizer import CharTokenizer

    torch.manual_seed(0)
    tokenizer = CharTokenizer()
    config = model_config(architecture="gpt2", vocab_size=tokenizer.vocab_size, layers=2,
                          width=64, heads=2, positions=512)
    model = build_model(config)
    folder = tmp_path_factory.mktemp("models") / "tiny-gpt2"
    return save_checkpoint(folder, model, tokenizer,
                           {"architecture": "gpt2", "model": config, "block_size": 256})


@pytest.fixture(scope="session")
def tiny_engine(model_path: Path):
    """The Engine over `model_path`, on the CPU."""
    from engine.models.continuation import Engine

    return Engine.load(str(model_path), device="cpu")


@pytest.fixture(scope="module")
def segue_home(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    """A private $SEGUE_HOME for one test file, its canonical cache of the file's `LIMIT`
    corpus tunes made once (a file uses it with `pytestmark = usefixtures("segue_home")`)."""
    from engine.training.dataset import load_corpus

    home = tmp_path_factory.mktemp("segue-home")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SEGUE_HOME", str(home))
        load_corpus(limit=request.module.LIMIT, workers=1, progress=False)
        yield home


def serving(model: Path | str) -> Iterator[str]:
    """`segue serve` (bridge.service.server over a Worker, HTTP and OSC) with `model`; its URL."""
    from server_helpers import running_server

    with running_server(model) as running:
        yield f"http://127.0.0.1:{running.http_port}"


@pytest.fixture(scope="module")
def tiny_url(model_path: Path) -> Iterator[str]:
    """A server with the tiny model, for one test module: the transports' tests in seconds."""
    yield from serving(model_path)


@pytest.fixture(scope="module")
def shipped_url() -> Iterator[str]:
    """A server with the shipped model, for one test module: what a musician gets."""
    from engine.models.checkpoint import DEFAULT_MODEL

    yield from serving(DEFAULT_MODEL)
