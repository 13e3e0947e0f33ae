"""Which draft to keep? Two choices among the very same drafts, on the several-voice prompts.

Each answer's drafts are drawn once, as `segue eval` draws them (the shipped sampling, seed
1000 x prompt + seed), and the kept one is chosen two ways (`engine.models.drafts.agreed`):
by the notes alone, and by the notes among the drafts that keep the voices in the prompt's
order of pitch. Both are then measured as `segue eval` measures an answer: whether the voices
keep their order (every pair, and pairs more than a fifth apart) and how far its pitch classes
and intervals lie from the real continuation. Choose on the validation split.

    python bench/draft_choice.py --data ../shared/corpora/openscore-lieder --prompts 60 --seeds 2
"""

from __future__ import annotations

import argparse
from statistics import mean

from engine.abc.meters import bar_meters
from engine.abc.music import note_events, parse_abc
from engine.abc.profile import distance, histograms
from engine.abc.prompt import make_prompt
from engine.abc.registers import keeps_voice_order, voice_centres
from engine.models.continuation import DRAFT_SEEDS, Engine, Sampling, draft_count, one_cpu_thread
from engine.models.drafts import agreed, keeps_order, profile_of
from engine.study.eval_sets import SPLITS, load_material, set_cases
from engine.study.evaluate import APART
from engine.study.measures import voice_means

CHOICES = ("notes alone", "voices in order first")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", action="append", required=True, help="a folder (repeatable)")
    parser.add_argument("--split", choices=SPLITS, default="valid")
    parser.add_argument("--prompts", type=int, default=60)
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--bars", type=int, default=8, help="bars of prompt and of answer")
    parser.add_argument("--model", help="a model name or folder (default: the shipped one)")
    args = parser.parse_args()

    material = load_material(args.split, args.data, test_tunes=0, workers=1, progress=False)
    cases = set_cases(material, "voices", args.prompts, args.bars, args.bars)
    engine = Engine.load(args.model, device="cpu")
    figures: dict[str, dict[str, list[float]]] = {
        choice: {"order": [], "apart": [], "pitch classes": [], "intervals": []}
        for choice in CHOICES}
    changed = 0
    for index, case in enumerate(cases):
        real = histograms(note_events(parse_abc(case.answers["real"][0])))
        prompt = make_prompt(case.prompt, chord_symbols=engine.chord_symbols)
        meters = bar_meters(None, args.bars, prompt.meter)
        centres = voice_centres(prompt.body)
        for seed in range(args.seeds):
            sampling = engine.resolve_sampling(Sampling(seed=1000 * index + seed))
            count = draft_count(sampling.drafts or 1, args.bars, prompt.voices, 1)
            with one_cpu_thread(engine.device):
                drawn = engine.generate(prompt, meters, sampling,
                                        [1000 * index + seed + k * DRAFT_SEEDS
                                         for k in range(count)])
            drafts = [engine.continuation(prompt, meters, draft, 0.0).abc for draft in drawn]
            profiles = [profile_of(draft) for draft in drafts]
            kept = [agreed(profiles), agreed(profiles, [keeps_order(centres, d) for d in drafts])]
            changed += kept[0] != kept[1]
            for choice, chosen in zip(CHOICES, kept, strict=True):
                score = parse_abc(drafts[chosen])
                means = voice_means(score)
                pitch_classes, intervals = histograms(note_events(score))
                for name, value in (("order", keeps_voice_order(case.means, means)),
                                    ("apart", keeps_voice_order(case.means, means, APART)),
                                    ("pitch classes", distance(pitch_classes, real[0])),
                                    ("intervals", distance(intervals, real[1]))):
                    if value is not None:
                        figures[choice][name].append(float(value))
    answers = len(cases) * args.seeds
    print(f"{args.split}: {len(cases)} several-voice prompts x {args.seeds} seeds; "
          f"the choices differ in {changed} of {answers} answers")
    print("| kept draft | voice order kept | ... more than a fifth apart | pitch-class dist. "
          "| interval dist. |")
    print("|---|---:|---:|---:|---:|")
    for choice in CHOICES:
        shown = figures[choice]
        print(f"| {choice} | " + " | ".join(f"{mean(shown[name]):.3f}" if shown[name] else "–"
                                           for name in ("order", "apart", "pitch classes",
                                                        "intervals")) + " |")


if __name__ == "__main__":
    main()
