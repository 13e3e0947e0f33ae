"""Fill a gap, add a part: rewrites of a score that keep everything else as it was.

    engine = Engine.load()
    [filled] = fill_score(engine, score, gap=(9, 12))          # bars 9-12 written anew
    [duet] = accompany_score(engine, score, add="bass")        # a bass voice under the melody

Both read the score as Segue ABC v2 (`engine.abc.writer`), cut into bars per voice
(`engine.abc.layout.Layout`), and answer with the whole tune: for a fill, the gap's bars
replaced in every voice; for an accompaniment, the given voices unchanged and a new voice
`V:k name=... clef=...` (or, for chords, the melody with a chord symbol at each bar's start).

A fill shows a model trained with fill-in-the-middle windows exactly what it was trained on
(`engine.abc.windows.fill_prompt`: the bars before the gap, `%%segue gap N`, the bars after it,
`%%segue fill`), as many bars on each side as fit its context. A model trained without them
(`fill_trained` False) fills by continuing from the bars before the gap. Either way exactly N
bars are written, bar-exactly, in the meter and key in force at the gap.

An accompaniment forces the given voices into the model's context token for token, four-bar
chunk by chunk as the writer lays them out, and samples only the new voice's bars (or only
the chord symbols). A part longer than the context is written with the context sliding over
it, as a long continuation is; the answer says so in its `note`.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

from engine.abc.bars import bar_units
from engine.abc.layout import (
    BAR_REST,
    BARS_PER_LINE,
    Bar,
    Layout,
    join_bar_lines,
    leading_fields,
    write_line,
)
from engine.abc.text import length_text, split_head
from engine.abc.windows import fill_prompt
from engine.abc.writer import clef_text, write_abc
from engine.errors import SegueError
from engine.models.chord_fit import bar_notes
from engine.models.continuation import (
    Continuation,
    Prompt,
    Sampling,
    Segment,
    one_cpu_thread,
    plan_segments,
)
from engine.settings import LIMITS
from engine.settings import check as check_setting

if TYPE_CHECKING:
    from music21 import stream

    from engine.models.continuation import Engine

ADDS = ("bass", "voice", "chords")
NEW_VOICES = {"bass": ("Bass", "bass"), "voice": ("Voice", "treble")}
MAX_VOICES = 8
MAX_BARS = int(LIMITS["bars"].high)  # filled or accompanied at once: as many as one answer
CHORD_SYMBOL = re.compile(r'"[^"]*"')


@dataclass
class Rewrite(Continuation):
    """A filled or accompanied score: `abc` (and `with_prompt`) hold the whole tune; `note`
    says, when needed, what the model could not read."""

    note: str = ""


def fill_score(engine: Engine, score: stream.Score | stream.Part, gap: tuple[int, int],
               sampling: Sampling | None = None, variations: int = 1) -> list[Rewrite]:
    """The score with bars `gap` = (first, last) (both included, numbered as in the score: a
    pickup is bar 0) written anew by `engine`, `variations` times."""
    sampling = check(engine.resolve_sampling(sampling), variations)
    tune, first_number = read_score(score)
    first, last = gap
    count = tune.bar_count
    if not first_number <= first <= last < first_number + count:
        raise SegueError(f"gap {first}-{last} is outside the score, whose bars are numbered "
                         f"{first_number}-{first_number + count - 1}")
    start, end = first - first_number, last - first_number + 1
    bars = end - start
    if bars > MAX_BARS:
        raise SegueError(f"gap is {bars} bars; at most {MAX_BARS} can be filled at once")
    fields = tune.fields_at(start)
    if any(leading_fields(voice[index].music)
           for voice in tune.voices[:1] for index in range(start + 1, end)):
        raise SegueError(f"gap {first}-{last} holds a change of meter, key or tempo; fill the "
                         "bars on each side of it separately")
    model_tune = for_model(engine, tune)
    prompt, plan, note = fill_plan(engine, model_tune, start, end, fields)
    meters = [fields.get("M", "4/4")] * bars
    results = []
    for seed in seeds(sampling, variations):
        started = time.perf_counter()
        with one_cpu_thread(engine.device):
            [(_, answer, tokens)] = engine.generate(prompt, meters, sampling, [seed], plan)
        new = Layout.read("X:1\nK:C\n" + answer).voices
        if len(new) != len(tune.voices) or any(len(voice) != bars for voice in new):
            raise AssertionError(f"fill wrote {[len(v) for v in new]} bars, not {bars}")
        filled = Layout(list(tune.head), [
            [*old[:start], *(replaced(o, n) for o, n in zip(old[start:end], voice, strict=True)),
             *old[end:]] for old, voice in zip(tune.voices, new, strict=True)])
        results.append(rewrite(filled, bars, tokens, started, note))
    return results


def fill_plan(engine: Engine, tune: Layout, start: int, end: int,
              fields: dict[str, str]) -> tuple[Prompt, list[Segment], str]:
    """The prompt and segment plan that fill bars `start`..`end` of `tune`, and a note when
    the model could not read every bar around the gap."""
    bars, voices = end - start, len(tune.voices)
    meter = fields.get("M", "4/4")
    gap_room = len(tune.write_body(start, end)) * 5 // 4 + 16  # what the gap's bars will take
    limit = max(engine.block_size - gap_room, engine.block_size // 4)
    if engine.fill_trained:
        before, after = fit_around(tune, start, end, limit, both_sides=True)
        text = fill_prompt(tune, before, start, bars, after).removesuffix("\n")
        opening = [Segment(text="\n", in_answer=False)] if voices == 1 else []
    else:  # continue from the bars before the gap
        before, after = fit_around(tune, start, end, limit, both_sides=False)
        text = tune.head_at(before, title=False) + tune.write_body(before, start, after_head=True)
        text = text.removesuffix("\n")
        opening = []
    head, body = split_head(text + "\n")
    prompt = Prompt(head=head, body=body.removesuffix("\n"), meter=meter,
                    unit=fields.get("L", "1/8"), key=fields.get("K", "C"),
                    tempo=fields.get("Q"), voices=voices)
    note = ""
    if before > 0 or (engine.fill_trained and after < tune.bar_count):
        note = (f"the model reads {engine.block_size} characters: it read the {start - before} "
                "bars before the gap" + (f" and the {after - end} after it"
                                         if engine.fill_trained else ""))
    return prompt, opening + plan_segments([meter] * bars, voices, meter), note


def fit_around(tune: Layout, start: int, end: int, limit: int,
               both_sides: bool) -> tuple[int, int]:
    """The widest stretch (before, after) around the gap `start`..`end` whose prompt fits
    `limit` characters, grown a bar at a time on each side in turn (before it only, unless
    `both_sides`)."""
    before, after = start, end
    sides = ((-1, 0), (0, 1)) if both_sides else ((-1, 0),)
    grown = True
    while grown:
        grown = False
        for down, up in sides:
            wider = (before + down, after + up)
            if wider[0] >= 0 and wider[1] <= tune.bar_count \
                    and len(fill_prompt(tune, wider[0], start, end - start, wider[1])) <= limit:
                before, after = wider
                grown = True
    return before, after


def accompany_score(engine: Engine, score: stream.Score | stream.Part, add: str = "bass",
                    sampling: Sampling | None = None, variations: int = 1) -> list[Rewrite]:
    """The score with a new part written by `engine` for all its bars: "bass" (a bass line),
    "voice" (a second melody) or "chords" (chord symbols on the first voice, one or more per
    bar). The score's voices come back unchanged (for chords: all but their chord symbols)."""
    sampling = check(engine.resolve_sampling(sampling), variations)
    if add not in ADDS:
        raise SegueError(f"add must be one of {', '.join(ADDS)}, not {add!r}")
    if add == "chords" and not engine.chord_symbols:
        raise SegueError(f"add=\"chords\" needs a model trained on chord symbols (Segue ABC "
                         f"v2); {engine.name} was trained without them")
    tune, _ = read_score(score)
    if tune.bar_count > MAX_BARS:
        raise SegueError(f"the music is {tune.bar_count} bars; a part can be added to at most "
                         f"{MAX_BARS} bars at a time (choose them with measures)")
    if add != "chords" and len(tune.voices) >= MAX_VOICES:
        raise SegueError(f"the score has {len(tune.voices)} voices; a part can be added to "
                         f"at most {MAX_VOICES - 1}")
    if add != "chords":
        tune = with_voice_lines(tune, score, *NEW_VOICES[add])
    model_tune = for_model(engine, tune)
    head = "\n".join(line for line in model_tune.head if not line.startswith("T:")) + "\n"
    fields = tune.fields_at(0)
    prompt = Prompt(head=head, body="", meter=fields.get("M", "4/4"),
                    unit=fields.get("L", "1/8"), key=fields.get("K", "C"),
                    tempo=fields.get("Q"), voices=len(tune.voices) + (add != "chords"))
    plan = chords_plan(model_tune) if add == "chords" else part_plan(model_tune)
    note = ""
    if len(model_tune.write()) > engine.block_size:
        note = (f"the score is longer than the model's context ({engine.block_size} "
                "characters): each bar was written from the bars just before it")
    results = []
    for seed in seeds(sampling, variations):
        started = time.perf_counter()
        with one_cpu_thread(engine.device):
            [(_, answer, tokens)] = engine.generate(prompt, [], sampling, [seed], plan)
        written = Layout.read("X:1\nK:C\n" + answer).voices
        voices = [list(voice) for voice in tune.voices]
        if add == "chords":
            voices[0] = [Bar(old.opening, new.music, old.closing)
                         for old, new in zip(voices[0], written[0], strict=True)]
        else:
            new = written[-1]
            new[-1] = Bar(new[-1].opening, new[-1].music, voices[0][-1].closing)
            voices.append(new)
        if any(len(voice) != tune.bar_count for voice in voices):
            raise AssertionError(f"accompaniment wrote {[len(v) for v in voices]} bars")
        results.append(rewrite(Layout(list(tune.head), voices), tune.bar_count, tokens,
                               started, note))
    return results


