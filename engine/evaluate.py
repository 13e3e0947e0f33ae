"""`segue eval`: how well a model predicts and continues held-out tunes, against two baselines.

Systems: the model; "ngram", a character n-gram fitted on the training split (its order, 3 to
9, picked on the validation split; `engine.ngram`) and decoded bar-exactly like the model;
"repeat", which answers with the prompt's last bars. "real" is the tunes' true continuation,
the reference the others are measured against.

Report folder: results.json (every figure), continuations.json (every answer, by prompt),
table.md, and plots of the pooled histograms. Figures:
- bits_per_char: mean -log2 p of each character of the test split (canonical tunes, each
  after a blank line), every character predicted from the ones before it (the model reads
  windows of its block size, half of each window overlapping the last as context).
- Continuations: N test tunes with one voice and at least prompt_bars + bars bars; the first
  prompt_bars bars are the prompt, the next `bars` the real continuation; each sampled system
  answers with `seeds` seeds (temperature 1, top-p 0.95).
  - parse_share: continuations music21 reads.
  - bar_share: continuations whose every bar lasts exactly what the meter says, and that have
    `bars` bars (each bar measured on its own, since music21 silently re-bars overfull bars;
    a bar split by a repeat sign counts when its halves add up to a bar).
  - in_key_share: notes whose pitch class is in the scale of the prompt's key signature.
  - pitch_class_distance, interval_distance: total variation distance (0 = same, 1 = disjoint)
    between the histogram of a continuation and that of the real continuation of the same
    prompt (pitch classes: 12 bins; melodic intervals of the top line: -12..12 semitones,
    wider leaps clipped), averaged over continuations.
  - repetition: share of bars that repeat an earlier bar of the same continuation;
    repetition_gap is its distance to the real continuations' share.
  - diversity: 1 - mean pairwise similarity (difflib ratio) of the seeds' continuations of a
    prompt, averaged over prompts (0: all seeds wrote the same).
"""

from __future__ import annotations

import difflib
import math
import re
import time
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from functools import lru_cache
from itertools import combinations
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from engine.errors import SegueError
from engine.lm import sequence_logits

SYSTEMS = ("model", "ngram", "repeat", "real")
BAR_LINE = re.compile(r":*\|+\]?:*|::|\[\d+")
INTERVAL_RANGE = 12


@dataclass
class EvalConfig:
    """What `segue eval` measures, and on how much."""

    model: str | None = None
    n: int = 50
    bars: int = 8
    prompt_bars: int = 8
    seeds: int = 3
    test_tunes: int | None = None
    limit_tunes: int | None = None
    batch_size: int = 16
    device: str = "auto"
    threads: int | None = None
    workers: int = 2
    out: str | None = None
    progress: bool = True
    command: str = ""


@dataclass
class Case:
    """One test prompt and the truth it is measured against."""

    source: str
    prompt: Any  # music21 Score
    scale: frozenset[int]  # pitch classes of the prompt key's scale
    answers: dict[str, list[str]] = field(default_factory=dict)  # system -> ABC texts


def test_texts(config: EvalConfig) -> list[tuple[str, str]]:
    """(source, canonical text) of the test split's tunes."""
    from engine.corpus import iter_tunes
    from engine.dataset import canonicalize, job_of

    tunes = []
    for tune in iter_tunes(split="test"):
        tunes.append(tune)
        if config.test_tunes is not None and len(tunes) >= config.test_tunes:
            break
    texts = canonicalize([job_of(t) for t in tunes], workers=config.workers,
                         progress=config.progress)
    return [(t.source, text) for t, text in zip(tunes, texts, strict=True) if text is not None]


