"""`segue eval --grid`: choose a model's sampling defaults by measurement, on the validation
split (never on test).

The model continues the same validation prompts with the same seeds at every temperature,
top_p, chord-tone weight (`engine.models.chord_tones`), register lean
(`engine.models.register_lean`) and number of drafts (`engine.models.drafts`) of a small
grid; each point is scored by how close its answers come to the real continuations: the mean,
over the sets, of the pitch-class distance, the interval distance, the repetition gap and, for
prompts with chords, the chord agreement gap, and for prompts with several voices, how far the
answers fall short of the real continuations' share that keeps the voices' order (keeping it
more often is no fault) and the gap between their register drift and the real one, in octaves
(`score_system`; lower is better). With chord-fit weights (`engine.models.chord_fit`), the
model also adds chord symbols to the validation windows of the chords set, and the gap between
their chord agreement and the real chords' counts too. The best point can be written into the
checkpoint's config.json as its "sampling" entry
(`engine.models.checkpoint.write_sampling_defaults`), which every request that sets none of
these then gets.
"""

from __future__ import annotations

import itertools
from dataclasses import asdict, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.errors import SegueError

if TYPE_CHECKING:  # imported where used, so that `segue eval --help` stays light
    from engine.models.continuation import Sampling
    from engine.study.evaluate import EvalConfig

TEMPERATURES = (0.7, 0.85, 1.0, 1.15)
TOP_PS = (0.9, 0.95, 1.0)
CRITERIA = ("pitch_class_distance", "interval_distance", "repetition_gap", "chord_agreement_gap",
            "voice_order_shortfall", "register_drift_gap", "added_chord_gap")
CRITERION_TITLES = {"pitch_class_distance": "pc", "interval_distance": "interval",
                    "repetition_gap": "rep. gap", "chord_agreement_gap": "chord gap",
                    "voice_order_shortfall": "order short", "register_drift_gap": "drift gap",
                    "added_chord_gap": "added chord gap"}
# The settings a grid point sets, by name in Sampling and in the config's "sampling".
SETTINGS = ("temperature", "top_p", "chord_tones", "register_lean", "chord_fit", "drafts")


def point_figures(answered: dict[str, Any], real: dict[str, Any],
                  added: dict[str, Any] | None = None) -> dict[str, Any]:
    """The criteria of one set's answers, from their figures (`score_system`): the chord
    agreement gap only where the real continuations have chords, the voice order shortfall and
    the register drift gap only where they have several voices, the added chord gap only with
    the `added` chord symbols' figures; and its score (their mean)."""
    import numpy as np

    figures = dict(answered)
    figures["repetition_gap"] = abs(figures["repetition"] - real["repetition"])
    figures["chord_agreement_gap"] = None if real["chord_agreement"] is None or \
        figures["chord_agreement"] is None \
        else abs(figures["chord_agreement"] - real["chord_agreement"])
    figures["voice_order_shortfall"] = None if real["voice_order_share"] is None or \
        figures["voice_order_share"] is None \
        else max(0.0, real["voice_order_share"] - figures["voice_order_share"])
    figures["register_drift_gap"] = None if real["register_drift"] is None or \
        figures["register_drift"] is None \
        else abs(figures["register_drift"] - real["register_drift"]) / 12
    figures["added_chord_agreement"] = None if added is None \
        else added["systems"]["model"]["chord_agreement"]
    figures["added_chord_gap"] = None if added is None else \
        abs(figures["added_chord_agreement"] - added["systems"]["real"]["chord_agreement"])
    kept = {name: figures[name] for name in (*CRITERIA, "chord_agreement", "voice_order_share",
                                             "register_drift", "added_chord_agreement",
                                             "bar_share",
                                             "abc2midi_silent_share", "diversity")}
    scored = [figures[name] for name in CRITERIA if figures[name] is not None]
    return kept | {"score": float(np.mean(scored))}


def sampling_at(point: dict[str, Any]) -> Sampling:
    """The Sampling of a grid point."""
    from engine.models.continuation import Sampling

    return Sampling(temperature=point["temperature"], top_p=point["top_p"],
                    chord_tones=point["chord_tones"], register_lean=point["register_lean"],
                    chord_fit=point["chord_fit"], drafts=int(point["drafts"]))


