"""`segue bench`: what training and continuing cost for each preset, as in the study.

For each preset a fresh model trains `steps` steps on windows of the training tunes with
`segue train`'s own pieces (AdamW, warmup + cosine, clipping, autocast on CUDA):

- train.tokens_per_s, train.step_s: the median over the steps after the first (which pays
  for allocation); projected_100k_steps_h: 100,000 steps at the study's batch (16 x 256 tokens),
  scaled linearly by tokens when the bench runs a smaller batch.
- train.records: loss after every step with the wall time, for the loss plots.

Inference, on a fresh model of the same preset (random weights: the cost of a token does not
depend on them; GPT-2 gets enough positions for the longest prompt), at each prompt length:

- first_token_ms: reading the prompt (prefill) up to the first token's logits.
- tokens_per_s: decoding `decode_tokens` tokens one at a time after that prompt, with the cache.
- continuation_ms, continuation_tokens: an 8-bar bar-exact continuation by
  `engine.models.continuation.Engine` of a real tune of that length (random weights write more
  characters per bar than a trained model, so read it with continuation_tokens).

Each preset also says what it ran on (`runs_on`): transformers' GPT-2, or for Mamba the
mamba-ssm kernels (CUDA, where installed) or the chunked scan of `engine.models.mamba_fast`.

Writes results.json, table.md and loss_vs_step.png, loss_vs_time.png,
inference_vs_prompt.png (first token, time per token, 8-bar continuation) into the report folder.
"""

from __future__ import annotations

import os
import statistics
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from engine.errors import SegueError
from engine.models.model import PRESETS

STUDY_BATCH, STUDY_BLOCK, STUDY_STEPS = 16, 256, 100_000
PHRASE = "GABc d2B2 | c2A2 B2G2 | A2F2 G2E2 | D2G2 G4 |\n"
HEAD = "X:1\nM:4/4\nL:1/8\nK:G\n"
# --quick: every preset, a few steps and lengths, under 10 minutes on 2 CPU cores.
QUICK: dict[str, Any] = {"steps": 4, "batch_size": 4, "block_size": 128,
                         "prompt_lengths": [64, 512, 2048], "decode_tokens": 16,
                         "limit_tunes": 200}


