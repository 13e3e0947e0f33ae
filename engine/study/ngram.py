"""The n-gram baseline: a character n-gram model with Witten-Bell interpolation.

    ngram = NGram.fit(token_array(train_tunes, tokenizer), order=6, vocab_size=96)
    ngram.bits_per_char(token_array(test_tunes, tokenizer))
    Engine(ngram, tokenizer, block_size=4096, name="ngram-6", device="cpu")  # bar-exact too

The probability of a character after a context h of k characters mixes what followed h in
training with the estimate for h's last k - 1 characters (Witten-Bell):

    p_k(c | h) = (C(h c) + T(h) p_{k-1}(c)) / (C(h) + T(h))

where C counts occurrences and T(h) is the number of distinct characters seen after h; a
context never seen falls back to p_{k-1}. The order-0 estimate is add-one smoothed, so every
character has a probability above zero. Counts are kept as sorted integer keys (a context of
k characters is a number in base `vocab_size`), so fitting on the whole corpus takes seconds.

The model answers like a `transformers` causal LM (`model(input_ids, cache=..., use_cache=True)`
-> `.logits`, `.cache`), so `engine.models.continuation.Engine` decodes it bar-exactly unchanged.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from types import SimpleNamespace

import numpy as np
import torch

from engine.errors import SegueError

MAX_ORDER = 9  # keys of order + 1 characters in base 96 must fit in an int64


class NGram(torch.nn.Module):
    """A fitted character n-gram model (`order` = context length + 1)."""

    def __init__(self, order: int, vocab_size: int, pad: int,
                 tables: Sequence[tuple[np.ndarray, ...]]) -> None:
        super().__init__()
        self.order, self.vocab_size, self.pad = order, vocab_size, pad
        self.tables = tables  # per context length k: (joint keys, counts, contexts, totals, types)
        self.config = SimpleNamespace(model_type="ngram")

    @classmethod
    def fit(cls, data: np.ndarray, *, order: int = 6, vocab_size: int = 96,
            pad: int = 0) -> NGram:
        """Count the n-grams of a token array; `pad` (the tune separator) fills missing context."""
        if not 1 <= order <= MAX_ORDER:
            raise SegueError(f"the n-gram order must be between 1 and {MAX_ORDER}, not {order}")
        tokens = np.concatenate([np.full(order - 1, pad), data]).astype(np.int64)
        targets = tokens[order - 1:]
        tables = []
        for context in context_keys(tokens, order, vocab_size):
            joint, counts = np.unique(context * vocab_size + targets, return_counts=True)
            contexts, first, types = np.unique(joint // vocab_size, return_index=True,
                                               return_counts=True)
            totals = np.add.reduceat(counts, first)
            tables.append((joint, counts, contexts, totals, types))
        return cls(order, vocab_size, pad, tables)

    def probabilities(self, contexts: list[np.ndarray], candidates: np.ndarray) -> np.ndarray:
        """p(candidate | context) for each row; `contexts[k]` holds the length-k context keys."""
        joint, counts, _, totals, _ = self.tables[0]
        unigram = (lookup(joint, counts, candidates) + 1) / (totals.sum() + self.vocab_size)
        p = unigram
        for k in range(1, self.order):
            joint, counts, keys, totals, types = self.tables[k]
            h = contexts[k].reshape(-1, *([1] * (candidates.ndim - 1)))
            seen = lookup(joint, counts, h * self.vocab_size + candidates)
            total = lookup(keys, totals, h)
            distinct = lookup(keys, types, h)
            with np.errstate(invalid="ignore", divide="ignore"):
                mixed = (seen + distinct * p) / (total + distinct)
            p = np.where(total > 0, mixed, p)
        return p

    def token_bits(self, data: np.ndarray) -> np.ndarray:
        """-log2 p of each token of `data`, predicted from the ones before it (`pad` before
        the first)."""
        tokens = np.concatenate([np.full(self.order - 1, self.pad), data]).astype(np.int64)
        contexts = list(context_keys(tokens, self.order, self.vocab_size))
        return -np.log2(self.probabilities(contexts, tokens[self.order - 1:]))

    def bits_per_char(self, data: np.ndarray) -> float:
        """Mean bits per token of `data` (each token predicted from the ones before it)."""
        return float(self.token_bits(data).mean())

    def forward(self, input_ids: torch.Tensor, cache: torch.Tensor | None = None,
                use_cache: bool = True) -> SimpleNamespace:
        """Log-probabilities of the next token after each row (logits of shape (B, 1, V))."""
        history = input_ids if cache is None else torch.cat([cache, input_ids], dim=1)
        tail = history[:, -(self.order - 1):] if self.order > 1 else history[:, :0]
        rows = tail.cpu().numpy().astype(np.int64)
        if rows.shape[1] < self.order - 1:
            padding = np.full((len(rows), self.order - 1 - rows.shape[1]), self.pad)
            rows = np.concatenate([padding, rows], axis=1)
        contexts = [np.zeros(len(rows), dtype=np.int64)]
        for k in range(1, self.order):
            contexts.append(contexts[-1] + rows[:, -k] * self.vocab_size ** (k - 1))
        p = self.probabilities(contexts, np.arange(self.vocab_size)[None, :])
        logits = torch.from_numpy(np.log(p)).float()[:, None, :]
        return SimpleNamespace(logits=logits, cache=history[:, -max(1, self.order - 1):])


def context_keys(tokens: np.ndarray, order: int, vocab_size: int) -> Iterator[np.ndarray]:
    """For k = 0 .. order-1, the key of the k tokens before each of tokens[order-1:]."""
    n = len(tokens) - (order - 1)
    key = np.zeros(n, dtype=np.int64)
    yield key
    for k in range(1, order):
        key = key + tokens[order - 1 - k: order - 1 - k + n] * vocab_size ** (k - 1)
        yield key


def lookup(keys: np.ndarray, values: np.ndarray, query: np.ndarray) -> np.ndarray:
    """values[keys == query] for every query, 0 where a query is not among the sorted keys."""
    at = np.searchsorted(keys, query).clip(max=len(keys) - 1)
    return np.where(keys[at] == query, values[at], 0).astype(np.float64)


def best_order(train: np.ndarray, valid: np.ndarray, orders: range, vocab_size: int,
               pad: int) -> tuple[NGram, dict[int, float]]:
    """The order with the lowest validation bits per character, and every order's figure."""
    scores, best = {}, None
    for order in orders:
        model = NGram.fit(train, order=order, vocab_size=vocab_size, pad=pad)
        scores[order] = model.bits_per_char(valid)
        if best is None or scores[order] < scores[best.order]:
            best = model
    if best is None or not all(map(math.isfinite, scores.values())):
        raise SegueError("the n-gram baseline could not be fitted")
    return best, scores