def part_plan(tune: Layout) -> list[Segment]:
    """Force every voice of `tune` chunk by chunk and sample a new last voice's bars, each in
    the meter in force (with the inline fields the first voice opens the bar with)."""
    plan: list[Segment] = []
    new = len(tune.voices) + 1
    for first in range(0, tune.bar_count, BARS_PER_LINE):
        last = min(tune.bar_count, first + BARS_PER_LINE)
        for number, voice in enumerate(tune.voices, 1):
            plan.append(Segment(text=("\n" if plan else "") + f"V:{number}\n"
                                + write_line(voice[first:last])))
        plan.append(Segment(text=f"\nV:{new}\n"))
        for index in range(first, last):
            opening = leading_fields(tune.voices[0][index].music).strip() if index else ""
            if opening:
                plan.append(Segment(text=opening))
            meter = tune.fields_at(index).get("M", "4/4")
            previous = plan[-1]
            if previous.bars and previous.meter == meter:
                plan[-1] = Segment(bars=previous.bars + 1, meter=meter)
            else:
                plan.append(Segment(bars=1, meter=meter))
    return plan


def chords_plan(tune: Layout) -> list[Segment]:
    """Force every voice of `tune`, the first bar by bar with a chord symbol sampled before
    each bar's music (the first voice's own chord symbols left out)."""
    plan: list[Segment] = []
    several = len(tune.voices) > 1
    unit = tune.fields_at(0).get("L", "1/8")
    for first in range(0, tune.bar_count, BARS_PER_LINE):
        last = min(tune.bar_count, first + BARS_PER_LINE)
        chunk = tune.voices[0][first:last]
        text = ("\n" if plan else "") + ("V:1\n" if several else "")
        for offset, bar in enumerate(chunk):
            if offset:
                joined = join_bar_lines(chunk[offset - 1].closing, bar.opening)
                text += " " + (joined + " " if joined else "")
            elif bar.opening:
                text += bar.opening + " "
            music = CHORD_SYMBOL.sub("", bar.music)
            fields = leading_fields(music)
            music = music[len(fields):].strip()
            at = tune.fields_at(first + offset)
            meter = at.get("M", "4/4")
            if BAR_REST.match(music):  # a chord symbol needs an event: the bar's rest written out
                music = "z" + length_text(bar_units(meter, unit))
            plan += [Segment(text=text + fields + '"'),
                     Segment(bars=1, meter=meter, symbol=True,
                             under=bar_notes(music, meter, unit, at.get("K", "C")))]
            text = music
        text += (" " + chunk[-1].closing) if chunk[-1].closing else ""
        for number, voice in enumerate(tune.voices[1:], 2):
            text += f"\nV:{number}\n" + write_line(voice[first:last])
        plan.append(Segment(text=text))
    return plan


