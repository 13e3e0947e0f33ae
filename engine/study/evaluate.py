"""`segue eval`: how well a model predicts and continues held-out music, against baselines.

Systems: the model; "ngram", a character n-gram fitted on the training split of the same
corpus (its order, 3 to 9, picked on the validation split; `engine.study.ngram`) and decoded
bar-exactly like the model; "repeat", which answers with the prompt's last bars. "real" is the
true continuation, the reference the others are measured against.

Sets (`engine.study.eval_sets`): "folk" (the bundled test tunes, cut as before corpus v2: the old
test split), "voices" (multi-voice pieces of the `--data` folders) and "chords" (prompts with
chord symbols). Every figure is measured per set and system (`engine.study.measures`):

- bits_per_char: mean -log2 p of each character. folk: the test tunes as before (each after a
  blank line, concatenated, windows of the model's block size overlapping by half). voices and
  chords: training-style windows of the set's pieces, one of each piece in turn, up to
  `bpc_chars` characters, read the same way.
- infill_both_sides, infill_prefix_only: bits per character of a gap's bars given the music
  on both sides (the `%%segue gap` / `%%segue fill` format) and given the music before only
  (`engine.study.infill_bits`), on `n` fill examples of the set's pieces.
- Continuations: `n` prompts; each sampled system answers with `seeds` seeds (the model's
  own sampling defaults, but for the settings `sampling` gives).
  - parse_share: answers music21 reads. bar_share: answers whose every voice has `bars` bars,
    each as long as its meter says (a bar split by a repeat sign counts when its halves add
    up to a bar), after the rest of the prompt's last bar where that was unfinished
    (`engine.study.measures.bars_right`). abc2midi_silent_share: answers abc2midi reads
    without a word.
  - in_key_share: notes in the scale of the prompt's key signature.
  - pitch_class_distance, interval_distance: total variation distance (0 = same, 1 =
    disjoint) between an answer's histogram and the real continuation's (pitch classes: 12
    bins; melodic intervals of the top line: -12..12 semitones, wider leaps clipped).
  - repetition: share of bars (all voices together) that repeat an earlier bar of the same
    answer; repetition_gap: its distance to the real continuations' share.
  - voice_order_share: answers to prompts of two or more sounding voices in which every pair
    of voices keeps the prompt's order of mean pitch. register_drift: in those answers, how
    many semitones each sounding voice's mean pitch lies from its mean in the prompt.
    voice_order_apart_share: the same for the pairs of voices more than APART semitones apart
    in the prompt (voices close together, a song's voice and the piano's right hand, cross
    in real music too).
  - chord_bar_share: bars with a chord symbol, in answers to prompts that carry chords;
    chord_agreement: strong-beat melody notes of those answers that belong to the chord in
    force; chord_label_agreement: bars of those answers whose chord (in force at the
    downbeat) has the root a labelling baseline (`engine.abc.lead_sheet.best_chord`, the chord
    that best explains the bar's notes) gives them.
  - pitch_class_spread, interval_spread: the mean distance between two answers to one prompt
    (its seeds): how far apart a system's own answers land, beside how far they land from the
    real continuation.
  - diversity: 1 - mean pairwise similarity of the seeds' answers to a prompt.
- Fill joins: two bars in the middle of `n` windows of `bars` bars written anew by each system,
  and the melodic interval into the bar after them against the real one (`engine.study.fill_eval`).
- Accompaniment (voices: a bass; chords: chord symbols): a part taken out of `n` windows of
  `bars` bars and added again by each system (`engine.study.accompaniment_eval`).
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F

from engine.abc.profile import INTERVAL_RANGE
from engine.errors import SegueError
from engine.models.continuation import Sampling
from engine.models.lm import sequence_logits
from engine.study.eval_sets import SETS, Case
from engine.study.measures import mean, share

if TYPE_CHECKING:
    from engine.models.continuation import Engine
    from engine.models.tokenizer import CharTokenizer
    from engine.study.eval_sets import Material

SYSTEMS = ("model", "ngram", "repeat", "real")
SAMPLED = ("model", "ngram")
APART = 7.0  # semitones: voices further apart than a fifth, whose order real music keeps


@dataclass
class EvalConfig:
    """What `segue eval` measures, and on how much."""

    model: str | None = None
    n: int = 50
    bars: int = 8
    prompt_bars: int = 8
    seeds: int = 3
    sets: list[str] | None = None  # None: every set the material has pieces for
    data: list[str] = field(default_factory=list)
    test_tunes: int | None = None
    limit_tunes: int | None = None
    bpc_chars: int = 120_000
    sampling: Sampling | None = None  # a setting left None (or all): the model's own default
    batch_size: int = 16
    device: str = "auto"
    threads: int | None = None
    workers: int = 2
    out: str | None = None
    progress: bool = True
    command: str = ""


class CpuClock:
    """CPU and wall seconds of each named part of a run."""

    def __init__(self) -> None:
        self.parts: dict[str, dict[str, float]] = {}

    @contextlib.contextmanager
    def part(self, name: str) -> Iterator[None]:
        cpu, wall = time.process_time(), time.perf_counter()
        try:
            yield
        finally:
            spent = self.parts.setdefault(name, {"cpu": 0.0, "wall": 0.0})
            spent["cpu"] += time.process_time() - cpu
            spent["wall"] += time.perf_counter() - wall


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


def score_system(cases: list[Case], system: str, bars: int) -> dict[str, Any]:
    """Every continuation figure of one system over all cases."""
    from engine.abc.music import note_events, parse_abc
    from engine.abc.profile import distance, histograms
    from engine.abc.registers import keeps_voice_order
    from engine.study import abc2midi
    from engine.study.measures import (
        bars_right,
        chord_agreement,
        chord_bars,
        chord_label_agreement,
        diversity,
        repetition,
        spread,
        voice_means,
    )

    judge = abc2midi.available()
    count = dict.fromkeys(("total", "parsed", "right", "silent", "notes", "in_key",
                           "ordered", "orders", "ordered_apart", "orders_apart", "chord_bars",
                           "bars", "agree", "strong", "label_agree", "labelled"), 0)
    pc_distances, interval_distances, repeats, diversities, drifts = [], [], [], [], []
    pc_spreads, interval_spreads = [], []
    pooled_pc, pooled_interval = np.zeros(12), np.zeros(2 * INTERVAL_RANGE + 1)
    for case in cases:
        real_pc, real_interval = histograms(note_events(parse_abc(case.answers["real"][0])))
        drawn = []  # each parsed answer's histograms
        for text in case.answers[system]:
            count["total"] += 1
            repeats.append(repetition(text))
            count["silent"] += judge and not abc2midi.abc2midi_messages(text)
            if case.chords:
                with_chords, all_bars = chord_bars(text)
                count["chord_bars"] += with_chords
                count["bars"] += all_bars
            try:
                score = parse_abc(text)
            except SegueError:
                score = None
            means = voice_means(score) if score else []
            kept = keeps_voice_order(case.means, means)
            if kept is not None:
                count["orders"] += 1
                count["ordered"] += kept
                drifts += [abs(after - before)  # a missing voice breaks the order, adds no drift
                           for before, after in zip(case.means, means, strict=False)
                           if before is not None and after is not None]
            kept = keeps_voice_order(case.means, means, APART)
            if kept is not None:
                count["orders_apart"] += 1
                count["ordered_apart"] += kept
            if score is None:
                continue
            count["parsed"] += 1
            count["right"] += bars_right(score, bars, case.opening)
            pitches = [p for element in score.recurse().notes for p in element.pitches]
            count["notes"] += len(pitches)
            count["in_key"] += sum(p.pitchClass in case.scale for p in pitches)
            pc, interval = histograms(note_events(score))
            drawn.append((pc, interval))
            pooled_pc += pc
            pooled_interval += interval
            pc_distances.append(distance(pc, real_pc))
            interval_distances.append(distance(interval, real_interval))
            if case.chords:
                agree, strong = chord_agreement(score)
                count["agree"] += agree
                count["strong"] += strong
                agree, labelled = chord_label_agreement(score)
                count["label_agree"] += agree
                count["labelled"] += labelled
        diversities.append(diversity(case.answers[system]))
        if len(drawn) > 1:
            pc_spreads.append(spread([pc for pc, _ in drawn]))
            interval_spreads.append(spread([interval for _, interval in drawn]))
    kept_diversity = [d for d in diversities if d is not None]
    total = count["total"]
    return {
        "continuations": total,
        "parse_share": share(count["parsed"], total),
        "bar_share": share(count["right"], total),
        "abc2midi_silent_share": share(count["silent"], total) if judge else None,
        "in_key_share": share(count["in_key"], count["notes"]),
        "pitch_class_distance": mean(pc_distances),
        "interval_distance": mean(interval_distances),
        "pitch_class_spread": mean(pc_spreads),
        "interval_spread": mean(interval_spreads),
        "repetition": mean(repeats),
        "voice_order_share": share(count["ordered"], count["orders"]),
        "voice_order_answers": count["orders"],
        "voice_order_apart_share": share(count["ordered_apart"], count["orders_apart"]),
        "voice_order_apart_answers": count["orders_apart"],
        "register_drift": mean(drifts),
        "chord_bar_share": share(count["chord_bars"], count["bars"]),
        "chord_agreement": share(count["agree"], count["strong"]),
        "chord_agreement_notes": count["strong"],
        "chord_label_agreement": share(count["label_agree"], count["labelled"]),
        "diversity": mean(kept_diversity),
        "pitch_class_histogram": (pooled_pc / max(1e-9, pooled_pc.sum())).tolist(),
        "interval_histogram": (pooled_interval / max(1e-9, pooled_interval.sum())).tolist(),
    }


def continue_all(engine: Engine, cases: list[Case], name: str, config: EvalConfig) -> float:
    """Store `seeds` continuations of every case by `engine` under `name`; seconds taken.
    Each is asked for alone, as a user asks (the seeds of one request's variations: the same
    answers, but each with the drafts one answer gets)."""
    from tqdm import tqdm

    from engine.abc.prompt import make_prompt

    started = time.perf_counter()
    sampling = config.sampling or Sampling()
    for index, case in enumerate(tqdm(cases, disable=not config.progress, unit="prompt",
                                      desc=f"continue ({name})")):
        prompt = make_prompt(case.prompt, chord_symbols=engine.chord_symbols)
        case.answers[name] = [
            engine.continue_prompt(prompt, config.bars,
                                   replace(sampling, seed=1000 * index + seed))[0].abc
            for seed in range(config.seeds)]
    return time.perf_counter() - started


def measure_set(name: str, material: Material, systems: dict[str, Any],
                tokenizer: CharTokenizer, config: EvalConfig,
                clock: CpuClock) -> tuple[dict[str, Any], list[Case]]:
    """Every figure of one set: bits per character, infill, and the continuations."""
    from tqdm import tqdm

    from engine.abc.text import TUNE_SEPARATOR
    from engine.study.accompaniment_eval import accompaniment_figures
    from engine.study.eval_sets import set_cases, window_texts
    from engine.study.fill_eval import join_figures
    from engine.study.infill_bits import fill_examples, infill_figures
    from engine.training.dataset import token_array

    engine = systems["model"]
    texts = [text for _, text in material.texts(name)]
    with clock.part(f"{name}: bits/char"):
        if name != "folk":  # the old test split is read whole, as before
            texts = window_texts(texts, engine.block_size - len(TUNE_SEPARATOR),
                                 config.bpc_chars)
        data = token_array(texts, tokenizer)
        if len(data) <= engine.block_size + 1:
            raise SegueError(f"set {name}: only {len(data)} characters to measure bits per "
                             "character on; use more --test-tunes or --bpc-chars")
        bpc = {"model": bits_per_char(engine.model, data, engine.block_size, config.batch_size,
                                      engine.device, config.progress),
               "ngram": systems["ngram"].model.bits_per_char(data)}
    with clock.part(f"{name}: infill"):
        examples = fill_examples([text for _, text in material.texts(name)],
                                 engine.block_size, config.n)
        infill = {system: infill_figures(systems[system].model, tokenizer, examples,
                                         engine.block_size, systems[system].device)
                  for system in SAMPLED}
    with clock.part(f"{name}: prompts"):
        cases = set_cases(material, name, config.n, config.prompt_bars, config.bars)
    if not cases:
        raise SegueError(f"set {name}: no piece has {config.prompt_bars + config.bars} bars "
                         "to cut a prompt and its continuation from")
    seconds = {}
    for system in SAMPLED:
        with clock.part(f"{name}: continue ({system})"):
            seconds[system] = continue_all(systems[system], cases, system, config)
    results: dict[str, Any] = {}
    for system in SYSTEMS:
        with clock.part(f"{name}: figures"):
            results[system] = {"bits_per_char": bpc.get(system),
                               "infill_both_sides": infill.get(system, {}).get("both_sides"),
                               "infill_prefix_only": infill.get(system, {}).get("prefix_only"),
                               **score_system(cases, system, config.bars),
                               "seconds": seconds.get(system)}
    for figures in results.values():
        figures["repetition_gap"] = abs(figures["repetition"] - results["real"]["repetition"])
    def progress(items: Iterable[Any], desc: str) -> Iterable[Any]:
        return tqdm(items, disable=not config.progress, unit="piece", desc=desc)

    sampled = {system: systems[system] for system in SAMPLED}
    with clock.part(f"{name}: fill joins"):
        joins = join_figures(name, material.texts(name), sampled, config.bars, config.n,
                             progress)
    with clock.part(f"{name}: accompaniment"):
        accompaniment = accompaniment_figures(name, material.texts(name), sampled,
                                              config.bars, config.n, progress)
    summary = {"texts": len(texts), "characters": len(data),
               "infill_examples": len(examples),
               "infill_middle_characters": infill["model"]["middle_characters"],
               "prompts": len(cases), "prompt_sources": [c.source for c in cases],
               "systems": results}
    if joins:
        summary["fill_joins"] = joins
    if accompaniment:
        summary["accompaniment"] = accompaniment
    return summary, cases


def evaluate(config: EvalConfig) -> tuple[Path, dict[str, Any]]:
    """Run every measurement; write the report folder; return it and the figures."""
    from engine.abc.text import TUNE_SEPARATOR
    from engine.machine import machine
    from engine.models.continuation import Engine
    from engine.study.eval_sets import load_material
    from engine.study.ngram import best_order
    from engine.study.report import report_folder, write_json
    from engine.training.dataset import load_corpus, token_array

    if config.n < 1 or config.seeds < 1 or not 1 <= config.bars <= 64 or config.prompt_bars < 1:
        raise SegueError("--n, --seeds and --prompt-bars must be at least 1, --bars 1 to 64")
    unknown = sorted(set(config.sets or ()) - set(SETS))
    if unknown:
        raise SegueError(f"--set {unknown[0]}: sets are {', '.join(SETS)}")
    if config.threads:
        torch.set_num_threads(config.threads)
    clock = CpuClock()
    with clock.part("load model"):
        engine = Engine.load(config.model, device=config.device)
    tokenizer = engine.tokenizer
    with clock.part("held-out music"):
        material = load_material("test", config.data, test_tunes=config.test_tunes,
                                 workers=config.workers, progress=config.progress)
    sets = config.sets or material.available()
    missing = [name for name in sets if not material.texts(name)]
    if missing:
        raise SegueError(f"set {missing[0]} has no test pieces here"
                         + ("" if config.data else "; give --data folders of MusicXML "
                            "pieces (such as the CC0 OpenScore corpora)"))
    folder = report_folder("eval", config.out)
    with clock.part("ngram"):
        corpus = load_corpus(config.data, limit=config.limit_tunes, workers=config.workers,
                             progress=config.progress)
        pad = tokenizer.encode(TUNE_SEPARATOR)[0]
        ngram, orders = best_order(token_array(corpus.splits["train"], tokenizer),
                                   token_array(corpus.splits["valid"], tokenizer),
                                   range(3, 10), tokenizer.vocab_size, pad)
    systems = {"model": engine,
               "ngram": Engine(ngram, tokenizer, block_size=engine.block_size,
                               name=f"ngram-{ngram.order}", device="cpu",
                               chord_symbols=True)}
    figures: dict[str, Any] = {
        "kind": "eval", "command": config.command, "model": engine.name,
        "machine": machine(torch.device(engine.device), 1), "config": asdict(config),
        "sampling": {name: asdict(system.resolve_sampling(config.sampling))
                     for name, system in systems.items()},
        "ngram": {"order": ngram.order, "validation_bits_per_char": orders,
                  "training_texts": len(corpus.splits["train"])},
        "sets": {},
    }
    answers: dict[str, list[dict[str, Any]]] = {}
    for name in sets:
        figures["sets"][name], cases = measure_set(name, material, systems, tokenizer, config,
                                                   clock)
        answers[name] = [{"source": c.source, **c.answers} for c in cases]
    figures["time"] = clock.parts
    write_json(folder / "results.json", figures)
    write_json(folder / "continuations.json", {"sets": answers})
    write_eval_report(folder, figures)
    return folder, figures


TABLE_ROWS = (("bits/char ↓", "bits_per_char"),
              ("infill bits/char, both sides ↓", "infill_both_sides"),
              ("infill bits/char, prefix only", "infill_prefix_only"),
              ("parses", "parse_share"), ("bars right", "bar_share"),
              ("abc2midi silent", "abc2midi_silent_share"), ("in key", "in_key_share"),
              ("pitch-class dist. ↓", "pitch_class_distance"),
              ("interval dist. ↓", "interval_distance"),
              ("pitch-class dist. between seeds", "pitch_class_spread"),
              ("interval dist. between seeds", "interval_spread"), ("repeated bars", "repetition"),
              ("repetition gap ↓", "repetition_gap"),
              ("voice order kept", "voice_order_share"),
              ("voice order kept, > a fifth apart", "voice_order_apart_share"),
              ("register drift, semitones", "register_drift"),
              ("bars with chords", "chord_bar_share"),
              ("chord agreement", "chord_agreement"),
              ("chord = labeller's", "chord_label_agreement"), ("diversity", "diversity"))
JOIN_ROWS = (("join leap, semitones", "join_leap"), ("stepwise joins", "join_step_share"),
             ("join interval dist. ↓", "join_distance"), ("joins measured", "joins"))
ACCOMPANIMENT_ROWS = (("given voices kept", "given_kept"),
                      ("register error, semitones ↓", "register_error"),
                      ("new part below the others", "below_share"),
                      ("notes per bar", "notes_per_bar"),
                      ("note-length dist. ↓", "duration_distance"),
                      ("chord agreement", "chord_agreement"),
                      ("chord root = real's", "root_match"),
                      ("chords in key", "in_key"),
                      ("answers that failed", "failed"))
SET_TITLES = {"folk": "folk (the old test split)", "voices": "voices (multi-voice prompts)",
              "chords": "chords (prompts with chord symbols)"}


def write_eval_report(folder: Path, figures: dict[str, Any]) -> None:
    """table.md (one table per set) and the plots of an evaluation."""
    from engine.files import write_text_atomic
    from engine.study.report import markdown_table

    config = figures["config"]
    header = ["figure", figures["model"], f"ngram ({figures['ngram']['order']})",
              "repeat", "real"]
    parts = [f"`{figures['command'] or 'segue eval'}` on {figures['machine']}: prompts of "
             f"{config['prompt_bars']} bars, {config['bars']}-bar continuations, "
             f"{config['seeds']} seeds each; sampling "
             + ", ".join(f"{name.replace('_', ' ')} {value:g}"
                         for name, value in figures["sampling"]["model"].items()
                         if value is not None)
             + ".\n"]
    for name, result in figures["sets"].items():
        systems = result["systems"]
        rows = [[label, *(systems[s][key] for s in SYSTEMS)] for label, key in TABLE_ROWS
                if any(systems[s][key] is not None for s in SYSTEMS)]
        parts.append(f"\n### {SET_TITLES[name]}\n\n{result['texts']} texts "
                     f"({result['characters']:,} characters) for bits/char, "
                     f"{result['infill_examples']} infill examples, {result['prompts']} "
                     "prompts.\n\n" + markdown_table(header, rows))
        if "fill_joins" in result:
            joins = result["fill_joins"]
            first, last = joins["gap"]
            parts.append(systems_table(
                f"filling bars {first}-{last} of {joins['windows']} windows of {joins['bars']} "
                "bars: the join into the bar after", joins["systems"], JOIN_ROWS,
                figures["model"]))
        if "accompaniment" in result:
            added = result["accompaniment"]
            part = "part of chord symbols" if added["add"] == "chords" else "bass"
            parts.append(systems_table(
                f"adding a {part}\n\n{added['cases']} windows of {added['bars']} bars, one seed "
                "each.", added["systems"], ACCOMPANIMENT_ROWS, figures["model"]))
        plot_set(folder, name, systems)
    write_text_atomic(folder / "table.md", "".join(parts))


def systems_table(heading: str, systems: dict[str, Any], rows: tuple[tuple[str, str], ...],
                  model: str) -> str:
    """Figures of several systems (a set's fill joins or accompaniment) as a Markdown table
    under a heading of its own; a row no system has is left out."""
    from engine.study.report import markdown_table

    names = {"model": model, "common": "most common chord"}
    header = ["figure", *(names.get(system, system) for system in systems)]
    table = [[label, *(systems[s].get(key) for s in systems)] for label, key in rows
             if any(systems[s].get(key) is not None for s in systems)]
    return f"\n#### {heading}\n\n" + markdown_table(header, table)


def plot_set(folder: Path, name: str, systems: dict[str, Any]) -> None:
    """A set's pooled pitch-class and interval histograms, and its voice, chord and form
    figures, every system side by side."""
    from engine.study.report import figure_file

    labels = {"pitch_class_histogram": ("pitch class", [str(i) for i in range(12)]),
              "interval_histogram": ("melodic interval (semitones)",
                                     [str(i) for i in range(-INTERVAL_RANGE, INTERVAL_RANGE + 1)])}
    width = 0.8 / len(SYSTEMS)
    for key, (xlabel, ticks) in labels.items():
        with figure_file(folder / f"{name}-{key}.png", size=(9, 4)) as (_, axes):
            for index, system in enumerate(SYSTEMS):
                x = np.arange(len(ticks)) + (index - (len(SYSTEMS) - 1) / 2) * width
                axes.bar(x, systems[system][key], width=width, label=system)
            axes.set_xticks(np.arange(len(ticks)), ticks, fontsize=7)
            axes.set(xlabel=xlabel, ylabel="share of notes", title=f"{name}: {xlabel}")
    shares = [(label, key) for label, key in (
        ("voice order kept", "voice_order_share"),
        ("voice order, > a fifth apart", "voice_order_apart_share"),
        ("bars with chords", "chord_bar_share"), ("chord agreement", "chord_agreement"),
        ("chord = labeller's", "chord_label_agreement"), ("repeated bars", "repetition"),
        ("abc2midi silent", "abc2midi_silent_share"))
        if any(systems[s][key] is not None for s in SYSTEMS)]
    with figure_file(folder / f"{name}-figures.png", size=(9, 4)) as (_, axes):
        for index, system in enumerate(SYSTEMS):
            x = np.arange(len(shares)) + (index - (len(SYSTEMS) - 1) / 2) * width
            values = [systems[system][key] for _, key in shares]
            axes.bar(x, [v if v is not None else 0 for v in values], width=width,
                     label=system)
        axes.set_xticks(np.arange(len(shares)), [label for label, _ in shares], fontsize=8)
        axes.set(ylabel="share", ylim=(0, 1.05), title=f"{name}: voices, chords and form")
