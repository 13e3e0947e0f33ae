"""Training: nanoGPT's loop around a `transformers` GPT-2 or Mamba, on canonical ABC.

The tunes are cut into windows of at most `block_size` characters at bar lines, each under its
own head, and `fill` of them made into fill-in-the-middle examples (`engine.abc.windows`). Batches
are random stretches of `block_size + 1` tokens from the concatenated windows
(`engine.training.dataset`). The windows of step s come from a generator seeded with
(seed, s), so the data position is a function of the step: resuming at step s sees exactly the
batches an uninterrupted run would have seen. AdamW (weight decay on matrices only), linear
warmup then cosine decay to a tenth of the peak rate, gradient clipping, bf16/fp16 autocast on
CUDA.

A run folder holds:
    data/          the run's token arrays and corpus summary, made by its first session
    checkpoint/    the latest checkpoint (float32) with training_state.pt, for --resume
    best/          the checkpoint with the lowest validation loss so far (float16: ship this)
    metrics.jsonl  step, time, train_loss, val_loss, lr, tokens_per_s
    loss.png       the losses, drawn at the end
Under torchrun every rank trains on its own windows (DDP); only rank 0 writes.
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F

from engine.abc.text import TUNE_SEPARATOR
from engine.abc.windows import training_texts
from engine.abc.writer import LANGUAGE_VERSION
from engine.errors import SegueError
from engine.files import atomic_path, write_text_atomic
from engine.machine import machine
from engine.models.checkpoint import (
    STATE_FILE,
    load_weights,
    pick_device,
    recover,
    save_checkpoint,
    warm_start,
)
from engine.models.model import build_model, count_parameters, model_config
from engine.models.tokenizer import CharTokenizer
from engine.training.dataset import load_corpus, token_array

if TYPE_CHECKING:
    from collections.abc import Callable
    from contextlib import AbstractContextManager

    # What `precision` returns first: makes the context a forward pass runs in (autocast).
    Autocast = Callable[[], AbstractContextManager[None]]

# What --resume takes from the run as it was: a different value here is an error.
FIXED_ON_RESUME = ("preset", "architecture", "layers", "width", "heads", "dropout", "data",
                   "bundled", "limit_tunes", "augment", "fill", "block_size", "batch_size", "seed",
                   "init_from")


@dataclass
class TrainConfig:
    """Everything that decides a training run (saved with its checkpoints)."""

    out: str
    preset: str | None = "gpt2-6m"
    architecture: str | None = None
    layers: int | None = None
    width: int | None = None
    heads: int | None = None
    dropout: float | None = None
    data: list[str] = field(default_factory=list)
    bundled: bool = True
    limit_tunes: int | None = None
    augment: int = 0
    fill: float = 0.0
    block_size: int = 256
    batch_size: int = 16
    steps: int = 5000
    minutes: float | None = None
    lr: float = 1e-3
    warmup: int = 200
    weight_decay: float = 0.1
    grad_clip: float = 1.0
    eval_every: int = 250
    eval_batches: int = 20
    checkpoint_every: int = 500
    log_every: int = 10
    seed: int = 1337
    init_from: str | None = None
    device: str = "auto"
    threads: int | None = None
    workers: int = 2
    progress: bool = True
    command: str = ""


def learning_rate(step: int, config: TrainConfig, elapsed: float = 0.0) -> float:
    """Linear warmup to `lr`, then cosine decay to lr/10 at the last step, or, with a time
    budget (`minutes`), at whichever of the last step and the end of the budget comes first."""
    if step < config.warmup:
        return config.lr * (step + 1) / config.warmup
    progress = (step - config.warmup) / max(1, config.steps - config.warmup)
    if config.minutes:
        progress = max(progress, elapsed / (config.minutes * 60))
    progress = min(1.0, progress)
    return config.lr * (0.1 + 0.9 * 0.5 * (1.0 + math.cos(math.pi * progress)))


def batch(data: np.ndarray, config: TrainConfig, generator: torch.Generator, count: int,
          device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """`count` random windows of `data`: inputs and next-token targets, (count, block_size)."""
    starts = torch.randint(len(data) - config.block_size - 1, (count,), generator=generator)
    rows = np.stack([data[s: s + config.block_size + 1] for s in starts.tolist()])
    tokens = torch.from_numpy(rows.astype(np.int64)).to(device)
    return tokens[:, :-1], tokens[:, 1:]


def loss_of(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    logits = model(input_ids=x, use_cache=False).logits
    return F.cross_entropy(logits.float().reshape(-1, logits.size(-1)), y.reshape(-1))


class Distributed:
    """This process's place under torchrun (rank 0 of 1 without it)."""

    def __init__(self, device: str) -> None:
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        local = int(os.environ.get("LOCAL_RANK", "0"))
        if self.world > 1:
            import torch.distributed as dist

            cuda = torch.cuda.is_available() and device in ("auto", "cuda")
            dist.init_process_group("nccl" if cuda else "gloo")
            self.device = torch.device(f"cuda:{local}") if cuda else torch.device("cpu")
            if cuda:
                torch.cuda.set_device(self.device)
        else:
            self.device = pick_device(device)

    @property
    def main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.world > 1:
            torch.distributed.barrier()

    def mean(self, value: float) -> float:
        """The mean of `value` over all ranks."""
        if self.world == 1:
            return value
        tensor = torch.tensor([value], dtype=torch.float64, device=self.device)
        torch.distributed.all_reduce(tensor)
        return tensor.item() / self.world

    def close(self) -> None:
        if self.world > 1:
            torch.distributed.destroy_process_group()


