"""Which model learns the most music per CPU-hour? A sweep at equal CPU time.

Each candidate (architecture, size, tokenizer) trains from random weights on the same
training windows for the same CPU time (one torch thread; the process's CPU clock, so other
work on the machine does not count), and every `--eval-every` CPU seconds its loss on the same
validation text is measured in bits per *character*, so characters and BPE compare directly.
The learning rate warms up for 50 steps and then stays at `--lr` (the budget, not a step
count, ends a run). Results: a table, `sweep.json` and `sweep.png` (bits/char against CPU
minutes) in `--out`.

    python bench/model_sweep.py --minutes 20                     # the default five candidates
    python bench/model_sweep.py --minutes 2 --limit-tunes 300 --candidates gpt2-6m-char
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from engine.abc.text import TUNE_SEPARATOR
from engine.abc.windows import training_texts
from engine.models.model import build_model, count_parameters, model_config
from engine.models.tokenizer import CharTokenizer
from engine.training.dataset import load_corpus
from engine.training.train import TrainConfig, batch, optimizer_for, train_step

# name: (model sizes, tokenizer, context in tokens)
CANDIDATES: dict[str, tuple[dict, str, int]] = {
    "gpt2-6m-char": ({"architecture": "gpt2", "layers": 8, "width": 256, "heads": 8}, "char", 512),
    "gpt2-3m-char": ({"architecture": "gpt2", "layers": 6, "width": 192, "heads": 6}, "char", 512),
    "gpt2-13m-char": ({"architecture": "gpt2", "layers": 8, "width": 384, "heads": 6}, "char",
                      512),
    "mamba-6m-char": ({"architecture": "mamba", "layers": 15, "width": 256}, "char", 512),
    "gpt2-6m-bpe512": ({"architecture": "gpt2", "layers": 8, "width": 256, "heads": 8},
                       "bpe512", 256),
}
WINDOW_CHARS = 512
VALID_CHARS = 60_000


class Tokens:
    """A tokenizer for the sweep: characters, or a byte-level BPE trained on the windows."""

    def __init__(self, kind: str, train: list[str]) -> None:
        self.kind = kind
        if kind == "char":
            self.char = CharTokenizer()
            self.vocab_size = self.char.vocab_size
        else:
            from tokenizer_choice import train_bpe  # bench/tokenizer_choice.py

            self.bpe = train_bpe(train, int(kind.removeprefix("bpe")))
            self.vocab_size = self.bpe.get_vocab_size()

    def encode(self, text: str) -> list[int]:
        return self.char.encode(text) if self.kind == "char" else self.bpe.encode(text).ids


def joined(texts: list[str]) -> str:
    return "".join(TUNE_SEPARATOR + text for text in texts)


@torch.no_grad()
def bits_per_char(model: torch.nn.Module, ids: np.ndarray, chars: int, block: int) -> float:
    """Bits per character of a validation text, scored in consecutive blocks of `block`."""
    model.eval()
    total = 0.0
    for start in range(0, len(ids) - 1, block):
        piece = torch.from_numpy(ids[start: start + block + 1].astype(np.int64))[None]
        if piece.size(1) < 2:
            break
        logits = model(input_ids=piece[:, :-1], use_cache=False).logits.float()
        total += float(F.cross_entropy(logits[0], piece[0, 1:], reduction="sum"))
    model.train()
    return total / chars / math.log(2)


def sweep_one(name: str, train: list[str], valid_text: str, args: argparse.Namespace) -> dict:
    sizes, kind, block = CANDIDATES[name]
    tokens = Tokens(kind, train)
    data = np.array(tokens.encode(joined(train)), dtype=np.int32)
    valid = np.array(tokens.encode(valid_text), dtype=np.int32)
    spec = model_config(None, vocab_size=tokens.vocab_size, **sizes)
    torch.manual_seed(args.seed)
    model = build_model(spec).train()
    config = TrainConfig(out="", block_size=block, batch_size=args.batch_size, lr=args.lr)
    optimizer = optimizer_for(model, config, torch.device("cpu"))
    records = [{"cpu_s": 0.0, "step": 0,
                "bits_per_char": bits_per_char(model, valid, len(valid_text), block)}]
    print(f"{name}: {count_parameters(model):,} parameters, {len(data):,} training tokens "
          f"({len(joined(train)) / len(data):.2f} chars/token)", flush=True)
    cpu, step, next_eval = 0.0, 0, args.eval_every
    while cpu < args.minutes * 60:
        started = time.process_time()
        generator = torch.Generator().manual_seed(args.seed * 1_000_003 + step)
        x, y = batch(data, config, generator, config.batch_size, torch.device("cpu"))
        lr = args.lr * min(1.0, (step + 1) / 50)
        loss = train_step(model, model, optimizer, None, _no_autocast, x, y, lr, 1.0)
        step += 1
        cpu += time.process_time() - started
        if cpu >= next_eval or cpu >= args.minutes * 60:
            next_eval += args.eval_every
            records.append({"cpu_s": round(cpu, 1), "step": step, "train_loss": loss,
                            "bits_per_char": bits_per_char(model, valid, len(valid_text),
                                                           block)})
            print(f"  {cpu / 60:5.1f} CPU min, step {step}: "
                  f"{records[-1]['bits_per_char']:.3f} bits/char", flush=True)
    return {"parameters": count_parameters(model), "tokenizer": kind, "block": block,
            "chars_per_token": len(joined(train)) / len(data), "records": records}


def _no_autocast():
    import contextlib

    return contextlib.nullcontext()


def plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(7, 4.5))
    for name, result in results.items():
        points = [(r["cpu_s"] / 60, r["bits_per_char"]) for r in result["records"][1:]]
        axes.plot(*zip(*points, strict=True), marker=".",
                  label=f"{name} ({result['parameters'] / 1e6:.1f}M)")
    axes.set(xlabel="CPU minutes (one thread)", ylabel="validation bits per character",
             title="Bits per character at equal CPU time")
    axes.grid(alpha=0.3)
    axes.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--candidates", nargs="+", default=list(CANDIDATES),
                        choices=list(CANDIDATES))
    parser.add_argument("--minutes", type=float, default=20, help="CPU minutes each (20)")
    parser.add_argument("--eval-every", type=float, default=120, help="CPU seconds (120)")
    parser.add_argument("--data", action="append", default=[], metavar="DIR",
                        help="folders added to the bundled corpus (repeatable)")
    parser.add_argument("--limit-tunes", type=int, help="first N training tunes only")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=1337)
    parser.add_argument("--out", type=Path, default=Path("reports/sweep"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    corpus = load_corpus(args.data, limit=args.limit_tunes, progress=False)
    train = training_texts(corpus.splits["train"], WINDOW_CHARS - 1)
    valid_text = joined(training_texts(corpus.splits["valid"], WINDOW_CHARS - 1))[:VALID_CHARS]
    args.out.mkdir(parents=True, exist_ok=True)
    results = {}
    for name in args.candidates:
        results[name] = sweep_one(name, train, valid_text, args)
        (args.out / "sweep.json").write_text(json.dumps(
            {"minutes": args.minutes, "data": args.data, "results": results}, indent=2))
        plot(results, args.out / "sweep.png")
    print("\n| candidate | parameters | tokenizer | bits/char at the end |\n|---|---:|---|---:|")
    for name, result in results.items():
        print(f"| {name} | {result['parameters']:,} | {result['tokenizer']} | "
              f"{result['records'][-1]['bits_per_char']:.3f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
