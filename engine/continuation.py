"""Continue a score: the prompt as ABC, bar-exact sampling, the answer as ABC and as a score.

    engine = Engine.load()                      # the shipped default model
    [result] = engine.continue_abc(tune, bars=8, sampling=Sampling(seed=1))
    print(result.abc)                           # head + exactly 8 bars

Every prompt goes through `engine.abc_writer` (the dialect the models were trained on); the
tune head keeps its meter, unit length and key, and so does the continuation. A prompt longer
than the model's context keeps its most recent bars.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass

import torch

from engine.bars import BarState
from engine.dataset import TUNE_SEPARATOR
from engine.errors import SegueError
from engine.limits import check_fillable
from engine.lm import decoder_for
from engine.prompt import BARS_PER_LINE, Prompt, make_prompt

MAX_BARS = 128
MAX_VARIATIONS = 16
# Characters allowed when a segment has used its budget: they can only finish bars quickly.
FINISHING = frozenset("z0123456789/|]}3^_=ABCDEFGabcdefg")


@dataclass(frozen=True)
class Sampling:
    """How to sample: temperature (0 = greedy), nucleus top_p, top_k (0 = off), seed."""

    temperature: float = 1.0
    top_p: float = 0.95
    top_k: int = 0
    seed: int | None = None

    def check(self) -> None:
        if not 0 <= self.temperature <= 10:
            raise SegueError(f"temperature must be between 0 and 10, not {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise SegueError(f"top_p must be above 0 and at most 1, not {self.top_p}")
        if self.top_k < 0:
            raise SegueError(f"top_k must be 0 (off) or more, not {self.top_k}")


@dataclass
class Continuation:
    """One continuation: `abc` holds the head and the new bars alone, `with_prompt` both."""

    abc: str
    with_prompt: str
    bars: int
    tokens: int
    elapsed_ms: float

    def score(self):
        """The continuation as a music21 Score."""
        from engine.music import parse_abc

        return parse_abc(self.abc)


def plan_segments(bars: int, voices: int) -> list[tuple[str, int]]:
    """What to generate, in order: ("bars", n) to sample n bars, ("force", text) to write."""
    if voices == 1:
        return [("bars", bars)]
    plan: list[tuple[str, int]] = []
    for start in range(0, bars, BARS_PER_LINE):
        chunk = min(BARS_PER_LINE, bars - start)
        for voice in range(1, voices + 1):
            plan += [("force", f"\nV:{voice}\n"), ("bars", chunk)]
    return plan


def sample(logits: torch.Tensor, allowed: torch.Tensor, sampling: Sampling,
           generator: torch.Generator) -> int:
    """One token id from masked logits (1-D), by temperature, top-k and top-p."""
    logits = logits.masked_fill(~allowed, float("-inf"))
    if sampling.temperature == 0:
        return int(torch.argmax(logits))
    logits = logits / sampling.temperature
    if sampling.top_k:
        kth = torch.topk(logits, min(sampling.top_k, int(allowed.sum()))).values[-1]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    probs = torch.softmax(logits, dim=-1)
    if sampling.top_p < 1:
        sorted_probs, order = torch.sort(probs, descending=True)
        outside = torch.cumsum(sorted_probs, 0) - sorted_probs > sampling.top_p
        sorted_probs[outside] = 0
        probs = torch.zeros_like(probs).scatter(0, order, sorted_probs)
    return int(torch.multinomial(probs, 1, generator=generator))


@contextlib.contextmanager
def one_cpu_thread(device: str) -> Iterator[None]:
    """Decode on one CPU thread. A token's work is too small to share between threads, and a
    thread that waits for a busy core (a DAW, a training run) makes every token wait: with two
    threads on a loaded 2-core machine, 8 bars took 78 s instead of 0.7 s."""
    if not device.startswith("cpu"):
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


class Engine:
    """A loaded model that continues music bar-exactly."""

    def __init__(self, model: torch.nn.Module, tokenizer, *, block_size: int, name: str,
                 device: str) -> None:
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.block_size = block_size
        self.name = name
        self.device = device
        self.alphabet = tuple(tokenizer.token_text)
        self.finishing = torch.tensor([all(ch in FINISHING for ch in text) and text != ""
                                       for text in self.alphabet])

    @classmethod
    def load(cls, model: str | None = None, device: str = "auto") -> Engine:
        """Load a checkpoint by name or path (None: the shipped default) onto a device."""
        from engine.checkpoint import load_checkpoint

        loaded = load_checkpoint(model, device=device)
        return cls(loaded.model, loaded.tokenizer, block_size=int(loaded.config["block_size"]),
                   name=loaded.name, device=str(loaded.device))

    def continue_abc(self, abc: str, bars: int = 8, sampling: Sampling | None = None,
                     variations: int = 1) -> list[Continuation]:
        """Continue an ABC tune (its first tune if the text has several)."""
        from engine.music import parse_abc

        return self.continue_score(parse_abc(abc), bars, sampling, variations)

    def continue_score(self, score, bars: int = 8, sampling: Sampling | None = None,
                       variations: int = 1) -> list[Continuation]:
        """Continue a music21 score by exactly `bars` bars, `variations` times."""
        if not any(True for _ in score.recurse().notesAndRests):
            raise SegueError("the prompt is empty: select some bars with notes or rests")
        return self.continue_prompt(make_prompt(score), bars, sampling, variations)

    def continue_prompt(self, prompt: Prompt, bars: int = 8, sampling: Sampling | None = None,
                        variations: int = 1) -> list[Continuation]:
        """Continue a prompt (engine.prompt.make_prompt) by exactly `bars` bars."""
        sampling = sampling or Sampling()
        sampling.check()
        if not 1 <= bars <= MAX_BARS:
            raise SegueError(f"bars must be between 1 and {MAX_BARS}, not {bars}")
        if not 1 <= variations <= MAX_VARIATIONS:
            raise SegueError(f"variations must be between 1 and {MAX_VARIATIONS}")
        seed = sampling.seed if sampling.seed is not None else \
            int(torch.randint(0, 2**31 - 1, (1,)))
        results = []
        for index in range(variations):
            started = time.perf_counter()
            with one_cpu_thread(self.device):
                generated, tokens = self.generate(prompt, bars, sampling, seed + index)
            new_body = generated.strip() + "]"
            results.append(Continuation(
                abc=prompt.answer_head + new_body + "\n",
                with_prompt=prompt.head + prompt.body + generated.rstrip() + "]\n",
                bars=bars, tokens=tokens,
                elapsed_ms=(time.perf_counter() - started) * 1000,
            ))
        return results

    def generate(self, prompt: Prompt, bars: int, sampling: Sampling,
                 seed: int) -> tuple[str, int]:
        """The text that follows `prompt`: exactly `bars` bars in every voice."""
        generator = torch.Generator().manual_seed(seed)
        bar = check_fillable(prompt.meter, prompt.unit)
        decoder = decoder_for(self.model)
        body = prompt.body
        context = self.fit(prompt, body, self.block_size * 3 // 4)
        logits = decoder.prefill(self.encode(context))[0]
        used = len(context)
        generated = ""

        def write(token: int) -> None:
            nonlocal logits, used, body, generated
            text = self.alphabet[token]
            generated += text
            body += text
            used += len(text)
            if used >= self.block_size:  # slide: keep the head and the most recent bars
                fitted = self.fit(prompt, body, self.block_size // 2)
                logits = decoder.prefill(self.encode(fitted))[0]
                used = len(fitted)
            else:
                logits = decoder.step(torch.tensor([token], device=self.device))[0]

        tokens = 0
        plan = plan_segments(bars, prompt.voices)
        for index, (kind, value) in enumerate(plan):
            if kind == "force":
                for token in self.tokenizer.encode(value):
                    write(token)
                continue
            state = BarState(bar=bar, bars_left=value,
                             previous="|" if prompt.voices == 1 else "\n")
            budget, spent = value * 96 + 32, 0
            while not state.done:
                successors = state.successors(self.alphabet)
                allowed = torch.tensor([s is not None for s in successors])
                if spent > budget and bool((allowed & self.finishing).any()):
                    allowed &= self.finishing  # a runaway segment: finish its bars quickly
                token = sample(logits.cpu(), allowed, sampling, generator)
                state = successors[token]
                spent += 1
                if state.done and index == len(plan) - 1:
                    generated += self.alphabet[token]  # the last bar line: nothing follows
                else:
                    write(token)
            tokens += spent
        return generated, tokens

    def encode(self, text: str) -> torch.Tensor:
        return torch.tensor([self.tokenizer.encode(TUNE_SEPARATOR + text)], device=self.device)

    def fit(self, prompt: Prompt, body: str, limit: int) -> str:
        """The head and as many of the most recent bars of `body` as fit in `limit` tokens."""
        text = prompt.head + body
        if len(text) + len(TUNE_SEPARATOR) <= limit:
            return text
        room = max(0, limit - len(prompt.head) - len(TUNE_SEPARATOR))
        tail = body[-room:] if room else ""
        cut = tail.find("\nV:1\n") if prompt.voices > 1 else tail.find("|")
        if cut >= 0:
            tail = tail[cut + 1:].lstrip(" ") if prompt.voices == 1 else tail[cut + 1:]
        return prompt.head + tail
