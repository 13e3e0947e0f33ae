"""`segue eval --grid`: choose a model's sampling defaults by measurement, on the validation
split (never on test).

The model continues the same validation prompts with the same seeds at every temperature,
top_p and chord-tone weight (`engine.models.chord_tones`) of a small grid; each point is scored
by how close its answers come to the real continuations: the mean, over the sets, of the
pitch-class distance, the interval distance, the repetition gap and, for prompts with chords,
the chord agreement gap (`engine.study.evaluate.score_system`; lower is better). The best point
can be written into the checkpoint's config.json as its "sampling" entry
(`engine.models.checkpoint.write_sampling_defaults`), which every request that sets none of
these then gets.
"""

from __future__ import annotations

from dataclasses import asdict, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.errors import SegueError

if TYPE_CHECKING:  # imported where used, so that `segue eval --help` stays light
    from engine.study.evaluate import EvalConfig

TEMPERATURES = (0.7, 0.85, 1.0, 1.15)
TOP_PS = (0.9, 0.95, 1.0)
CRITERIA = ("pitch_class_distance", "interval_distance", "repetition_gap", "chord_agreement_gap")
CRITERION_TITLES = {"pitch_class_distance": "pc", "interval_distance": "interval",
                    "repetition_gap": "rep. gap", "chord_agreement_gap": "chord gap"}


def point_figures(cases: list, config: EvalConfig, real: dict[str, Any]) -> dict[str, Any]:
    """The criteria of one set's answers (the chord agreement gap only where the real
    continuations have chords), and its score (their mean)."""
    import numpy as np

    from engine.study.evaluate import score_system

    figures = score_system(cases, "model", config.bars)
    figures["repetition_gap"] = abs(figures["repetition"] - real["repetition"])
    figures["chord_agreement_gap"] = None if real["chord_agreement"] is None or \
        figures["chord_agreement"] is None \
        else abs(figures["chord_agreement"] - real["chord_agreement"])
    kept = {name: figures[name] for name in (*CRITERIA, "chord_agreement", "bar_share",
                                             "abc2midi_silent_share", "diversity")}
    scored = [figures[name] for name in CRITERIA if figures[name] is not None]
    return kept | {"score": float(np.mean(scored))}


def sampling_grid(config: EvalConfig, temperatures: tuple[float, ...] = TEMPERATURES,
                  top_ps: tuple[float, ...] = TOP_PS, chord_tones: tuple[float, ...] | None = None,
                  write: bool = False) -> tuple[Path, dict[str, Any]]:
    """Measure every (temperature, top_p, chord_tones) on the validation prompts (chord_tones
    None: the model's own weight only); write the report folder (results.json, table.md); with
    `write`, record the best in the checkpoint's config.json."""
    import numpy as np
    import torch

    from engine.files import write_text_atomic
    from engine.machine import machine
    from engine.models.checkpoint import (
        read_config,
        resolve_model,
        sampling_defaults,
        write_sampling_defaults,
    )
    from engine.models.continuation import Engine, Sampling
    from engine.study.eval_sets import load_material, set_cases
    from engine.study.evaluate import continue_all, score_system
    from engine.study.report import markdown_table, report_folder, write_json

    engine = Engine.load(config.model, device=config.device)
    weights = chord_tones if chord_tones is not None else \
        (engine.sampling_defaults["chord_tones"],)
    points = [(float(t), float(p), float(w)) for t in temperatures for p in top_ps
              for w in weights]
    if not points:
        raise SegueError("the grid needs at least one temperature, top_p and chord-tone weight")
    for temperature, top_p, weight in points:
        Sampling(temperature=temperature, top_p=top_p, chord_tones=weight).check()
    material = load_material("valid", config.data, test_tunes=config.test_tunes,
                             workers=config.workers, progress=config.progress)
    sets = config.sets or material.available()
    cases = {name: set_cases(material, name, config.n, config.prompt_bars, config.bars)
             for name in sets}
    empty = [name for name, found in cases.items() if not found]
    if empty:
        raise SegueError(f"set {empty[0]}: no validation piece to cut a prompt from")
    real = {name: score_system(found, "real", config.bars) for name, found in cases.items()}
    rows: list[dict[str, Any]] = []
    for temperature, top_p, weight in points:
        at = replace(config, temperature=temperature, top_p=top_p, chord_tones=weight)
        per_set = {}
        for name, found in cases.items():
            continue_all(engine, found, "model", at)
            per_set[name] = point_figures(found, at, real[name])
        rows.append({"temperature": temperature, "top_p": top_p, "chord_tones": weight,
                     "sets": per_set,
                     "score": float(np.mean([f["score"] for f in per_set.values()]))})
    best = min(rows, key=lambda row: row["score"])
    chosen = {name: best[name] for name in ("temperature", "top_p", "chord_tones")}
    folder = report_folder("grid", config.out)
    figures = {"kind": "sampling-grid", "command": config.command, "model": engine.name,
               "split": "valid", "machine": machine(torch.device(engine.device), 1),
               "config": asdict(config), "criteria": list(CRITERIA),
               "prompts": {name: len(found) for name, found in cases.items()},
               "real": {name: {criterion: measured[criterion]
                               for criterion in ("repetition", "chord_agreement")}
                        for name, measured in real.items()},
               "points": rows, "chosen": chosen, "written": write}
    write_json(folder / "results.json", figures)
    shown = {name: [c for c in CRITERIA if rows[0]["sets"][name][c] is not None]
             for name in sets}
    header = ["temperature", "top_p", "chord tones",
              *(f"{name} {CRITERION_TITLES[c]}" for name in sets for c in shown[name]),
              "score ↓"]
    table = [[row["temperature"], row["top_p"], row["chord_tones"],
              *(row["sets"][name][c] for name in sets for c in shown[name]), row["score"]]
             for row in rows]
    text = (f"`{config.command or 'segue eval --grid'}`: {engine.name} on the validation split "
            f"({', '.join(f'{name} {len(found)} prompts' for name, found in cases.items())}, "
            f"{config.seeds} seeds each); score = mean of pitch-class distance, interval "
            "distance, repetition gap and (with chords) chord agreement gap; lower is closer "
            "to the real continuations.\n\n"
            + markdown_table(header, table)
            + "\nchosen: " + ", ".join(f"{name.replace('_', ' ')} {value:g}"
                                       for name, value in chosen.items())
            + (" (written to config.json)" if write else "") + "\n")
    write_text_atomic(folder / "table.md", text)
    if write:
        checkpoint = resolve_model(config.model)  # its top_k, if it names one, is kept
        write_sampling_defaults(checkpoint, {**sampling_defaults(read_config(checkpoint)),
                                             **chosen})
    return folder, figures