def check(sampling: Sampling | None, variations: int) -> Sampling:
    sampling = sampling or Sampling()
    sampling.check()
    check_setting("variations", variations)
    return sampling


def seeds(sampling: Sampling, variations: int) -> list[int]:
    """One seed per variation: the sampling's, counted up, or a random start."""
    seed = sampling.seed if sampling.seed is not None else \
        int(torch.randint(0, 2**31 - 1, (1,)))
    return [seed + index for index in range(variations)]


def read_score(score: stream.Score | stream.Part) -> tuple[Layout, int]:
    """The score as a Layout (chord symbols and title kept) and the number of its first bar."""
    from music21 import stream

    if not any(True for _ in score.recurse().notesAndRests):
        raise SegueError("the score is empty: give some bars with notes or rests")
    parts = list(score.parts) if isinstance(score, stream.Score) else [score]
    measures = list(parts[0].getElementsByClass(stream.Measure)) if parts else []
    first = measures[0].number if measures else 1
    return Layout.read(write_abc(score, bars_per_line=BARS_PER_LINE)), int(first)


def for_model(engine: Engine, tune: Layout) -> Layout:
    """`tune` as the model reads it: without chord symbols unless it was trained on them."""
    if engine.chord_symbols:
        return tune
    return Layout(list(tune.head), [[Bar(b.opening, CHORD_SYMBOL.sub("", b.music), b.closing)
                                     for b in voice] for voice in tune.voices])


