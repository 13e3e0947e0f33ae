"""How far do real voices stray from the register they had in the prompt? Chooses the margin.

On the validation split's several-voice prompts (never the test split), each voice's register
in the prompt is read as decoding reads it (`engine.abc.registers`), and the real continuation
is checked against that register widened by each margin: the share of real answers with every
note of every voice inside, and the share of real voices with every note inside. Decoding
uses the least margin that holds 95% of real voices (REGISTER_MARGIN).

    python bench/register_margin.py --data ../shared/corpora/openscore-lieder --prompts 300
"""

from __future__ import annotations

import argparse

from engine.abc.prompt import make_prompt
from engine.abc.registers import guarded, voice_registers
from engine.abc.text import split_head
from engine.study.eval_sets import load_material, set_cases

MARGINS = (0, 2, 3, 5, 7, 9, 12)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", action="append", required=True, help="a folder (repeatable)")
    parser.add_argument("--prompts", type=int, default=300)
    parser.add_argument("--bars", type=int, default=8, help="bars of prompt and of answer")
    args = parser.parse_args()

    material = load_material("valid", args.data, test_tunes=0)
    cases = set_cases(material, "voices", args.prompts, args.bars, args.bars)
    pairs = []
    for case in cases:
        prompt = voice_registers(make_prompt(case.prompt).body)
        real = voice_registers(split_head(case.answers["real"][0])[1])
        pairs.append((prompt, real))
    print(f"{len(pairs)} validation prompts of {args.bars} bars, {args.bars}-bar real answers")
    print("| margin (semitones) | real answers wholly inside | real voices wholly inside |")
    print("|---:|---:|---:|")
    for margin in MARGINS:
        whole = outside = voices = 0
        for prompt, real in pairs:
            strays = 0
            for name, (low, high) in real.items():
                if name not in prompt:
                    continue
                allowed = guarded(prompt[name], margin)
                voices += 1
                strays += low < allowed[0] or high > allowed[1]
            whole += not strays
            outside += strays
        print(f"| {margin} | {whole / len(pairs):.3f} | {1 - outside / max(voices, 1):.3f} |")


if __name__ == "__main__":
    main()
