"""Training: tiny GPT-2 and Mamba models learn, checkpoints reload exactly, runs resume after
kill -9, damaged checkpoints fail clearly, and torchrun trains on two CPU processes."""

from __future__ import annotations

import itertools
import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from engine.abc.text import TUNE_SEPARATOR
from engine.errors import SegueError
from engine.models.checkpoint import (
    STATE_FILE,
    WEIGHTS_FILE,
    list_models,
    load_checkpoint,
    resolve_model,
    save_checkpoint,
)
from engine.models.continuation import Engine
from engine.models.model import build_model, count_parameters, model_config
from engine.models.tokenizer import CharTokenizer
from engine.training.dataset import load_corpus, token_array
from engine.training.train import TrainConfig, train

LIMIT = 30  # training tunes (and 4 validation tunes): enough to see the loss fall
TINY = ["--architecture", "gpt2", "--layers", "2", "--width", "32", "--heads", "2",
        "--block-size", "32", "--batch-size", "4", "--limit-tunes", str(LIMIT), "--lr", "3e-3",
        "--eval-batches", "2", "--log-every", "1", "--no-progress", "--threads", "1"]


pytestmark = pytest.mark.usefixtures("segue_home")  # conftest.py: a private home


def tiny(out: Path, **changes) -> TrainConfig:
    values = {"out": str(out), "preset": None, "architecture": "gpt2", "layers": 2, "width": 32,
              "heads": 2, "block_size": 32, "batch_size": 8, "steps": 30, "lr": 3e-3,
              "warmup": 5, "eval_every": 10, "eval_batches": 2, "checkpoint_every": 10,
              "log_every": 5, "limit_tunes": LIMIT, "workers": 1, "progress": False}
    return TrainConfig(**{**values, **changes})


def metrics(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def segue(*args: str, **kwargs) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "bridge", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, **kwargs)


def test_data_is_canonical_tunes_after_a_blank_line():
    corpus = load_corpus(limit=LIMIT, workers=1, progress=False)
    assert len(corpus.splits["train"]) == LIMIT and len(corpus.splits["valid"]) == 4
    text = CharTokenizer().decode(token_array(corpus.splits["train"], CharTokenizer()).tolist())
    assert text.startswith(TUNE_SEPARATOR + "X:1\n")
    assert text.count("\n\nX:1\n") == LIMIT - 1


@pytest.mark.parametrize("architecture", ["gpt2", "mamba"])
def test_tiny_model_learns(tmp_path: Path, architecture: str):
    run = train(tiny(tmp_path / architecture, architecture=architecture,
                     heads=2 if architecture == "gpt2" else None))
    records = metrics(run)
    train_losses = [r["train_loss"] for r in records if r["train_loss"] is not None]
    val_losses = [r["val_loss"] for r in records if r["val_loss"] is not None]
    assert train_losses[-1] < train_losses[0] - 0.5
    assert val_losses[-1] < val_losses[0] - 0.5
    assert (run / "loss.png").read_bytes()[:4] == b"\x89PNG"
    loaded = load_checkpoint(run, device="cpu")  # a run folder stands for its best checkpoint
    assert loaded.path == run / "best" and loaded.config["model"]["architecture"] == architecture
    assert loaded.config["training"]["steps"] == 30 and not loaded.model.training
    assert loaded.config["abc_language"] == 2  # it read Segue ABC v2: chord symbols allowed
    assert Engine.load(str(run), device="cpu").chord_symbols


@pytest.mark.parametrize("preset", ["gpt2-6m", "mamba-6m"])
def test_checkpoint_reloads_to_the_same_logits(tmp_path: Path, preset: str):
    spec = model_config(preset, vocab_size=96, layers=2, width=64)
    model = build_model(spec).eval()
    ids = torch.randint(0, 96, (2, 40))
    with torch.no_grad():
        expected = model(input_ids=ids).logits
    for dtype, tolerance in ((torch.float32, 0.0), (torch.float16, 0.05)):
        folder = save_checkpoint(tmp_path / str(dtype), model, CharTokenizer(),
                                 {"architecture": spec["architecture"], "preset": preset,
                                  "model": spec, "block_size": 64}, dtype=dtype)
        loaded = load_checkpoint(folder, device="cpu")
        with torch.no_grad():
            logits = loaded.model(input_ids=ids).logits
        assert torch.allclose(logits, expected, atol=tolerance, rtol=0)
        assert loaded.block_size == 64 and loaded.tokenizer.vocab_size == 96
        assert loaded.config["parameters"] == count_parameters(model)


