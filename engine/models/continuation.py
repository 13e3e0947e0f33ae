"""Continue a score: the prompt as ABC, bar-exact sampling, the answer as ABC and as a score.

    engine = Engine.load()                      # the shipped default model
    [result] = engine.continue_abc(tune, bars=8, sampling=Sampling(seed=1))
    print(result.abc)                           # head + exactly 8 bars

Every prompt goes through `engine.abc.writer` (the dialect the models were trained on); the
tune head keeps its meter, unit length, voices (names and clefs) and key, and the continuation
is written in the meter, key and tempo in force at the end of the prompt, unless the caller
gives the meter of each new bar (`bar_meters`: the bars a host fills may already exist in
another meter). Then each bar is written bar-exactly in its own meter, and the engine writes an
inline `[M:3/4]` field where the meter changes. A prompt longer than the model's context keeps
its most recent bars.

A prompt that ends inside a bar is answered by first completing that bar: the answer opens
with the rest of that bar (written as a short first bar, an anacrusis) and then has the bars
asked for. Every entry point (CLI, HTTP, OSC, MIDI, plug-in) goes through `continue_score`, so
all behave alike.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Generator, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from fractions import Fraction
from typing import TYPE_CHECKING, Any

import torch

from engine.abc.bars import BarState, bar_units, grid_for, key_alters
from engine.abc.limits import MAX_WORK_BARS, check_fillable, check_prompt
from engine.abc.meters import answer_score, bar_meters
from engine.abc.playback import playable
from engine.abc.prompt import BARS_PER_LINE, Prompt, make_prompt
from engine.abc.registers import guarded, voice_centres, voice_registers
from engine.abc.text import TUNE_SEPARATOR, VOICE_LINE
from engine.abc.token_masks import TokenMasks
from engine.errors import SegueError
from engine.models.checkpoint import DEFAULT_SAMPLING
from engine.models.chord_fit import BarNotes, ChordFit
from engine.models.chord_tones import ChordTones, last_chords
from engine.models.drafts import agreed, keeps_order, profile_of
from engine.models.lm import Feed, Rows, decoder_for, rows_for
from engine.models.register_lean import RegisterLean
from engine.settings import check

if TYPE_CHECKING:
    from music21 import stream

    from engine.models.tokenizer import CharTokenizer

# Variation i's drafts are drawn with seeds seed + i, seed + i + DRAFT_SEEDS, ...: its drafts
# are the same however many variations.
DRAFT_SEEDS = 1 << 20
# Threads that decode a request's drafts (`draft_threads`): beyond a few, they wait for
# Python's lock.
MAX_DRAFT_THREADS = 4
# Characters allowed when a segment has used its budget: they can only finish bars quickly.
FINISHING = frozenset("z0123456789/|]}3^_=ABCDEFGabcdefg")


@dataclass(frozen=True)
class Sampling:
    """How to sample: temperature (0 = greedy), nucleus top_p, top_k (0 = off), chord_tones
    (how strongly strong beats lean to the chord in force, `engine.models.chord_tones`; 0 =
    off), register_lean (how strongly each of several voices leans to its register's centre,
    `engine.models.register_lean`; 0 = off), chord_fit (how strongly an added chord symbol
    leans to the notes of its bar, `engine.models.chord_fit`; 0 = off), drafts (how many
    answers are drawn for each one a continuation returns, the one the others agree with kept,
    `engine.models.drafts`; 1 = the first; fewer where bars x voices x variations x drafts
    would pass `engine.abc.limits.MAX_WORK_BARS`), seed.

    A setting left None is the model's own default (`Engine.resolve_sampling`: its config.json
    "sampling", else `engine.models.checkpoint.DEFAULT_SAMPLING`).
    """

    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    seed: int | None = None
    chord_tones: float | None = None
    register_lean: float | None = None
    chord_fit: float | None = None
    drafts: int | None = None

    def check(self) -> None:
        """ParameterError for a setting outside its limits (`engine.settings.LIMITS`)."""
        for name in (*DEFAULT_SAMPLING, "seed"):
            check(name, getattr(self, name))

    def with_defaults(self, defaults: dict[str, float]) -> Sampling:
        """This sampling, its unset settings (all but the seed) taken from `defaults`."""
        unset: dict[str, Any] = {name: defaults[name] for name in DEFAULT_SAMPLING
                                 if getattr(self, name) is None}
        return replace(self, **unset)


@dataclass
class Continuation:
    """One continuation: `abc` holds the head and the new bars alone, `with_prompt` both."""

    abc: str
    with_prompt: str
    bars: int
    tokens: int  # sampled, in every draft
    elapsed_ms: float
    meters: list[str] = field(default_factory=list)  # the meter of each new bar

    def score(self) -> stream.Score:
        """The continuation as a music21 Score, each bar in its own meter."""
        return answer_score(self.abc, self.meters)


@dataclass(frozen=True)
class Segment:
    """One step of generation: sample `bars` bars of `meter`, or force `text` into the tune
    (`in_answer` False: into the model's context only, as the answer's head says it).
    `completing`: the segment first completes the prompt's unfinished last bar."""

    bars: int = 0
    meter: str = ""
    text: str = ""
    in_answer: bool = True
    completing: bool = False
    symbol: bool = False  # sample one chord symbol (its opening quote already written)
    under: BarNotes | None = None  # the notes of its bar and its key (chord_fit)


