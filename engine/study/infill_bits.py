"""Infill in `segue eval`: how well a model predicts a gap's bars given the music on both sides
of it, against given the music before it only.

Examples are cut as training cuts them (`engine.abc.windows`): windows of whole four-bar lines
that fit the model's context, each with a gap of 1 to 8 bars and music on both sides
(`fill_parts`, seeded per example). The gap's bars (`middle`, as the `%%segue fill` section
writes them) are scored twice, the same characters each time:

- both sides:   after `<head><before>%%segue gap N\\n<after>%%segue fill\\n`, the
                fill-in-the-middle format a model learns from training's fill windows;
- prefix only:  after `<head><before>`, as a plain continuation would read them.

Each figure is the middles' total -log2 p over their total characters (pooled). A model that
uses the music after the gap scores lower given both sides; one never trained on the format
scores higher there, since the `%%segue` lines are new to it.
"""

from __future__ import annotations

import random
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F

from engine.abc.text import TUNE_SEPARATOR
from engine.abc.windows import Fill, fill_parts, windows

if TYPE_CHECKING:
    from engine.models.tokenizer import CharTokenizer

# Characters a fill example may add to its window: the gap and fill lines, and the voice lines
# of the lines the gap splits.
FILL_MARGIN = 96


def fill_examples(texts: list[str], block_size: int, count: int,
                  seed: int = 0) -> list[Fill]:
    """Up to `count` fill examples from `texts`: one window of each text in turn (round
    robin), each window fitting `block_size` with its fill lines; the gap of the i-th example
    drawn with seed (seed, i)."""
    limit = max(64, block_size - len(TUNE_SEPARATOR) - FILL_MARGIN)
    queues = [windows(text, limit) for text in texts]
    found: list[Fill] = []
    for depth in range(max((len(q) for q in queues), default=0)):
        for queue in queues:
            if len(found) >= count:
                return found
            if depth < len(queue):
                layout, start, stop = queue[depth]
                fill = fill_parts(layout, start, stop, random.Random(f"{seed}-{len(found)}"))
                if fill is not None:
                    found.append(fill)
    return found


@torch.no_grad()
def token_bits(system: Any, ids: list[int], block_size: int, device: str) -> np.ndarray:
    """-log2 p of ids[1:], each given the ids before it, by a model or an n-gram; a sequence
    longer than the model's context keeps its last `block_size` + 1 ids."""
    from engine.models.lm import sequence_logits
    from engine.study.ngram import NGram

    if isinstance(system, NGram):
        return system.token_bits(np.array(ids, dtype=np.int64))[1:]
    ids = ids[-(block_size + 1):]
    tokens = torch.tensor([ids], device=device)
    logits = sequence_logits(system, tokens[:, :-1])
    nats = F.cross_entropy(logits[0], tokens[0, 1:], reduction="none")
    return (nats / np.log(2)).cpu().numpy()


def middle_bits(system: Any, tokenizer: CharTokenizer, context: str, middle: str, block_size: int,
                device: str) -> tuple[float, int]:
    """(total bits, characters) of `middle` read after `context` (a tune after a blank line,
    as the models read tunes)."""
    before = tokenizer.encode(TUNE_SEPARATOR + context)
    after = tokenizer.encode(middle)
    bits = token_bits(system, before + after, block_size, device)
    return float(bits[-len(after):].sum()), len(middle)


def infill_figures(system: Any, tokenizer: CharTokenizer, examples: list[Fill], block_size: int,
                   device: str) -> dict[str, Any]:
    """Bits per character of the examples' middles given both sides and given the prefix only."""
    totals = {"both_sides": 0.0, "prefix_only": 0.0}
    characters = 0
    for fill in examples:
        for name, context in (("both_sides", fill.prompt), ("prefix_only", fill.before)):
            bits, count = middle_bits(system, tokenizer, context, fill.middle, block_size,
                                      device)
            totals[name] += bits
        characters += count
    return {"examples": len(examples), "middle_characters": characters,
            **{name: total / characters if characters else None
               for name, total in totals.items()}}
