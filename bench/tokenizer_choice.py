"""Characters or BPE? Measure what each tokenizer does to the canonical ABC of the corpus.

For the character tokenizer and BPE vocabularies trained on the training split (HF
`tokenizers`), on the validation split: tokens per bar, characters per token, and the share
of tokens that hold a bar line together with music (such a token closes one bar and starts
the next in one step, so the bar-exact decoder must look through it character by character).

    python bench/tokenizer_choice.py [--sizes 256 512 1024] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import statistics

from tokenizers import Tokenizer, models, trainers

from engine.models.tokenizer import CharTokenizer
from engine.training.dataset import load_corpus


def bar_count(text: str) -> int:
    body = text.split("\nK:", 1)[-1]
    return max(1, body.count("|"))


def measure(pieces: list[list[str]], texts: list[str]) -> dict[str, float]:
    tokens = sum(len(p) for p in pieces)
    chars = sum(len(t) for t in texts)
    straddling = sum(1 for p in pieces for token in p if "|" in token and token.strip("|:[]12 \n"))
    return {
        "tokens_per_bar": round(tokens / sum(bar_count(t) for t in texts), 2),
        "chars_per_token": round(chars / tokens, 2),
        "bar_line_tokens_with_music_pct": round(100 * straddling / tokens, 2),
        "median_tokens_per_tune": statistics.median(len(p) for p in pieces),
    }


def train_bpe(texts: list[str], size: int) -> Tokenizer:
    tokenizer = Tokenizer(models.BPE())
    alphabet = CharTokenizer().token_text
    trainer = trainers.BpeTrainer(vocab_size=size, initial_alphabet=alphabet,
                                  show_progress=False)
    tokenizer.train_from_iterator(texts, trainer)
    return tokenizer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 512, 1024])
    parser.add_argument("--json", help="also write the figures here")
    args = parser.parse_args()
    corpus = load_corpus(progress=False)
    train, valid = corpus.splits["train"], corpus.splits["valid"]
    char = CharTokenizer()
    rows = {"char (96)": measure([[char.token_text[i] for i in char.encode(t)] for t in valid],
                                 valid)}
    for size in args.sizes:
        bpe = train_bpe(train, size)
        rows[f"BPE {size}"] = measure([bpe.encode(t).tokens for t in valid], valid)
    print("| tokenizer | tokens/bar | chars/token | bar-line tokens with music | "
          "median tokens/tune |\n|---|---:|---:|---:|---:|")
    for name, row in rows.items():
        print(f"| {name} | {row['tokens_per_bar']} | {row['chars_per_token']} | "
              f"{row['bar_line_tokens_with_music_pct']}% | {row['median_tokens_per_tune']} |")
    if args.json:
        with open(args.json, "w") as file:
            json.dump(rows, file, indent=2)


if __name__ == "__main__":
    main()
