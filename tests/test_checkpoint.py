"""Checkpoints that a kill or a bad edit left behind: temporary folders of killed writers are
removed at the next save or resume, and a malformed tokenizer or config is reported as a
corrupt checkpoint (one line, exit status 1), never an internal error."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from engine.errors import SegueError
from engine.models.checkpoint import load_checkpoint, save_checkpoint

SLOW_SAVE = """
import sys, time
import engine.models.checkpoint as checkpoint
from engine.models.model import build_model, model_config
from engine.models.tokenizer import CharTokenizer

checkpoint.fsync_folder = lambda folder: time.sleep(600)  # stuck in the middle of saving
spec = model_config(None, architecture="gpt2", layers=1, width=32, heads=2, vocab_size=96)
checkpoint.save_checkpoint(sys.argv[1], build_model(spec), CharTokenizer(),
                           {"architecture": "gpt2", "model": spec, "block_size": 32})
"""


def tiny_checkpoint(folder: Path, **extra: object) -> Path:
    from engine.models.model import build_model, model_config
    from engine.models.tokenizer import CharTokenizer

    spec = model_config(None, architecture="gpt2", layers=1, width=32, heads=2, vocab_size=96)
    return save_checkpoint(folder, build_model(spec), CharTokenizer(),
                           {"architecture": "gpt2", "model": spec, "block_size": 32},
                           **extra)  # type: ignore[arg-type]


def killed_while_saving(folder: Path) -> Path:
    """Start a save of `folder` in another process, kill -9 it halfway: its leftover."""
    process = subprocess.Popen([sys.executable, "-c", SLOW_SAVE, str(folder)],
                               env=os.environ | {"PYTHONPATH": str(Path.cwd())})
    leftover = folder.parent / f".{folder.name}.tmp-{process.pid}"
    deadline = time.monotonic() + 120
    while not (leftover / "config.json").exists() and time.monotonic() < deadline:
        assert process.poll() is None
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert (leftover / "model.safetensors").exists()  # half a checkpoint, left behind
    return leftover


def test_a_killed_save_is_cleaned_up_by_the_next_save(tmp_path: Path) -> None:
    leftover = killed_while_saving(tmp_path / "model")
    tiny_checkpoint(tmp_path / "model")
    assert not leftover.exists()
    assert load_checkpoint(tmp_path / "model", device="cpu").path == tmp_path / "model"


def test_a_killed_save_is_cleaned_up_on_resume(tmp_path: Path) -> None:
    from engine.training.train import TrainConfig, resumed_config

    run = tmp_path / "run"
    config = TrainConfig(out=str(run))
    tiny_checkpoint(run / "checkpoint", training_state={"config": dataclasses.asdict(config),
                                                        "step": 3})
    leftover = killed_while_saving(run / "checkpoint")
    _, state = resumed_config(config, set())
    assert state["step"] == 3 and not leftover.exists()


def test_a_writer_still_running_keeps_its_folder(tmp_path: Path) -> None:
    tiny_checkpoint(tmp_path / "model")
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    try:
        working = tmp_path / f".model.tmp-{sleeper.pid}"
        working.mkdir()
        tiny_checkpoint(tmp_path / "model")
        assert working.exists()  # its process is alive: it may still be writing
    finally:
        sleeper.kill()
        sleeper.wait()


DAMAGE = [
    ("tokenizer without alphabet", "tokenizer.json", '{"kind": "char"}'),
    ("tokenizer alphabet a number", "tokenizer.json", '{"kind": "char", "alphabet": 5}'),
    ("tokenizer a list", "tokenizer.json", "[]"),
    ("tokenizer of repeated letters", "tokenizer.json", '{"kind": "char", "alphabet": "aa"}'),
    ("config without block_size", "config.json", None),
    ("config format a string", "config.json", "format"),
]


@pytest.mark.parametrize(("name", "content"), [case[1:] for case in DAMAGE],
                         ids=[case[0] for case in DAMAGE])
def test_malformed_files_are_a_corrupt_checkpoint(tmp_path: Path, name: str,
                                                  content: str | None) -> None:
    folder = tiny_checkpoint(tmp_path / "model")
    if name == "config.json":
        config = json.loads((folder / name).read_text())
        if content is None:
            del config["block_size"]
        else:
            config["format"] = "1"
        (folder / name).write_text(json.dumps(config))
    else:
        (folder / name).write_text(content or "")
    with pytest.raises(SegueError, match="corrupt checkpoint"):
        load_checkpoint(folder, device="cpu")
    result = subprocess.run(
        [sys.executable, "-m", "bridge", "continue", "-", "--model", str(folder), "--device",
         "cpu"], input="X:1\nM:4/4\nL:1/8\nK:C\nCDEF GABc|\n", capture_output=True, text=True,
        timeout=300, env=os.environ | {"SEGUE_DEBUG": ""})
    assert result.returncode == 1, result.stderr
    assert "corrupt checkpoint" in result.stderr and len(result.stderr.splitlines()) == 1
    shutil.rmtree(folder)