def test_resume_continues_exactly(tmp_path: Path):
    # With warmup longer than the run, the learning rate does not depend on --steps, so a run
    # of 10 steps resumed to 12 must match a run of 12 steps number for number (10 is on the
    # logging and validation grid, so the first part's last records are the straight run's).
    straight = train(tiny(tmp_path / "straight", steps=12, warmup=100, dropout=0.1))
    first = tiny(tmp_path / "resumed", steps=10, warmup=100, dropout=0.1)
    train(first)
    resumed = train(tiny(tmp_path / "resumed", steps=12), {"steps"}, resume=True)
    def numbers(run: Path) -> list[dict]:
        return [{k: v for k, v in r.items() if k not in ("time", "tokens_per_s")}
                for r in metrics(run)]

    assert numbers(resumed) == numbers(straight)
    weights = [load_checkpoint(run / "checkpoint", device="cpu").model.state_dict()
               for run in (straight, resumed)]
    assert all(torch.equal(weights[0][name], weights[1][name]) for name in weights[0])
    with pytest.raises(SegueError, match="already holds a training run"):
        train(first)
    with pytest.raises(SegueError, match="continues the run as it was"):
        train(tiny(resumed, width=64), {"width"}, resume=True)
    with pytest.raises(SegueError, match="nothing to resume"):
        train(tiny(tmp_path / "nothing"), set(), resume=True)


def test_kill_9_then_resume(tmp_path: Path):
    run = tmp_path / "run"
    process = segue("train", *TINY, "--steps", "100000", "--checkpoint-every", "3",
                    "--eval-every", "1000", "--out", str(run))
    state = run / "checkpoint" / STATE_FILE
    deadline = time.monotonic() + 90
    while not state.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    output = process.communicate()[0]
    assert state.exists(), output
    saved = torch.load(state, weights_only=False)["step"]
    assert saved % 3 == 0 and saved >= 3
    assert load_checkpoint(run / "checkpoint", device="cpu").config["training"]["steps"] == saved

    target = saved + 4
    process = segue("train", "--out", str(run), "--resume", "--steps", str(target),
                    "--no-progress")
    output = process.communicate(timeout=120)[0]
    assert process.returncode == 0, output
    steps = [r["step"] for r in metrics(run) if r["train_loss"] is not None]
    assert steps == list(range(1, target + 1))
    assert torch.load(state, weights_only=False)["step"] == target


def test_the_cli_says_which_path_a_mamba_model_trains_on(tmp_path: Path):
    mamba = ["--architecture", "mamba", *TINY[2:]]
    mamba[mamba.index("--heads"):mamba.index("--heads") + 2] = []
    process = segue("train", *mamba, "--steps", "2", "--eval-every", "2", "--out",
                    str(tmp_path / "run"))
    output = process.communicate(timeout=300)[0]
    assert process.returncode == 0, output
    assert "segue: Mamba runs on segue chunked scan (cpu)" in output.splitlines()


def test_damaged_or_missing_checkpoints_are_clear_errors(tmp_path: Path):
    spec = model_config(None, architecture="gpt2", layers=1, width=32, heads=2, vocab_size=96)
    good = save_checkpoint(tmp_path / "good", build_model(spec), CharTokenizer(),
                           {"architecture": "gpt2", "preset": None, "model": spec,
                            "block_size": 32})
    with pytest.raises(SegueError, match="no model named 'nonexistent'"):
        load_checkpoint("nonexistent")
    with pytest.raises(SegueError, match="no such checkpoint folder"):
        load_checkpoint(tmp_path / "missing")
    with pytest.raises(SegueError, match="not a checkpoint"):
        load_checkpoint(tmp_path)

    def damaged(name: str, change) -> Path:
        folder = tmp_path / name
        subprocess.run(["cp", "-r", str(good), str(folder)], check=True)
        change(folder)
        return folder

    truncated = damaged("truncated", lambda f: (f / WEIGHTS_FILE).write_bytes(
        (good / WEIGHTS_FILE).read_bytes()[:5000]))
    bad_json = damaged("json", lambda f: (f / "config.json").write_text("{\"model\": "))
    wider = {**spec, "width": 64, "heads": 2}
    shapes = damaged("shapes", lambda f: (f / "config.json").write_text(json.dumps(
        {**json.loads((good / "config.json").read_text()), "model": wider})))
    for folder, message in ((truncated, f"cannot read {WEIGHTS_FILE}"),
                            (bad_json, "cannot read config.json"),
                            (shapes, "do not fit the model")):
        with pytest.raises(SegueError, match=message):
            load_checkpoint(folder)

    # A kill between moving the old checkpoint aside and the new one in: the old one is used.
    os.replace(good, tmp_path / ".good.old")
    (tmp_path / ".good.tmp-1").mkdir()  # and a half-written one, never taken for a checkpoint
    assert load_checkpoint(tmp_path / "good").path == tmp_path / "good"