def with_voice_lines(tune: Layout, score: stream.Score | stream.Part, name: str,
                     clef: str) -> Layout:
    """`tune` with a voice definition for each voice and one more for a new voice."""
    head = list(tune.head)
    key_line = next(i for i, line in enumerate(head) if line.startswith("K:"))
    lines = []
    if len(tune.voices) == 1:  # the writer defines voices only when there are several
        # a Part, or a Score without parts (getattr then finds no partName): typed Any for mypy
        part: Any = next(iter(score.parts)) if hasattr(score, "parts") and score.parts else score
        given = f' name="{part.partName}"' if getattr(part, "partName", None) else ""
        lines.append(f"V:1{given} clef={clef_text(part)[0]}")
    lines.append(f'V:{len(tune.voices) + 1} name="{name}" clef={clef}')
    return Layout(head[:key_line] + lines + head[key_line:], tune.voices)


def replaced(old: Bar, new: Bar) -> Bar:
    """A gap's bar written anew: its new music under the old bar's lines and inline fields."""
    music = new.music[len(leading_fields(new.music)):]
    return Bar(old.opening, leading_fields(old.music) + music, old.closing)


def rewrite(tune: Layout, bars: int, tokens: int, started: float, note: str) -> Rewrite:
    """The answer: the whole tune, the meter of each of its bars, and how long it took."""
    abc = tune.write()
    meters = [tune.fields_at(index).get("M", "4/4") for index in range(tune.bar_count)]
    return Rewrite(abc=abc, with_prompt=abc, bars=bars, tokens=tokens,
                   elapsed_ms=(time.perf_counter() - started) * 1000, meters=meters, note=note)
