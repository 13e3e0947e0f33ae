"""Drafts: several answers drawn for each one given, and the one the others agree with kept
(`engine.models.drafts`), through the engine, `segue continue` and a checkpoint's defaults."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import threading
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from server_helpers import check_bars

from engine.abc.meters import bar_meters
from engine.abc.music import parse_abc
from engine.abc.prompt import make_prompt
from engine.abc.registers import voice_centres
from engine.errors import SegueError
from engine.models import continuation, gpt2_fast
from engine.models.continuation import (
    DRAFT_SEEDS,
    Engine,
    Sampling,
    draft_count,
    draft_threads,
)
from engine.models.drafts import agreed, keeps_order, profile_of

TUNE = "X:1\nM:6/8\nL:1/8\nK:Dmix\nA2d dcA|GBd c2A|A2d dcA|G3 G3|\n"
# Two violins a third apart: voices close enough to cross.
DUET_HEAD = "X:1\nM:4/4\nL:1/8\nK:C\nV:1 clef=treble\nV:2 clef=treble\n"
DUET = DUET_HEAD + "V:1\ne2 g2 f2 d2|e2 c2 d4|\nV:2\nc2 e2 d2 B2|c2 A2 B4|\n"


def hand_made(pitch_classes: list[int], steps: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """A hand-made profile: the pitch classes and the melodic steps (-12..12) it counts."""
    pc = np.bincount(pitch_classes, minlength=12).astype(float)
    interval = np.bincount(np.array(steps) + 12, minlength=25).astype(float)
    return pc / pc.sum(), interval / interval.sum()


def test_the_draft_nearest_the_others_is_kept() -> None:
    tonic = hand_made([0, 4, 7], [2, -2])
    near = hand_made([0, 4, 7, 7], [2, -2, 2])
    also_near = hand_made([0, 4, 4, 7], [2, -2, -2])
    outlier = hand_made([1, 6, 10], [7, -9])
    assert agreed([outlier, near, tonic, also_near]) == 2  # between the two others
    assert agreed([outlier, tonic]) == 0  # two drafts: a tie, the first
    # only drafts that keep the voices' order are chosen from, where any does
    assert agreed([outlier, near, tonic, also_near], [True, False, False, True]) == 3
    assert agreed([outlier, near, tonic, also_near], [True, False, False, False]) == 0
    assert agreed([outlier, near, tonic, also_near], [False] * 4) == 2


def test_a_draft_keeps_the_order_of_its_voices_mean_pitches() -> None:
    centres = voice_centres(DUET)  # the first violin a third above the second
    assert keeps_order(centres, DUET_HEAD + "V:1\ng8|\nV:2\nC,8|\n")
    assert not keeps_order(centres, DUET_HEAD + "V:1\nC,8|\nV:2\ng8|\n")  # crossed
    assert not keeps_order(centres, DUET_HEAD + "V:1\nC8|\nV:2\nC8|\n")  # in unison
    assert not keeps_order(centres, DUET_HEAD + "V:1\ng8|\nV:2\nz8|\n")  # the second silent
    assert keeps_order(voice_centres(TUNE), TUNE)  # one voice: no order to keep
    # the key signature counts: in G the first violin's F is F sharp, above the second's F
    close = {"1": 66.5, "2": 66.0}
    assert keeps_order(close, DUET_HEAD.replace("K:C", "K:G") + "V:1\nF8|\nV:2\n=F8|\n")
    assert not keeps_order(close, DUET_HEAD + "V:1\nF8|\nV:2\n=F8|\n")


def test_the_answer_is_the_agreed_one_of_drafts_drawn_with_their_own_seeds(
        tiny_engine: Engine) -> None:
    variations, drafts = 2, 3
    results = tiny_engine.continue_abc(TUNE, bars=2, sampling=Sampling(seed=40, drafts=drafts),
                                       variations=variations)
    prompt = make_prompt(parse_abc(TUNE), chord_symbols=tiny_engine.chord_symbols)
    meters = bar_meters(None, 2, prompt.meter)
    sampling = tiny_engine.resolve_sampling(Sampling(seed=40, drafts=drafts))
    for index, result in enumerate(results):
        # variation i draws seeds 40 + i, 40 + i + DRAFT_SEEDS, 40 + i + 2 * DRAFT_SEEDS
        drawn = [tiny_engine.continuation(prompt, meters, answer, 0.0) for answer in
                 tiny_engine.generate(prompt, meters, sampling,
                                      [40 + index + k * DRAFT_SEEDS for k in range(drafts)])]
        assert len({d.abc for d in drawn}) > 1  # the drafts differ: a choice was made
        chosen = drawn[agreed([profile_of(d.abc) for d in drawn])]
        assert result.abc == chosen.abc
        assert result.tokens == sum(d.tokens for d in drawn)
        check_bars(result.abc, 2)


def test_of_two_voices_the_answer_is_the_agreed_one_of_the_drafts_in_order(
        tiny_engine: Engine) -> None:
    prompt = make_prompt(parse_abc(DUET), chord_symbols=tiny_engine.chord_symbols)
    meters = bar_meters(None, 2, prompt.meter)
    centres = voice_centres(prompt.body)
    changed = 0  # answers the voices' order chose differently from the notes alone
    for seed in range(12):
        result = tiny_engine.continue_abc(DUET, bars=2, sampling=Sampling(seed=seed, drafts=4))
        drawn = [tiny_engine.continuation(prompt, meters, answer, 0.0) for answer in
                 tiny_engine.generate(prompt, meters,
                                      tiny_engine.resolve_sampling(Sampling(drafts=4)),
                                      [seed + k * DRAFT_SEEDS for k in range(4)])]
        profiles = [profile_of(d.abc) for d in drawn]
        ordered = [keeps_order(centres, d.abc) for d in drawn]
        assert result[0].abc == drawn[agreed(profiles, ordered)].abc
        assert keeps_order(centres, result[0].abc) == any(ordered)
        changed += agreed(profiles) != agreed(profiles, ordered)
    assert changed  # random weights cross the violins in some drafts, not in all


def test_the_first_variation_is_the_answer_alone(tiny_engine: Engine) -> None:
    """As `--variations` promises: variation i is the single answer with seed + i, with one
    draft or several."""
    for drafts in (1, 3):
        sampling = Sampling(seed=7, drafts=drafts)
        alone = [tiny_engine.continue_abc(TUNE, bars=2, sampling=replace(sampling, seed=seed))[0]
                 for seed in (7, 9)]
        varied = tiny_engine.continue_abc(TUNE, bars=2, sampling=sampling, variations=3)
        assert [varied[0].abc, varied[2].abc] == [a.abc for a in alone]


def test_drafts_are_decoded_together(tiny_engine: Engine,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """A pass of the model reads a token for each of several drafts: the drafts are shared
    among `draft_threads` threads, each decoding its share as the rows of one batch."""
    rows_read: list[int] = []
    read = gpt2_fast.GPT2Rows._read

    def counted(self: gpt2_fast.GPT2Rows, first: int, tokens: list[list[int]]):  # type: ignore[no-untyped-def]
        rows_read.append(sum(1 for fed in tokens if fed))
        return read(self, first, tokens)

    monkeypatch.setattr(gpt2_fast.GPT2Rows, "_read", counted)
    tiny_engine.continue_abc(TUNE, bars=2, sampling=Sampling(seed=40, drafts=4))
    assert max(rows_read) == 4 // draft_threads(4)
    assert sum(rows_read) / len(rows_read) > 1.5


@pytest.mark.skipif(draft_threads(2) < 2, reason="one core: one thread decodes every draft")
def test_shares_of_drafts_are_decoded_side_by_side(tiny_engine: Engine,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """Two threads decode at once: one after the other, the first would wait at the barrier
    for the second until it broke."""
    barrier = threading.Barrier(2, timeout=60)
    go_on = continuation.decode_together

    def together(*args: object) -> list[tuple[str, str, int]]:
        barrier.wait()
        return go_on(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(continuation, "decode_together", together)
    sampling = Sampling(seed=40, drafts=4)
    [answer] = tiny_engine.continue_abc(TUNE, bars=2, sampling=sampling)
    monkeypatch.undo()
    assert answer.abc == tiny_engine.continue_abc(TUNE, bars=2, sampling=sampling)[0].abc


@pytest.mark.parametrize("drafts", [0, 17, 2.5])
def test_drafts_outside_their_limits_are_refused(tiny_engine: Engine, drafts: float) -> None:
    with pytest.raises(SegueError, match="drafts must be from 1 to 16"):
        tiny_engine.continue_abc(TUNE, bars=2, sampling=Sampling(drafts=drafts))  # type: ignore[arg-type]


def with_sampling(model_path: Path, folder: Path, sampling: dict[str, float]) -> Path:
    """A copy of the tiny checkpoint whose config.json names `sampling`."""
    shutil.copytree(model_path, folder)
    config = json.loads((folder / "config.json").read_text())
    config["sampling"] = sampling
    (folder / "config.json").write_text(json.dumps(config))
    return folder


def test_a_checkpoint_names_its_drafts(model_path: Path, tmp_path: Path) -> None:
    engine = Engine.load(str(with_sampling(model_path, tmp_path / "m", {"drafts": 3})), "cpu")
    assert engine.resolve_sampling(None).drafts == 3
    assert engine.resolve_sampling(Sampling(drafts=1)).drafts == 1
    [answer] = engine.continue_abc(TUNE, bars=2, sampling=Sampling(seed=40))
    [three] = engine.continue_abc(TUNE, bars=2, sampling=Sampling(seed=40, drafts=3))
    [one] = engine.continue_abc(TUNE, bars=2, sampling=Sampling(seed=40, drafts=1))
    assert answer.abc == three.abc and answer.tokens == three.tokens > one.tokens
    with pytest.raises(SegueError, match="drafts must be from 1 to 16"):
        Engine.load(str(with_sampling(model_path, tmp_path / "bad", {"drafts": 40})), "cpu")


def test_cli_drafts(model_path: Path) -> None:
    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "bridge", "continue", "-", "--model",
                               str(model_path), "--bars", "2", "--seed", "40", *args],
                              input=TUNE, capture_output=True, text=True, timeout=300)

    done = run("--drafts", "3")
    assert done.returncode == 0, done.stderr
    check_bars(done.stdout, 2)
    refused = run("--drafts", "0")
    assert refused.returncode != 0 and "drafts must be from 1 to 16" in refused.stderr
    assert refused.stdout == ""



def test_drafts_are_fewer_where_the_work_would_pass_its_limit() -> None:
    """Bars x voices x variations x drafts stay within MAX_WORK_BARS (256), one draft at
    least."""
    assert draft_count(8, 8, 1, 1) == 8  # a tune's 8 bars: every draft asked for
    assert draft_count(8, 8, 4, 1) == 8  # a quartet's: 256 bars exactly
    assert draft_count(16, 32, 1, 1) == 8
    assert draft_count(8, 16, 3, 1) == 5  # a song's 16 bars
    assert draft_count(8, 64, 1, 8) == 1  # the largest request of all: as before drafts