def test_the_cli_names_every_preset():
    from bridge.cli import PRESET_NAMES
    from engine.models.model import PRESETS

    assert set(PRESET_NAMES) == set(PRESETS)


def test_models_are_found_by_name(segue_home: Path):
    spec = model_config(None, architecture="mamba", layers=1, width=32, vocab_size=96)
    save_checkpoint(segue_home / "models" / "mine" / "best", build_model(spec), CharTokenizer(),
                    {"architecture": "mamba", "preset": None, "model": spec, "block_size": 32})
    assert resolve_model("mine") == segue_home / "models" / "mine" / "best"
    mine = next(m for m in list_models() if m["name"] == "mine")
    assert mine["architecture"] == "mamba" and not mine["shipped"] and mine["parameters"] > 0
    assert load_checkpoint("mine").name == "mine"


def test_torchrun_two_cpu_processes(tmp_path: Path):
    """Two ranks train one model: each on its own rows, with DDP keeping their weights equal
    (each rank saves its own copy, tests/torchrun_ranks.py), and rank 0 writes that model."""
    run = tmp_path / "ddp"
    script = Path(__file__).parent / "torchrun_ranks.py"
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               "--nproc_per_node", "2", str(script), str(tmp_path), "train", *TINY,
               "--steps", "4", "--checkpoint-every", "2", "--eval-every", "2", "--device",
               "cpu", "--out", str(run)]
    root = str(Path(__file__).resolve().parent.parent)
    done = subprocess.run(command, capture_output=True, text=True, timeout=180,
                          env={**os.environ, "PYTHONPATH": root})
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count("done: step 4") == 1  # only rank 0 speaks and writes
    checkpoint = load_checkpoint(run / "checkpoint", device="cpu")
    config = checkpoint.config
    assert config["training"]["tokens_per_step"] == 2 * 4 * 32
    assert config["training"]["machine"].startswith("2 x CPU")
    ranks = [torch.load(tmp_path / f"rank-{rank}.pt") for rank in (0, 1)]
    saved = checkpoint.model.state_dict()
    torch.manual_seed(config["training"]["config"]["seed"])  # as training began
    start = build_model(config["model"]).state_dict()
    assert ranks[0].keys() == ranks[1].keys() == saved.keys()
    for name, weights in ranks[0].items():
        assert torch.equal(weights, ranks[1][name]), f"the ranks' {name} differ"
        assert torch.equal(weights, saved[name]), f"rank 0 trained {name} but saved another"
    assert any(not torch.equal(ranks[0][name], start[name]) for name in start), "not trained"


def test_a_time_budget_ends_the_run_and_decays_the_rate(tmp_path: Path):
    run = train(tiny(tmp_path / "budget", steps=100_000, minutes=0.15, log_every=1, warmup=1,
                     eval_every=100_000, checkpoint_every=100_000))  # steps, however slow
    records = [r for r in metrics(run) if r["lr"] is not None]
    assert 0 < records[-1]["step"] < 100_000
    assert records[-1]["time"] >= 9.0  # 0.15 minutes
    decay = [r for r in records if r["step"] > 1]  # after the warmup
    assert all(a["lr"] >= b["lr"] for a, b in itertools.pairwise(decay))
    # the rate follows the cosine over the budget's time, whatever the steps cost
    last = decay[-1]
    assert last["lr"] < 3e-3 * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 0.5)))


def test_a_run_can_start_from_another_models_weights(tmp_path: Path):
    first = train(tiny(tmp_path / "first"))
    second = train(tiny(tmp_path / "second", init_from=str(first), steps=1, eval_every=1))
    start = metrics(second)[0]["val_loss"]
    assert start == pytest.approx(min(r["val_loss"] for r in metrics(first)
                                      if r["val_loss"] is not None), abs=0.05)
    fresh = train(tiny(tmp_path / "fresh", steps=1, eval_every=1))
    assert metrics(fresh)[0]["val_loss"] > start + 0.5
    with pytest.raises(SegueError, match="cannot start from these weights"):
        train(tiny(tmp_path / "wider", width=64, init_from=str(first)))


def test_a_resumed_run_trains_on_the_data_it_began_with(tmp_path: Path, monkeypatch):
    run = train(tiny(tmp_path / "kept", steps=10))
    saved = (run / "data" / "train.npy").read_bytes()

    def corpus_again(*args, **kwargs):
        raise AssertionError("a resumed run must not read the corpus again")

    monkeypatch.setattr("engine.training.train.load_corpus", corpus_again)
    train(tiny(tmp_path / "kept", steps=20), {"steps"}, resume=True)
    assert (run / "data" / "train.npy").read_bytes() == saved
    assert max(r["step"] for r in metrics(run)) == 20