def sampling_grid(config: EvalConfig, temperatures: tuple[float, ...] = TEMPERATURES,
                  top_ps: tuple[float, ...] = TOP_PS, chord_tones: tuple[float, ...] | None = None,
                  register_leans: tuple[float, ...] | None = None,
                  chord_fits: tuple[float, ...] | None = None,
                  drafts: tuple[int, ...] | None = None,
                  write: bool = False) -> tuple[Path, dict[str, Any]]:
    """Measure every (temperature, top_p, chord_tones, register_lean, chord_fit, drafts) on the
    validation prompts (chord_tones, register_leans, chord_fits or drafts None: the model's own
    only;
    with chord_fits, the chords set's windows also get chord symbols added); write the report
    folder (results.json, table.md); with `write`, record the best in the checkpoint's
    config.json."""
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
    from engine.models.continuation import Engine
    from engine.study.accompaniment_eval import accompaniment_figures
    from engine.study.eval_sets import load_material, set_cases
    from engine.study.evaluate import continue_all, score_system
    from engine.study.report import markdown_table, report_folder, write_json

    engine = Engine.load(config.model, device=config.device)
    own = engine.sampling_defaults
    values = (temperatures, top_ps,
              chord_tones if chord_tones is not None else (own["chord_tones"],),
              register_leans if register_leans is not None else (own["register_lean"],),
              chord_fits if chord_fits is not None else (own["chord_fit"],),
              drafts if drafts is not None else (own["drafts"],))
    points = [{name: int(value) if name == "drafts" else float(value)
               for name, value in zip(SETTINGS, point, strict=True)}
              for point in itertools.product(*values)]
    if not points:
        raise SegueError("the grid needs at least one temperature, top_p, chord-tone weight, "
                         "register lean, chord fit and drafts")
    for point in points:
        sampling_at(point).check()
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
    drawn, answered = None, {}  # the sampling the answers in hand were drawn with, and theirs
    for point in points:
        sampling = sampling_at(point)
        if replace(sampling, chord_fit=None) != drawn:  # the chord fit leaves them alone
            drawn = replace(sampling, chord_fit=None)
            for name, found in cases.items():
                continue_all(engine, found, "model", replace(config, sampling=sampling))
                answered[name] = score_system(found, "model", config.bars)
        per_set = {}
        for name in cases:
            added = accompaniment_figures(name, material.texts(name), {"model": engine},
                                          config.bars, config.n, lambda items, _: items,
                                          sampling) \
                if chord_fits is not None and name == "chords" and engine.chord_symbols \
                else None
            per_set[name] = point_figures(answered[name], real[name], added)
        rows.append({**point, "sets": per_set,
                     "score": float(np.mean([f["score"] for f in per_set.values()]))})
    best = min(rows, key=lambda row: row["score"])
    chosen = {name: best[name] for name in SETTINGS}
    folder = report_folder("grid", config.out)
    figures = {"kind": "sampling-grid", "command": config.command, "model": engine.name,
               "split": "valid", "machine": machine(torch.device(engine.device), 1),
               "config": asdict(config), "criteria": list(CRITERIA),
               "prompts": {name: len(found) for name, found in cases.items()},
               "real": {name: {criterion: measured[criterion]
                               for criterion in ("repetition", "chord_agreement",
                                                 "voice_order_share", "register_drift")}
                        for name, measured in real.items()},
               "points": rows, "chosen": chosen, "written": write}
    write_json(folder / "results.json", figures)
    shown = {name: [c for c in CRITERIA if rows[0]["sets"][name][c] is not None]
             for name in sets}
    header = ["temperature", "top_p", "chord tones", "register lean", "chord fit", "drafts",
              *(f"{name} {CRITERION_TITLES[c]}" for name in sets for c in shown[name]),
              "score ↓"]
    table = [[*(row[name] for name in SETTINGS),
              *(row["sets"][name][c] for name in sets for c in shown[name]), row["score"]]
             for row in rows]
    text = (f"`{config.command or 'segue eval --grid'}`: {engine.name} on the validation split "
            f"({', '.join(f'{name} {len(found)} prompts' for name, found in cases.items())}, "
            f"{config.seeds} seeds each); score = mean of pitch-class distance, interval "
            "distance, repetition gap, (with chords) chord agreement gap and (with several "
            "voices) voice order shortfall and register drift gap in octaves, (with chord fits) "
            "the gap of added chord symbols' agreement to the real chords'; lower is closer "
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