def plan_segments(meters: list[str], voices: int, prompt_meter: str,
                  unfinished: bool = False) -> list[Segment]:
    """What to generate, in order, for new bars in `meters`: runs of bars in one meter, an
    inline meter field where the meter changes, and the voice lines of a multi-voice tune
    (BARS_PER_LINE bars each, voice after voice). With an `unfinished` last prompt bar, each
    voice's first line starts by completing it, in the prompt's meter."""
    plan: list[Segment] = []
    lines = [(0, len(meters))] if voices == 1 else \
        [(start, min(start + BARS_PER_LINE, len(meters)))
         for start in range(0, len(meters), BARS_PER_LINE)]
    for start, end in lines:
        for voice in range(1, voices + 1) if voices > 1 else (0,):
            if voice:
                plan.append(Segment(text=f"\nV:{voice}\n"))
            if unfinished and not start:
                plan.append(Segment(bars=1, meter=prompt_meter, completing=True))
            before = meters[start - 1] if start else prompt_meter
            for index in range(start, end):
                if meters[index] != before:  # the answer's head says the first bar's meter
                    plan.append(Segment(text=f"[M:{meters[index]}]",
                                        in_answer=index > 0 or unfinished))
                if plan and plan[-1].bars and plan[-1].meter == meters[index] \
                        and not plan[-1].completing:
                    plan[-1] = Segment(bars=plan[-1].bars + 1, meter=meters[index])
                else:
                    plan.append(Segment(bars=1, meter=meters[index]))
                before = meters[index]
    return plan


def sample(logits: torch.Tensor, allowed: torch.Tensor, sampling: Sampling,
           generator: torch.Generator) -> int:
    """One token id from masked logits (1-D), by temperature, top-k and top-p.

    Each token pays for a dozen tensor operations on a vector of the alphabet's size, so the
    steps are as few as give the same numbers: no division by a temperature of 1, the nucleus
    zeroed in sorted order and scattered back in one operation.
    """
    temperature, top_p, top_k = sampling.temperature, sampling.top_p, sampling.top_k
    assert temperature is not None and top_p is not None and top_k is not None, "resolve first"
    logits = torch.where(allowed, logits, float("-inf"))
    if temperature == 0:
        return int(torch.argmax(logits))
    if temperature != 1:
        logits = logits / temperature
    if top_k:
        kth = torch.topk(logits, min(top_k, int(allowed.sum()))).values[-1]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    probs = torch.softmax(logits, dim=-1)
    if top_p < 1:
        sorted_probs, order = torch.sort(probs, descending=True)
        outside = torch.cumsum(sorted_probs, 0) - sorted_probs > top_p
        probs = probs.scatter(0, order, sorted_probs.masked_fill_(outside, 0))
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