@dataclass
class BenchConfig:
    """What `segue bench` measures."""

    presets: list[str] = field(default_factory=lambda: list(PRESETS))
    steps: int = 20
    batch_size: int = STUDY_BATCH
    block_size: int = STUDY_BLOCK
    prompt_lengths: list[int] = field(default_factory=lambda: [64, 128, 256, 512, 1024, 2048])
    decode_tokens: int = 64
    bars: int = 8
    limit_tunes: int | None = 1000
    device: str = "auto"
    threads: int | None = None
    workers: int = 2
    out: str | None = None
    progress: bool = True
    note: str = ""
    command: str = ""


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def bench_training(preset: str, data: np.ndarray, config: BenchConfig,
                   device: torch.device) -> dict[str, Any]:
    """Train a fresh `preset` model for `steps` steps; losses, times and throughput."""
    from tqdm import tqdm

    from engine.models.model import build_model, count_parameters, model_config
    from engine.training.train import (
        TrainConfig,
        batch,
        learning_rate,
        optimizer_for,
        precision,
        train_step,
    )

    train = TrainConfig(out="", preset=preset, batch_size=config.batch_size,
                        block_size=config.block_size, steps=config.steps,
                        warmup=max(1, config.steps // 10))
    torch.manual_seed(0)
    model = build_model(model_config(preset, vocab_size=96)).to(device).train()
    optimizer = optimizer_for(model, train, device)
    autocast, scaler = precision(device)
    records, started = [], time.perf_counter()
    for step in tqdm(range(config.steps), disable=not config.progress, unit="step",
                     desc=f"train {preset}"):
        x, y = batch(data, train, torch.Generator().manual_seed(step), config.batch_size, device)
        begun = time.perf_counter()
        loss = train_step(model, model, optimizer, scaler, autocast, x, y,
                          learning_rate(step, train), train.grad_clip)
        synchronize(device)
        records.append({"step": step + 1, "loss": loss, "step_s": time.perf_counter() - begun,
                        "time_s": time.perf_counter() - started})
    timed = [r["step_s"] for r in records[1:]] or [records[0]["step_s"]]
    step_s = statistics.median(timed)
    tokens = config.batch_size * config.block_size
    return {"parameters": count_parameters(model), "tokens_per_step": tokens,
            "step_s": step_s, "tokens_per_s": tokens / step_s,
            "projected_100k_steps_h": step_s * STUDY_STEPS * STUDY_BATCH * STUDY_BLOCK
            / tokens / 3600, "records": records}


def load_average() -> float | None:
    """The machine's 1-minute load average (None where the system keeps none)."""
    return os.getloadavg()[0] if hasattr(os, "getloadavg") else None


def runs_on(preset: str, device: torch.device) -> str:
    """What a preset's model computes with on `device`, in words."""
    if PRESETS[preset]["architecture"] == "gpt2":
        return f"transformers GPT-2 ({device.type})"
    from engine.models.mamba_fast import path_label

    return path_label(device)


def prompt_tune(length: int) -> str:
    """A real-looking ABC tune of about `length` characters (head included)."""
    lines = max(1, round((length - len(HEAD)) / len(PHRASE)))
    return HEAD + PHRASE * lines


def bench_inference(preset: str, config: BenchConfig, device: torch.device) -> list[dict]:
    """First-token time, decoding speed and an 8-bar continuation at each prompt length."""
    from tqdm import tqdm

    from engine.abc.music import parse_abc
    from engine.abc.prompt import make_prompt
    from engine.models.continuation import Engine, Sampling
    from engine.models.lm import decoder_for
    from engine.models.model import build_model, model_config
    from engine.models.tokenizer import CharTokenizer

    tokenizer = CharTokenizer()
    longest = max(config.prompt_lengths) + 1024
    gpt2 = PRESETS[preset]["architecture"] == "gpt2"
    sizes: dict[str, Any] = {"positions": 2 * longest} if gpt2 else {}
    torch.manual_seed(0)
    model = build_model(model_config(preset, vocab_size=tokenizer.vocab_size, **sizes))
    model.to(device).eval()
    engine = Engine(model, tokenizer, block_size=2 * longest, name=preset, device=str(device))
    warm = decoder_for(model)  # the first call pays for lazy set-up: keep it out of the figures
    warm.step(warm.prefill(torch.tensor([tokenizer.encode(HEAD)], device=device)).argmax(-1))
    rows = []
    for length in tqdm(config.prompt_lengths, disable=not config.progress, unit="prompt",
                       desc=f"infer {preset}"):
        ids = torch.tensor([tokenizer.encode(prompt_tune(length + 64))[:length]],
                           device=device)
        decoder = decoder_for(model)
        begun = time.perf_counter()
        logits = decoder.prefill(ids)
        synchronize(device)
        first_token_ms = (time.perf_counter() - begun) * 1000
        begun = time.perf_counter()
        for _ in range(config.decode_tokens):
            logits = decoder.step(logits.argmax(-1))
        synchronize(device)
        decode_s = time.perf_counter() - begun
        score = parse_abc(prompt_tune(length))
        prompt = make_prompt(score)
        [result] = engine.continue_score(score, config.bars, Sampling(seed=0))
        rows.append({"prompt_tokens": length, "first_token_ms": first_token_ms,
                     "tokens_per_s": config.decode_tokens / decode_s,
                     "ms_per_token": decode_s * 1000 / config.decode_tokens,
                     "continuation_prompt_tokens": len(prompt.head) + len(prompt.body),
                     "continuation_ms": result.elapsed_ms,
                     "continuation_tokens": result.tokens})
    return rows


def bench(config: BenchConfig) -> tuple[Path, dict[str, Any]]:
    """Run the benchmark; write the report folder; return it and the figures."""
    from engine.machine import machine
    from engine.models.checkpoint import pick_device
    from engine.models.tokenizer import CharTokenizer
    from engine.study.report import report_folder, write_json
    from engine.training.dataset import load_corpus, token_array

    unknown = [p for p in config.presets if p not in PRESETS]
    if unknown:
        raise SegueError(f"unknown preset {unknown[0]!r}; choose from {', '.join(PRESETS)}")
    if min(config.steps, config.batch_size, config.block_size, config.decode_tokens,
           *config.prompt_lengths) < 1:
        raise SegueError("--steps, --batch-size, --block-size, --decode-tokens and prompt "
                         "lengths must be at least 1")
    if config.threads:
        torch.set_num_threads(config.threads)
    started, load_before = time.perf_counter(), load_average()
    device = pick_device(config.device)
    corpus = load_corpus(limit=config.limit_tunes, workers=config.workers,
                         progress=config.progress)
    data = token_array(corpus.splits["train"], CharTokenizer())
    if len(data) <= config.block_size + 1:
        raise SegueError(f"the training tunes ({len(data)} tokens) are shorter than one "
                         f"--block-size window ({config.block_size})")
    folder = report_folder("bench", config.out)
    presets = {}
    for preset in config.presets:
        presets[preset] = {"runs_on": runs_on(preset, device),
                           "train": bench_training(preset, data, config, device),
                           "inference": bench_inference(preset, config, device)}
    figures = {"kind": "bench", "command": config.command, "machine": machine(device, 1),
               "device": device.type, "torch": torch.__version__, "note": config.note,
               "config": asdict(config), "cores": os.cpu_count(),
               "seconds": time.perf_counter() - started,
               "load_average": {"start": load_before, "end": load_average()},
               "study": {"batch_size": STUDY_BATCH, "block_size": STUDY_BLOCK,
                         "steps": STUDY_STEPS},
               "presets": presets}
    write_json(folder / "results.json", figures)
    write_bench_report(folder, figures)
    return folder, figures


def write_bench_report(folder: Path, figures: dict[str, Any]) -> None:
    """table.md and the three plots of a benchmark."""
    from engine.files import write_text_atomic
    from engine.study.report import figure_file, markdown_table

    presets = figures["presets"]
    train_rows = [[name, p["runs_on"], f"{p['train']['parameters'] / 1e6:.1f}M",
                   p["train"]["tokens_per_s"],
                   p["train"]["step_s"], p["train"]["projected_100k_steps_h"],
                   p["train"]["records"][-1]["loss"]] for name, p in presets.items()]
    lengths = [r["prompt_tokens"] for r in next(iter(presets.values()))["inference"]]
    infer_rows = [[name, r["prompt_tokens"], r["first_token_ms"], r["tokens_per_s"],
                   r["continuation_ms"] / 1000, r["continuation_tokens"]]
                  for name, p in presets.items() for r in p["inference"]]
    config = figures["config"]
    note = f" Note: {figures['note']}." if figures["note"] else ""
    load = figures["load_average"]
    if load["start"] is not None:
        note += (f" Took {figures['seconds']:.0f} s; load average {load['start']:.1f} at the "
                 f"start, {load['end']:.1f} at the end, on {figures['cores']} cores.")
    write_text_atomic(folder / "table.md", (
        f"`{figures['command'] or 'segue bench'}` on {figures['machine']} (torch "
        f"{figures['torch']}).{note}\n\nTraining, batch {config['batch_size']} x "
        f"{config['block_size']} tokens, {config['steps']} steps; 100k-step time projected at "
        f"the study's batch of {STUDY_BATCH} x {STUDY_BLOCK}:\n\n"
        + markdown_table(["preset", "runs on", "parameters", "tokens/s", "s/step",
                          "100k steps (h)", "last loss"], train_rows)
        + f"\nInference, batch 1 (tokens/s over {config['decode_tokens']} cached decoding "
          f"steps; an {config['bars']}-bar bar-exact continuation, random weights):\n\n"
        + markdown_table(["preset", "prompt tokens", "first token (ms)", "tokens/s",
                          f"{config['bars']} bars (s)", "tokens written"], infer_rows)))
    for key, xlabel in (("step", "step"), ("time_s", "wall time (s)")):
        name = "loss_vs_step.png" if key == "step" else "loss_vs_time.png"
        with figure_file(folder / name) as (_, axes):
            for preset, p in presets.items():
                records = p["train"]["records"]
                axes.plot([r[key] for r in records], [r["loss"] for r in records],
                          marker=".", label=preset)
            axes.set(xlabel=xlabel, ylabel="training loss (nats/token)",
                     title=f"training loss against {xlabel}")
    panels = (("first_token_ms", 1, "time to first token (ms)"),
              ("ms_per_token", 1, "ms per decoded token"),
              ("continuation_ms", 1000, f"{config['bars']}-bar continuation (s)"))
    with figure_file(folder / "inference_vs_prompt.png", (14, 4), columns=3) as (_, axes):
        for preset, p in presets.items():
            for ax, (key, scale, _) in zip(axes, panels, strict=True):
                ax.plot(lengths, [r[key] / scale for r in p["inference"]], marker="o",
                        label=preset)
        for ax, (_, _, ylabel) in zip(axes, panels, strict=True):
            ax.set(xscale="log", xlabel="prompt length (tokens)", ylabel=ylabel)
            ax.set_xticks(lengths, [str(n) for n in lengths])
            ax.minorticks_off()
