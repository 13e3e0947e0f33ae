"""`segue bench` on a configuration smaller than --quick: every figure present and sane, and
the JSON, table and plots written."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from bridge.cli import main
from engine.errors import SegueError
from engine.study.bench import QUICK, BenchConfig, bench

LIMIT = 30
PRESETS = ["gpt2-6m", "mamba-6m"]
LENGTHS = [64, 256]
STEPS = 3


pytestmark = pytest.mark.usefixtures("segue_home")  # conftest.py: a private home


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("bench") / "report"
    status = main(["bench", "--presets", *PRESETS, "--steps", str(STEPS), "--batch-size", "2",
                   "--block-size", "32", "--prompt-lengths", *map(str, LENGTHS),
                   "--decode-tokens", "4", "--limit-tunes", str(LIMIT), "--threads", "1",
                   "--device", "cpu", "--no-progress", "--out", str(out),
                   "--note", "test run"])
    assert status == 0
    return out


def positive(value) -> bool:
    return isinstance(value, int | float) and math.isfinite(value) and value > 0


def test_every_figure_is_present_and_sane(report: Path) -> None:
    figures = json.loads((report / "results.json").read_text())
    assert figures["kind"] == "bench" and figures["device"] == "cpu"
    assert "CPU" in figures["machine"] and figures["note"] == "test run"
    assert list(figures["presets"]) == PRESETS
    assert positive(figures["seconds"]) and figures["cores"] >= 1
    assert all(figures["load_average"][k] >= 0 for k in ("start", "end"))
    for preset, result in figures["presets"].items():
        assert result["runs_on"] == ("transformers GPT-2 (cpu)" if preset == "gpt2-6m"
                                     else "segue chunked scan (cpu)")
        train = result["train"]
        assert 5e6 < train["parameters"] < 8e6, preset
        assert train["tokens_per_step"] == 2 * 32
        for key in ("step_s", "tokens_per_s", "projected_100k_steps_h"):
            assert positive(train[key]), (preset, key)
        assert train["tokens_per_s"] == pytest.approx(64 / train["step_s"])
        # 100k steps of 16 x 256 tokens at the measured rate
        assert train["projected_100k_steps_h"] == pytest.approx(
            100_000 * 16 * 256 / train["tokens_per_s"] / 3600)
        records = train["records"]
        assert [r["step"] for r in records] == list(range(1, STEPS + 1))
        assert all(0 < r["loss"] < 10 for r in records)  # ln(96) = 4.56 at the start
        times = [r["time_s"] for r in records]
        assert times == sorted(times) and all(positive(t) for t in times)
        rows = result["inference"]
        assert [r["prompt_tokens"] for r in rows] == LENGTHS
        for row in rows:
            for key in ("first_token_ms", "tokens_per_s", "ms_per_token", "continuation_ms"):
                assert positive(row[key]), (preset, key)
            assert row["continuation_tokens"] >= 8 * 2  # 8 bars, each a note and a bar line
            assert abs(row["continuation_prompt_tokens"] - row["prompt_tokens"]) < 64


def test_table_and_plots_are_written(report: Path) -> None:
    table = (report / "table.md").read_text()
    assert all(preset in table for preset in PRESETS) and "test run" in table
    assert "| segue chunked scan (cpu) |" in table and " s; load average " in table
    assert table.count("\n| gpt2-6m |") == 1 + len(LENGTHS)
    for name in ("loss_vs_step.png", "loss_vs_time.png", "inference_vs_prompt.png"):
        data = (report / name).read_bytes()
        assert data.startswith(b"\x89PNG") and len(data) > 10_000, name


def test_bad_settings_fail_clearly(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SegueError, match="unknown preset"):
        bench(BenchConfig(presets=["gpt2-7m"], out=str(tmp_path)))
    assert main(["bench", "--steps", "0", "--out", str(tmp_path)]) == 1
    assert "at least 1" in capsys.readouterr().err


def test_busy_machine_warns(tmp_path: Path, capsys: pytest.CaptureFixture,
                            monkeypatch: pytest.MonkeyPatch) -> None:
    for load, warned in ((64.0, True), (0.0, False)):
        monkeypatch.setattr("engine.study.bench.load_average", lambda load=load: load)
        assert main(["bench", "--threads", "2", "--device", "cpu", "--steps", "0",
                     "--out", str(tmp_path)]) == 1  # stops at the check, after the warning
        assert ("the machine is busy (load average 64.0" in capsys.readouterr().err) == warned


def test_quick_is_smaller_than_the_default() -> None:
    default = BenchConfig()
    assert QUICK["steps"] < default.steps and QUICK["batch_size"] < default.batch_size
    assert max(QUICK["prompt_lengths"]) == max(default.prompt_lengths) == 2048