def draft_threads(drafts: int) -> int:
    """Threads that decode a request's drafts, each a share of them as the rows of one batch
    (`Engine.generate`): one a core, at most MAX_DRAFT_THREADS, no more than the drafts. A
    thread's tensor work releases Python's lock, so two threads keep two cores busy."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") \
        else os.cpu_count() or 1
    return max(1, min(drafts, cores, MAX_DRAFT_THREADS))


def draft_count(drafts: int, bars: int, voices: int, variations: int) -> int:
    """The drafts a request gets: as many as asked, but no more than keep the bars written
    (bars x voices x variations x drafts) within one request's work,
    `engine.abc.limits.MAX_WORK_BARS`; at least one."""
    return min(drafts, max(1, MAX_WORK_BARS // (bars * voices * variations)))


# One answer being drawn (`Engine.drawing`): yields what the model must read next, is sent the
# logits that follow, and returns its text.
Drawing = Generator[Feed, torch.Tensor, tuple[str, str, int]]


def decode_together(rows: Rows, drawings: list[Drawing]) -> list[tuple[str, str, int]]:
    """Run `drawings` to their ends, each on its row of `rows`: in every round each reads
    what it wrote and draws its next token. Their texts, in order."""
    drawn: list[tuple[str, str, int]] = [("", "", 0)] * len(drawings)

    def go_on(index: int, logits: torch.Tensor | None) -> Feed | None:
        """Drawing `index` goes on with `logits` (None: it starts) to its next feed, or ends
        (None)."""
        try:
            return drawings[index].send(logits) if logits is not None else next(drawings[index])
        except StopIteration as done:
            drawn[index] = done.value
            return None

    feeds = [go_on(index, None) for index in range(len(drawings))]
    while any(fed is not None for fed in feeds):
        feeds = [go_on(index, logits) if logits is not None else None
                 for index, logits in enumerate(rows.feed(feeds))]
    return drawn


class Engine:
    """A loaded model that continues music bar-exactly."""

    def __init__(self, model: torch.nn.Module, tokenizer: CharTokenizer, *, block_size: int,
                 name: str, device: str, chord_symbols: bool = False, fill_trained: bool = False,
                 sampling: dict[str, float] | None = None, half: bool = False) -> None:
        self.model = model.eval()
        # Whether a GPT-2's matrices are read in float16 when decoding: for checkpoints that
        # store float16 weights, whose values they are (`engine.models.gpt2_fast`).
        self.half = half
        # Whether the model was trained with fill-in-the-middle windows (`engine.abc.windows`).
        self.fill_trained = fill_trained
        # What a request that sets no temperature, top_p or top_k gets: the checkpoint's
        # "sampling".
        self.sampling_defaults = {**DEFAULT_SAMPLING, **(sampling or {})}
        # Whether the model read chord symbols in training (Segue ABC v2 and later): only then
        # do prompts carry them and may answers write them.
        self.chord_symbols = chord_symbols
        self.tokenizer = tokenizer
        self.block_size = block_size
        self.name = name
        self.device = device
        self.alphabet = tuple(tokenizer.token_text)
        self.finishing = torch.tensor([all(ch in FINISHING for ch in text) and text != ""
                                       for text in self.alphabet])
        self.masks = TokenMasks(self.alphabet, self.finishing)
        self.no_logits = torch.zeros(len(self.alphabet))

    @classmethod
    def load(cls, model: str | None = None, device: str = "auto") -> Engine:
        """Load a checkpoint by name or path (None: the shipped default) onto a device."""
        from engine.models.checkpoint import load_checkpoint, sampling_defaults

        with one_cpu_thread("cpu"):  # the weights are read on the CPU: too little work to share
            loaded = load_checkpoint(model, device=device, lean=True)
        return cls(loaded.model, loaded.tokenizer, block_size=int(loaded.config["block_size"]),
                   name=loaded.name, device=str(loaded.device),
                   chord_symbols=int(loaded.config.get("abc_language", 1)) >= 2,
                   fill_trained=bool(loaded.config.get("training", {}).get("config", {})
                                     .get("fill")),
                   sampling=sampling_defaults(loaded.config, loaded.path),
                   half=loaded.config.get("dtype") == "float16")

    def resolve_sampling(self, sampling: Sampling | None) -> Sampling:
        """`sampling` (None: all defaults) with the model's defaults where it sets none."""
        resolved = (sampling or Sampling()).with_defaults(self.sampling_defaults)
        resolved.check()
        return resolved

    def continue_abc(self, abc: str, bars: int = 8, sampling: Sampling | None = None,
                     variations: int = 1,
                     meters: list[str] | None = None) -> list[Continuation]:
        """Continue an ABC tune (its first tune if the text has several)."""
        from engine.abc.music import parse_abc

        return self.continue_score(parse_abc(abc), bars, sampling, variations, meters)

    def continue_score(self, score: stream.Score | stream.Part, bars: int = 8,
                       sampling: Sampling | None = None, variations: int = 1,
                       meters: list[str] | None = None) -> list[Continuation]:
        """Continue a music21 score by exactly `bars` bars, `variations` times; `meters` gives
        the meter of each new bar (see `bar_meters`), by default the prompt's."""
        if not any(True for _ in score.recurse().notesAndRests):
            raise SegueError("the prompt is empty: select some bars with notes or rests")
        prompt = make_prompt(score, chord_symbols=self.chord_symbols)
        return self.continue_prompt(prompt, bars, sampling, variations, meters)

    def continue_prompt(self, prompt: Prompt, bars: int = 8, sampling: Sampling | None = None,
                        variations: int = 1,
                        meters: list[str] | None = None) -> list[Continuation]:
        """Continue a prompt (engine.abc.prompt.make_prompt, with this engine's `chord_symbols`)
        by exactly `bars` bars; SegueError for a meter the grammar cannot fill."""
        sampling = self.resolve_sampling(sampling)
        check("bars", bars)
        check("variations", variations)
        meters = bar_meters(meters, bars, prompt.meter)
        check_prompt(prompt)
        for meter in set(meters):
            check_fillable(meter, prompt.unit)
        seed = sampling.seed if sampling.seed is not None else \
            int(torch.randint(0, 2**31 - 1, (1,)))
        count = draft_count(sampling.drafts or 1, bars, prompt.voices, variations)
        centres = voice_centres(prompt.body)
        results = []
        with one_cpu_thread(self.device):
            for index in range(variations):
                started = time.perf_counter()
                drafts = [self.continuation(prompt, meters, drawn, started) for drawn in
                          self.generate(prompt, meters, sampling,
                                        [seed + index + k * DRAFT_SEEDS for k in range(count)])]
                ordered = [keeps_order(centres, d.abc) for d in drafts] \
                    if len(centres) > 1 else None  # one voice has no order to keep
                chosen = drafts[agreed([profile_of(d.abc) for d in drafts], ordered)] \
                    if len(drafts) > 1 else drafts[0]
                results.append(replace(chosen, tokens=sum(d.tokens for d in drafts)))
        return results

    def continuation(self, prompt: Prompt, meters: list[str], drawn: tuple[str, str, int],
                     started: float) -> Continuation:
        """The Continuation of `prompt` that `generate` drew (`drawn`), begun at `started`."""
        generated, answer, tokens = drawn
        return Continuation(
            abc=playable(prompt.answer_head(prompt.meter if prompt.time_in_bar
                                            else meters[0]) + answer.strip() + "]\n"),
            with_prompt=playable(prompt.head + prompt.body + generated.rstrip() + "]\n"),
            bars=len(meters), tokens=tokens,
            elapsed_ms=(time.perf_counter() - started) * 1000, meters=meters)

    def generate(self, prompt: Prompt, meters: list[str], sampling: Sampling,
                 seeds: Sequence[int], plan: list[Segment] | None = None
                 ) -> list[tuple[str, str, int]]:
        """For each of `seeds`, the text that follows `prompt`: a bar in each of `meters`, in
        every voice; the same less the meter field the answer's head makes redundant; and the
        tokens sampled. `plan` replaces the plan made from `meters` (infill and accompaniment
        force the voices they keep and sample the others). The prompt is read once, its head
        and as many of its most recent bars as fill three quarters of the context, and the
        seeds' answers are decoded together (`engine.models.lm.rows_for`), in a share for
        each of `draft_threads` threads. Each thread decodes with one torch thread
        (`one_cpu_thread` is the caller's to set)."""
        decoder = decoder_for(self.model, self.half)
        context = self.fit(prompt, prompt.body, self.block_size * 3 // 4)
        first = decoder.prefill(self.encode(context))[0]
        share = -(-len(seeds) // draft_threads(len(seeds)))
        groups = [list(seeds[start:start + share]) for start in range(0, len(seeds), share)]
        # each share goes on from its own copy of the reading, made before any thread decodes;
        # a row slides before it passes the context (`drawing`): it reads at most block_size + 1
        rows = [rows_for(decoder.fork() if index else decoder, len(group), self.device,
                         self.block_size + 1) for index, group in enumerate(groups)]

        def draw(group: list[int], rows: Rows) -> list[tuple[str, str, int]]:
            return decode_together(rows, [self.drawing(prompt, meters, sampling, seed, plan,
                                                       first, len(context)) for seed in group])

        if len(groups) == 1:
            return draw(groups[0], rows[0])
        with ThreadPoolExecutor(len(groups), "segue-draft") as pool:
            return [answer for answers in pool.map(draw, groups, rows) for answer in answers]

    def drawing(self, prompt: Prompt, meters: list[str], sampling: Sampling, seed: int,
                plan: list[Segment] | None, logits: torch.Tensor, used: int) -> Drawing:
        """One answer of `generate`, drawn with `seed` from the prompt's reading (`logits`
        after its `used` characters): yields what the model must read next and is sent the
        logits that follow."""
        generator = torch.Generator().manual_seed(seed)
        body = prompt.body
        generated = answer = ""
        unread: list[int] = []  # written, not yet read by the model: read together when needed
        restart = False  # the context slid: `unread` is read from the start

        def write(token: int, in_answer: bool = True) -> None:
            nonlocal used, body, generated, answer, restart
            text = self.alphabet[token]
            generated += text
            answer += text if in_answer else ""
            body += text
            used += len(text)
            if used >= self.block_size:  # slide: keep the head and the most recent bars
                fitted = self.fit(prompt, body, self.block_size // 2)
                unread[:] = self.tokens_of(fitted)
                used, restart = len(fitted), True
            else:
                unread.append(token)

        def read() -> Generator[Feed, torch.Tensor, torch.Tensor]:
            nonlocal logits, restart
            if unread:
                logits = yield Feed(list(unread), restart)
                unread.clear()
                restart = False
            return logits.cpu()

        tokens = 0
        plan = plan or plan_segments(meters, prompt.voices, prompt.meter,
                                     prompt.time_in_bar > 0)
        key = key_alters(prompt.key)
        grid = grid_for(prompt.unit)
        after_bar_line = "|" if prompt.voices == 1 else "\n"
        # several voices: each keeps near the register it had in the prompt, and leans to its
        # centre
        registers = voice_registers(prompt.body) if prompt.voices > 1 else {}
        centres = voice_centres(prompt.body) if prompt.voices > 1 else {}
        toward_centre = RegisterLean(self.alphabet, sampling.register_lean or 0.0)
        # strong beats lean to the chord in force in each voice that has one
        lean = ChordTones(self.alphabet, sampling.chord_tones or 0.0)
        # an added chord symbol leans to the notes of its bar
        fit = ChordFit(self.alphabet, sampling.chord_fit or 0.0)
        chords = last_chords(prompt.body) if self.chord_symbols else {}
        voice = "1"
        for index, segment in enumerate(plan):
            if segment.text:
                for token in self.tokenizer.encode(segment.text):
                    write(token, segment.in_answer)
                chords |= last_chords(f"V:{voice}\n{segment.text}")
                voice = [voice, *VOICE_LINE.findall(segment.text)][-1]
                # after a voice line a bar opens a line; after an inline field, a space may come
                after_bar_line = "\n" if segment.text.endswith("\n") else "]"
                continue
            state = BarState.start(
                bar_units(segment.meter, prompt.unit), segment.bars, grid=grid,
                time=prompt.time_in_bar if segment.completing else Fraction(0),
                previous=" " if segment.completing and prompt.voices == 1 else after_bar_line,
                key=key, chord_symbols=self.chord_symbols or segment.symbol,
                multi_rest=prompt.voices > 1,
                register=guarded(registers[voice]) if voice in registers else None)
            if segment.symbol:  # inside the quotes: stop after the closing one
                state = state.feed('"') or state
            after_bar_line = "|"
            budget, spent = state.bars_left * 96 + 32, 0
            while not (state.done or (segment.symbol and state.mode == "after_symbol")):
                mask = self.masks.of(state)
                # a runaway segment: finish its bars quickly
                allowed = mask.finishing if spent > budget else mask.allowed
                # The only token allowed needs no logits (the model reads it with the next
                # ones), but is drawn all the same: a seed's music does not change.
                scores = self.no_logits if mask.forced else fit.apply(toward_centre.apply(
                    lean.apply((yield from read()), allowed, state, segment.meter,
                               chords.get(voice)),
                    allowed, state, centres.get(voice)), allowed, state, segment.under)
                token = sample(scores, allowed, sampling, generator)
                following = state.after(self.alphabet[token])
                assert following is not None, "the mask allowed a token the grammar refuses"
                if state.mode == "symbol" and following.mode == "after_symbol":
                    chords[voice] = state.symbol + self.alphabet[token].partition('"')[0]
                state = following
                spent += 1
                if state.done and index == len(plan) - 1:
                    generated += self.alphabet[token]  # the last bar line: nothing follows
                    answer += self.alphabet[token]
                else:
                    write(token)
            tokens += spent
        return generated, answer, tokens

    def tokens_of(self, text: str) -> list[int]:
        """The tokens the model reads for a tune's `text` (after the separator that opens it)."""
        return self.tokenizer.encode(TUNE_SEPARATOR + text)

    def encode(self, text: str) -> torch.Tensor:
        return torch.tensor([self.tokens_of(text)], device=self.device)

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