@torch.no_grad()
def bits_per_char(model: torch.nn.Module, data: np.ndarray, block_size: int, batch_size: int,
                  device: str, progress: bool = True) -> float:
    """Mean bits per token of `data`, each token scored once with at least block/2 of context."""
    from tqdm import tqdm

    stride = max(1, block_size // 2)
    starts = list(range(0, max(1, len(data) - block_size), stride))
    total, count = 0.0, 0
    for first in tqdm(range(0, len(starts), batch_size), disable=not progress, unit="batch",
                      desc="bits per char"):
        chunk = starts[first: first + batch_size]
        rows = np.stack([data[s: s + block_size + 1] for s in chunk]).astype(np.int64)
        tokens = torch.from_numpy(rows).to(device)
        logits = sequence_logits(model, tokens[:, :-1])
        losses = F.cross_entropy(logits.transpose(1, 2), tokens[:, 1:], reduction="none")
        for row, start in zip(losses, chunk, strict=True):
            scored = row if start == 0 else row[block_size - stride:]
            total += float(scored.sum())
            count += scored.numel()
    return total / max(1, count) / math.log(2)


def scale_of(score) -> frozenset[int]:
    """Pitch classes of the scale of a score's first key signature (C major without one)."""
    from music21 import key

    signature = score.recurse().getElementsByClass(key.KeySignature).first()
    signature = signature or key.KeySignature(0)
    return frozenset(p.pitchClass for p in signature.asKey("major").pitches)


def make_cases(texts: list[tuple[str, str]], config: EvalConfig) -> list[Case]:
    """The first `n` usable test tunes as prompts, with their real continuations and repeats."""
    from music21 import stream
    from tqdm import tqdm

    from engine.abc_writer import write_abc
    from engine.music import parse_abc, quiet, select

    need = config.prompt_bars + config.bars
    cases: list[Case] = []
    bar = tqdm(total=config.n, disable=not config.progress, unit="prompt", desc="prompts")
    for source, text in texts:
        if len(cases) >= config.n:
            break
        body = text.split("K:", 1)[-1]
        if "V:" in body or re.search(r"\[[MLK]:", body) or body.count("|") < need:
            continue
        try:
            score = parse_abc(text)
        except SegueError:
            continue
        numbers = [m.number for m in score.parts[0].getElementsByClass(stream.Measure)]
        if len(score.parts) != 1 or len(numbers) < need or \
                numbers[:need] != list(range(numbers[0], numbers[0] + need)):
            continue
        first = numbers[0]
        try:
            with quiet():
                prompt = select(score, measures=(first, first + config.prompt_bars - 1))
                real = select(score, measures=(first + config.prompt_bars, first + need - 1))
                last = select(score, measures=(first + max(0, config.prompt_bars - config.bars),
                                               first + config.prompt_bars - 1))
            answers = {"real": [write_abc(real)], "repeat": [write_abc(last)]}
        except (SegueError, ValueError, ZeroDivisionError):
            continue
        cases.append(Case(source, prompt, scale_of(prompt), answers))
        bar.update()
    bar.close()
    if not cases:
        raise SegueError(f"no test tune has {need} bars in one voice to make a prompt from")
    return cases


def bars_of(abc: str) -> list[str]:
    """The bars of a tune's body, as text (bar lines and endings removed)."""
    from engine.abc_text import split_head

    body = split_head(abc)[1].replace("\n", " ")
    return [b.strip() for b in BAR_LINE.split(body) if b.strip()]


@lru_cache(maxsize=20_000)
def bar_length(head: str, text: str) -> Fraction | None:
    """The length of one bar of music in quarter notes (None if music21 cannot read it).

    A marker note follows the bar (and is not counted), so a bar of rests alone reads too.
    """
    from engine.abc_writer import frac
    from engine.music import parse_abc

    try:
        score = parse_abc(head + text + "|C|\n")
    except SegueError:
        return None
    *bar, _ = (e for e in score.flatten().notesAndRests if not e.duration.isGrace)
    return sum((frac(e.duration.quarterLength) for e in bar), Fraction(0))


def bars_right(abc: str, bars: int) -> bool:
    """Whether `abc` has exactly `bars` bars, each as long as its meter says.

    A bar split in two by a repeat sign (a pickup at a repeat, "d2B2 B2 :: Bc |") counts as
    right when its two halves add up to a bar; music21 numbers the halves as two bars.
    """
    from engine.abc_text import read_header, split_head
    from engine.bars import bar_units

    header = read_header(abc)
    unit = header.unit or "1/8"
    expected = bar_units(header.meter, unit) * Fraction(unit) * 4
    head = split_head(abc)[0]
    found = bars_of(abc)
    if len(found) != bars:
        return False
    lengths = [bar_length(head, b) for b in found]
    if None in lengths:
        return False
    index = 0
    while index < len(lengths):
        if lengths[index] == expected:
            index += 1
        elif index + 1 < len(lengths) and lengths[index] + lengths[index + 1] == expected:
            index += 2
        else:
            return False
    return True


def line_of(score) -> list[int]:
    """The top line's MIDI pitches, in time order (the highest note of each onset)."""
    from engine.music import note_events

    top: dict[Fraction, int] = {}
    for onset, _, pitch in (e for part in note_events(score) for e in part):
        top[onset] = max(pitch, top.get(onset, pitch))
    return [top[onset] for onset in sorted(top)]


def histograms(score) -> tuple[np.ndarray, np.ndarray]:
    """Normalized pitch-class (12) and melodic interval (-12..12) histograms of a score."""
    from engine.music import note_events

    pitches = [pitch for part in note_events(score) for _, _, pitch in part]
    classes = np.bincount(np.array(pitches, dtype=int) % 12, minlength=12).astype(float)
    line = np.array(line_of(score), dtype=int)
    steps = np.clip(np.diff(line), -INTERVAL_RANGE, INTERVAL_RANGE) + INTERVAL_RANGE
    intervals = np.bincount(steps, minlength=2 * INTERVAL_RANGE + 1).astype(float)
    return (classes / max(1.0, classes.sum()), intervals / max(1.0, intervals.sum()))


def distance(a: np.ndarray, b: np.ndarray) -> float:
    """Total variation distance of two histograms (1 when either is empty)."""
    if not a.any() or not b.any():
        return 1.0
    return float(0.5 * np.abs(a - b).sum())


def repetition(abc: str) -> float:
    """Share of bars that repeat an earlier bar of the same tune (spacing ignored)."""
    found = [b.replace(" ", "") for b in bars_of(abc)]
    return sum(b in found[:i] for i, b in enumerate(found)) / max(1, len(found))


def diversity(texts: list[str]) -> float | None:
    """1 - mean pairwise similarity of continuations of one prompt (None for a single one)."""
    bodies = [" ".join(bars_of(t)) for t in texts]
    pairs = list(combinations(bodies, 2))
    if not pairs:
        return None
    return 1.0 - sum(difflib.SequenceMatcher(None, a, b).ratio() for a, b in pairs) / len(pairs)


def mean(values: list[float]) -> float | None:
    return float(np.mean(values)) if values else None


def score_system(cases: list[Case], system: str, bars: int) -> dict[str, Any]:
    """Every continuation figure of one system over all cases."""
    from engine.music import parse_abc

    parsed = right = notes = in_key = 0
    total = 0
    pc_distances, interval_distances, repeats, diversities = [], [], [], []
    pooled_pc, pooled_interval = np.zeros(12), np.zeros(2 * INTERVAL_RANGE + 1)
    for case in cases:
        real_pc, real_interval = histograms(parse_abc(case.answers["real"][0]))
        for text in case.answers[system]:
            total += 1
            right += bars_right(text, bars)
            repeats.append(repetition(text))
            try:
                score = parse_abc(text)
            except SegueError:
                continue
            parsed += 1
            pitches = [p for element in score.recurse().notes for p in element.pitches]
            notes += len(pitches)
            in_key += sum(p.pitchClass in case.scale for p in pitches)
            pc, interval = histograms(score)
            pooled_pc += pc
            pooled_interval += interval
            pc_distances.append(distance(pc, real_pc))
            interval_distances.append(distance(interval, real_interval))
        diversities.append(diversity(case.answers[system]))
    kept = [d for d in diversities if d is not None]
    return {
        "continuations": total,
        "parse_share": parsed / max(1, total),
        "bar_share": right / max(1, total),
        "in_key_share": in_key / notes if notes else None,
        "pitch_class_distance": mean(pc_distances),
        "interval_distance": mean(interval_distances),
        "repetition": mean(repeats),
        "diversity": mean(kept),
        "pitch_class_histogram": (pooled_pc / max(1e-9, pooled_pc.sum())).tolist(),
        "interval_histogram": (pooled_interval / max(1e-9, pooled_interval.sum())).tolist(),
    }


def continue_all(engine, cases: list[Case], name: str, config: EvalConfig) -> float:
    """Store `seeds` continuations of every case by `engine` under `name`; seconds taken."""
    from tqdm import tqdm

    from engine.continuation import Sampling

    started = time.perf_counter()
    for index, case in enumerate(tqdm(cases, disable=not config.progress, unit="prompt",
                                      desc=f"continue ({name})")):
        results = engine.continue_score(case.prompt, config.bars, Sampling(seed=1000 * index),
                                        variations=config.seeds)
        case.answers[name] = [r.abc for r in results]
    return time.perf_counter() - started


def evaluate(config: EvalConfig) -> tuple[Path, dict[str, Any]]:
    """Run every measurement; write the report folder; return it and the figures."""
    from engine.continuation import Engine
    from engine.dataset import TUNE_SEPARATOR, load_corpus, token_array
    from engine.ngram import best_order
    from engine.report import report_folder, write_json
    from engine.train import machine

    if config.n < 1 or config.seeds < 1 or not 1 <= config.bars <= 64 or config.prompt_bars < 1:
        raise SegueError("--n, --seeds and --prompt-bars must be at least 1, --bars 1 to 64")
    if config.threads:
        torch.set_num_threads(config.threads)
    engine = Engine.load(config.model, device=config.device)
    tokenizer = engine.tokenizer
    folder = report_folder("eval", config.out)

    corpus = load_corpus(limit=config.limit_tunes, workers=config.workers,
                         progress=config.progress)
    pad = tokenizer.encode(TUNE_SEPARATOR)[0]
    ngram, orders = best_order(token_array(corpus.splits["train"], tokenizer),
                               token_array(corpus.splits["valid"], tokenizer),
                               range(3, 10), tokenizer.vocab_size, pad)
    texts = test_texts(config)
    test = token_array([text for _, text in texts], tokenizer)
    if len(test) <= engine.block_size + 1:
        raise SegueError(f"the test split has only {len(test)} characters; use more --test-tunes")
    bpc = {"model": bits_per_char(engine.model, test, engine.block_size, config.batch_size,
                                  engine.device, config.progress),
           "ngram": ngram.bits_per_char(test), "repeat": None, "real": None}

    cases = make_cases(texts, config)
    seconds = {"model": continue_all(engine, cases, "model", config),
               "ngram": continue_all(Engine(ngram, tokenizer, block_size=engine.block_size,
                                            name=f"ngram-{ngram.order}", device="cpu"),
                                     cases, "ngram", config)}
    systems = {name: {"bits_per_char": bpc[name], **score_system(cases, name, config.bars)}
               for name in SYSTEMS}
    for name, figures in systems.items():
        figures["repetition_gap"] = abs(figures["repetition"] - systems["real"]["repetition"])
        figures["seconds"] = seconds.get(name)
    figures = {
        "kind": "eval", "command": config.command, "model": engine.name,
        "machine": machine(torch.device(engine.device), 1), "config": asdict(config),
        "test": {"tunes": len(texts), "characters": len(test), "prompts": len(cases),
                 "prompt_sources": [c.source for c in cases]},
        "ngram": {"order": ngram.order, "validation_bits_per_char": orders,
                  "training_tunes": len(corpus.splits["train"])},
        "systems": systems,
    }
    write_json(folder / "results.json", figures)
    write_json(folder / "continuations.json",
               {"prompts": [{"source": c.source, **c.answers} for c in cases]})
    write_eval_report(folder, figures)
    return folder, figures


TABLE_ROWS = (("bits/char ↓", "bits_per_char"), ("parses", "parse_share"),
              ("bars right", "bar_share"), ("in key", "in_key_share"),
              ("pitch-class dist. ↓", "pitch_class_distance"),
              ("interval dist. ↓", "interval_distance"), ("repeated bars", "repetition"),
              ("repetition gap ↓", "repetition_gap"), ("diversity", "diversity"))


def write_eval_report(folder: Path, figures: dict[str, Any]) -> None:
    """table.md and the histogram plots of an evaluation."""
    from engine.files import write_text_atomic
    from engine.report import figure_file, markdown_table

    systems = figures["systems"]
    header = ["figure", *(f"{figures['model']}" if s == "model" else
                          f"ngram ({figures['ngram']['order']})" if s == "ngram" else s
                          for s in SYSTEMS)]
    rows = [[label, *(systems[s][key] for s in SYSTEMS)] for label, key in TABLE_ROWS]
    test = figures["test"]
    write_text_atomic(folder / "table.md", (
        f"`{figures['command'] or 'segue eval'}` on {figures['machine']}: {test['tunes']} test "
        f"tunes ({test['characters']:,} characters), {test['prompts']} prompts of "
        f"{figures['config']['prompt_bars']} bars, {figures['config']['bars']}-bar "
        f"continuations, {figures['config']['seeds']} seeds each.\n\n"
        + markdown_table(header, rows)))
    labels = {"pitch_class_histogram": ("pitch class", [str(i) for i in range(12)]),
              "interval_histogram": ("melodic interval (semitones)",
                                     [str(i) for i in range(-INTERVAL_RANGE, INTERVAL_RANGE + 1)])}
    for key, (xlabel, ticks) in labels.items():
        with figure_file(folder / f"{key}.png", size=(9, 4)) as (_, axes):
            width = 0.8 / len(SYSTEMS)
            for index, name in enumerate(SYSTEMS):
                x = np.arange(len(ticks)) + (index - (len(SYSTEMS) - 1) / 2) * width
                axes.bar(x, systems[name][key], width=width, label=name)
            axes.set_xticks(np.arange(len(ticks)), ticks, fontsize=7)
            axes.set(xlabel=xlabel, ylabel="share of notes", title=key.replace("_", " "))