@torch.no_grad()
def evaluate(model: torch.nn.Module, data: np.ndarray, config: TrainConfig,
             dist: Distributed, autocast: Autocast) -> float:
    """Mean loss over the same `eval_batches` validation windows every time."""
    generator = torch.Generator().manual_seed(config.seed + 1)
    model.eval()
    losses = []
    for index in range(config.eval_batches):
        x, y = batch(data, config, generator, config.batch_size, dist.device)
        if index % dist.world == dist.rank:
            with autocast():
                losses.append(loss_of(model, x, y).item())
    model.train()
    share = sum(losses) / max(1, len(losses))
    return dist.mean(share) if config.eval_batches >= dist.world else share


def optimizer_for(model: torch.nn.Module, config: TrainConfig,
                  device: torch.device) -> torch.optim.AdamW:
    """AdamW with weight decay on matrices (not on biases, norms or 1-d parameters)."""
    params = [p for p in model.parameters() if p.requires_grad]
    groups = [{"params": [p for p in params if p.dim() >= 2], "weight_decay": config.weight_decay},
              {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=config.lr, betas=(0.9, 0.95),
                             fused=device.type == "cuda")


def precision(device: torch.device) -> tuple[Autocast, torch.amp.GradScaler | None]:
    """(autocast context factory, GradScaler or None): bf16 or fp16 on CUDA, float32 elsewhere."""
    import contextlib

    if device.type != "cuda":
        return contextlib.nullcontext, None
    dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    scaler = torch.amp.GradScaler("cuda") if dtype == torch.float16 else None
    return (lambda: torch.autocast("cuda", dtype=dtype)), scaler


def resumed_config(config: TrainConfig, given: set[str]) -> tuple[TrainConfig, dict[str, Any]]:
    """The run's saved config (updated with the `given` options that may change) and state."""
    recover(Path(config.out) / "checkpoint")  # a kill in the middle of saving it
    path = Path(config.out) / "checkpoint" / STATE_FILE
    if not path.exists():
        raise SegueError(f"{config.out}: nothing to resume (no checkpoint/{STATE_FILE})")
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
        saved = TrainConfig(**state["config"])
    except Exception as error:
        raise SegueError(f"{path}: corrupt training state ({error})") from None
    for name in given:
        value = getattr(config, name)
        if name in FIXED_ON_RESUME and value != getattr(saved, name):
            raise SegueError(f"--resume continues the run as it was: --{name.replace('_', '-')}"
                             f" was {getattr(saved, name)!r}, not {value!r}")
        setattr(saved, name, value)
    return saved, state


def run_data(config: TrainConfig, dist: Distributed,
             tokenizer: CharTokenizer) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """The run's training and validation tokens and a summary of its corpus.

    The first session of a run builds them from the corpus (windows, fill-in-the-middle
    examples) and keeps them in the run folder (data/, as nanoGPT keeps train.bin): a resumed
    run trains on exactly the data it began with, even after Segue's ABC writer has changed,
    and never waits for the corpus to be converted again.
    """
    folder = Path(config.out) / "data"
    if (folder / "summary.json").exists():
        return (np.load(folder / "train.npy"), np.load(folder / "valid.npy"),
                json.loads((folder / "summary.json").read_text("utf-8")))
    if not dist.main:
        dist.barrier()  # rank 0 fills the canonical cache first
    corpus = load_corpus(config.data, bundled=config.bundled, limit=config.limit_tunes,
                         augment=config.augment, workers=config.workers,
                         progress=config.progress and dist.main)
    if dist.main:
        dist.barrier()
    window = config.block_size - len(TUNE_SEPARATOR)
    train_data = token_array(training_texts(corpus.splits["train"], window,
                                            fill_share=config.fill, seed=config.seed), tokenizer)
    valid_data = token_array(training_texts(corpus.splits["valid"], window,
                                            fill_share=config.fill, seed=config.seed + 1),
                             tokenizer)
    summary = corpus.summary()
    if dist.main:
        folder.mkdir(parents=True, exist_ok=True)
        for name, array in (("train", train_data), ("valid", valid_data)):
            with atomic_path(folder / f"{name}.npy") as tmp, open(tmp, "wb") as handle:
                np.save(handle, array)
        write_text_atomic(folder / "summary.json", json.dumps(summary, indent=2) + "\n")
    return train_data, valid_data, summary


def write_metrics(path: Path, records: list[dict[str, Any]]) -> None:
    write_text_atomic(path, "".join(json.dumps(r) + "\n" for r in records))


def plot_losses(records: list[dict[str, Any]], path: Path, title: str) -> None:
    """Train and validation loss against steps, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(7, 4))
    for key, label in (("train_loss", "train"), ("val_loss", "validation")):
        points = [(r["step"], r[key]) for r in records if r.get(key) is not None]
        if points:
            axes.plot(*zip(*points, strict=True), label=label, marker="." if key == "val_loss"
                      else None)
    axes.set(xlabel="step", ylabel="loss (nats/token)", title=title)
    axes.grid(alpha=0.3)
    axes.legend()
    figure.tight_layout()
    with atomic_path(path) as tmp:
        figure.savefig(tmp, dpi=100, format="png")
    plt.close(figure)


def train_step(net: torch.nn.Module, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
               scaler: torch.amp.GradScaler | None, autocast: Autocast,
               x: torch.Tensor, y: torch.Tensor, lr: float, grad_clip: float) -> float:
    """One optimizer step at learning rate `lr`; the batch's loss."""
    for group in optimizer.param_groups:
        group["lr"] = lr
    with autocast():
        loss = loss_of(net, x, y)
    optimizer.zero_grad(set_to_none=True)
    if scaler is None:
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
        optimizer.step()
    else:
        scaler.scale(loss).backward()
        scaler.unscale_(optimizer)
        torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
        scaler.step(optimizer)
        scaler.update()
    return loss.item()


def train(config: TrainConfig, given: set[str] | None = None, resume: bool = False) -> Path:
    """Train (or with `resume`, continue) the run in `config.out`; return its folder.

    `given` names the options set on the command line: on resume those override the run's
    saved config (only schedule, logging and machine options may differ).
    """
    from tqdm import tqdm

    out = Path(config.out)
    state: dict[str, Any] = {}
    if resume:
        config, state = resumed_config(config, given or set())
    elif (out / "checkpoint").exists():
        raise SegueError(f"{out} already holds a training run: add --resume to continue it, "
                         "or choose another --out")
    if config.threads:
        torch.set_num_threads(config.threads)
    dist = Distributed(config.device)
    tokenizer = CharTokenizer()
    train_data, valid_data, data_summary = run_data(config, dist, tokenizer)
    if len(valid_data) <= config.block_size + 1:
        raise SegueError(f"the validation tunes ({len(valid_data)} tokens) are shorter than "
                         f"one --block-size window ({config.block_size}); use a smaller one")

    spec = model_config(config.preset, vocab_size=tokenizer.vocab_size,
                        architecture=config.architecture, layers=config.layers,
                        width=config.width, heads=config.heads, dropout=config.dropout)
    if spec["architecture"] == "gpt2" and config.block_size > spec["positions"]:
        raise SegueError(f"--block-size {config.block_size} exceeds the model's "
                         f"{spec['positions']} positions")
    torch.manual_seed(config.seed)
    model = build_model(spec)
    if state:
        load_weights(model, out / "checkpoint")
    elif config.init_from:
        started_from = warm_start(model, config.init_from)
        if dist.main:
            print(f"starting from the weights of {started_from}", flush=True)
    model.to(dist.device).train()
    optimizer = optimizer_for(model, config, dist.device)
    autocast, scaler = precision(dist.device)
    step, before, best, val_loss = 0, 0.0, math.inf, None
    metrics_path = out / "metrics.jsonl"
    records: list[dict[str, Any]] = []
    if state:
        optimizer.load_state_dict(state["optimizer"])
        if scaler is not None and state.get("scaler"):
            scaler.load_state_dict(state["scaler"])
        torch.set_rng_state(state["rng"])
        step, before, best, val_loss = (state["step"], state["elapsed"],
                                        state["best_val_loss"], state.get("val_loss"))
        if metrics_path.exists():
            records = [r for r in map(json.loads, metrics_path.read_text().splitlines())
                       if r["step"] <= step]
    net = model
    if dist.world > 1:
        from torch.nn.parallel import DistributedDataParallel

        net = DistributedDataParallel(
            model, device_ids=[dist.device.index] if dist.device.type == "cuda" else None)

    tokens_per_step = config.batch_size * config.block_size * dist.world
    summary: dict[str, Any] = {
        "command": config.command, "machine": machine(dist.device, dist.world),
        "data": data_summary, "config": asdict(config),
        "parameters": count_parameters(model), "tokens_per_step": tokens_per_step}

    run_start = time.perf_counter()

    def wall() -> float:
        """Seconds of this run so far, earlier sessions of a resumed run included."""
        return before + time.perf_counter() - run_start

    def save(folder: str, dtype: torch.dtype, with_state: bool) -> None:
        elapsed = wall()
        summary.update(steps=step, tokens=step * tokens_per_step, elapsed_s=round(elapsed, 1),
                       val_loss=val_loss, best_val_loss=best if best < math.inf else None)
        training_state = {"config": asdict(config), "step": step, "elapsed": elapsed,
                          "best_val_loss": best, "val_loss": val_loss,
                          "optimizer": optimizer.state_dict(),
                          "scaler": scaler.state_dict() if scaler else None,
                          "rng": torch.get_rng_state()} if with_state else None
        save_checkpoint(out / folder, model, tokenizer,
                        {"architecture": spec["architecture"], "preset": config.preset,
                         "model": spec, "block_size": config.block_size,
                         "abc_language": LANGUAGE_VERSION,  # the text the model read
                         "training": dict(summary)}, dtype=dtype, training_state=training_state)

    def log(record: dict[str, Any]) -> None:
        record = {"step": step, "time": round(wall(), 2), "train_loss": None,
                  "val_loss": None, "lr": None, "tokens_per_s": None, **record}
        records.append(record)
        if dist.main:
            with open(metrics_path, "a", encoding="utf-8") as handle:
                handle.write(json.dumps(record) + "\n")

    def validate() -> None:
        nonlocal val_loss, best
        val_loss = evaluate(model, valid_data, config, dist, autocast)
        log({"val_loss": round(val_loss, 4)})
        if val_loss < best:
            best = val_loss
            if dist.main and step > 0:
                save("best", torch.float16, with_state=False)

    if dist.main:
        out.mkdir(parents=True, exist_ok=True)
        write_metrics(metrics_path, records)
        print(f"training {spec['architecture']} ({count_parameters(model):,} parameters) on "
              f"{len(train_data):,} tokens ({data_summary['tunes']['train']} texts; "
              f"{data_summary['skipped']} unreadable tunes skipped), validating on "
              f"{len(valid_data):,}; {dist.device}, {tokens_per_step} tokens a step", flush=True)
    if step == 0:
        validate()
    bar = tqdm(total=config.steps, initial=step, unit="step", dynamic_ncols=True,
               disable=not (config.progress and dist.main))
    window_loss, window_steps, window_time = 0.0, 0, 0.0
    while step < config.steps and not (config.minutes and wall() >= config.minutes * 60):
        started = time.perf_counter()
        generator = torch.Generator().manual_seed(config.seed * 1_000_003 + step)
        x, y = batch(train_data, config, generator, config.batch_size * dist.world, dist.device)
        rows = slice(dist.rank * config.batch_size, (dist.rank + 1) * config.batch_size)
        lr = learning_rate(step, config, wall())
        window_loss += train_step(net, model, optimizer, scaler, autocast, x[rows], y[rows],
                                  lr, config.grad_clip)
        window_steps += 1
        step += 1
        window_time += time.perf_counter() - started
        bar.update()
        out_of_time = bool(config.minutes) and wall() >= (config.minutes or 0) * 60
        if step % config.log_every == 0 or step == config.steps or out_of_time:
            rate = window_steps * tokens_per_step / max(1e-9, window_time)
            train_loss = dist.mean(window_loss / window_steps)
            log({"train_loss": round(train_loss, 4), "lr": lr, "tokens_per_s": round(rate, 1)})
            bar.set_postfix(loss=f"{train_loss:.3f}", val=f"{best:.3f}", tok_s=f"{rate:.0f}")
            window_loss, window_steps, window_time = 0.0, 0, 0.0
        if step % config.eval_every == 0 or step == config.steps or out_of_time:
            validate()
        if dist.main and step % config.checkpoint_every == 0 and step < config.steps:
            save("checkpoint", torch.float32, with_state=True)
    bar.close()
    if dist.main:
        save("checkpoint", torch.float32, with_state=True)
        if not (out / "best").exists():
            save("best", torch.float16, with_state=False)
        plot_losses(records, out / "loss.png", f"{config.preset or spec['architecture']}: {out}")
        print(f"done: step {step}, validation loss {val_loss:.4f} (best {best:.4f}), "
              f"{wall() / 60:.1f} min; checkpoints in {out}", flush=True)
    dist.barrier()
    dist.close()
    return out
