"""The continue request, whatever carries it: its fields and limits, and the three music forms.

A request gives the music as `events` (engine.abc.events), as a `musicxml` document (with an
optional `part` and `measures` to take a selection) or as an `abc` tune, plus sampling
fields, and optionally `bar_meters`: the meter of each new bar, for a host whose next bars
exist already in another meter. The answer gives the continuation in the same form, and
always as ABC. The HTTP server uses all of this; OSC uses `check_setting` for its controls
and `write_music` for its continuations, fills and accompaniments, the MIDI bridge
`check_setting`. POST /v1/fill and /v1/accompany take a continue body, less bars and
bar_meters, plus "gap" or "add" (`parse_fill_request`, `parse_accompany_request`).

Where the work happens: `parse_request` and `check_music` run in the thread that answers the
client and only measure text (engine.abc.limits); `prepare` (cut to the recent bars, read, write
the prompt) and `render` (the answer in the request's form) run in a reader process and
`continue_prompt` in the model's process, each under a deadline (bridge.service.worker). A fill or
accompaniment reads the whole music, and `rewrite` does that in the model's process, which
then writes the answer (engine.models.infill) under the same deadline.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, fields
from typing import Any

from engine.abc.limits import TooLarge, check_abc, check_events, check_musicxml, check_work
from engine.errors import SegueError
from engine.settings import DEFAULTS, LIMITS

FORMS = ("events", "musicxml", "abc")
# A file path in a message from a reader or the engine (never shown to clients).
PATH = re.compile(r"(?<![\w:/\\.])(?:[A-Za-z]:)?[\\/](?:[^\s\\/'\"()<>,;]+[\\/])+"
                  r"[^\s\\/'\"()<>,;:]*")


class BadRequest(SegueError):
    """A field is missing, of the wrong type or out of range."""

    code = "bad_request"


class BadMusic(SegueError):
    """The music cannot be read or continued."""

    code = "bad_music"


def without_paths(message: str) -> str:
    """A message with every file path in it replaced by "<path>"."""
    return PATH.sub("<path>", message)


def shown(value: Any) -> str:
    """A value as an error message quotes it: short, whatever its size."""
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > 10**15:
        return "a number of {} digits".format(len(str(abs(value))) if abs(value).bit_length()
                                              < 10_000 else "thousands of")
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def integer(value: Any, name: str, low: int, high: int) -> int:
    """`value` as an int in [low, high]; BadRequest otherwise (booleans are not numbers)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise BadRequest(f"{name} must be a whole number from {low} to {high}, not "
                         f"{shown(value)}")
    if not low <= value <= high:
        raise BadRequest(f"{name} must be from {low} to {high}, not {shown(value)}")
    return value


def number(value: Any, name: str, low: float, high: float, *, open_low: bool = True) -> float:
    """`value` as a finite float in (low, high] (or [low, high]); BadRequest otherwise.

    Whole numbers of any size are compared as they are, never turned into floats first."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (
            isinstance(value, float) and not math.isfinite(value)):
        raise BadRequest(f"{name} must be a number, not {shown(value)}")
    if isinstance(value, int) and not -2**53 <= value <= 2**53:
        raise BadRequest(f"{name} must be at most {high:g}, not {shown(value)}")
    if not (low < value if open_low else low <= value) or value > high:
        above = "greater than" if open_low else "at least"
        raise BadRequest(f"{name} must be {above} {low:g} and at most {high:g}, not "
                         f"{float(value):g}")
    return float(value)


def check_setting(name: str, value: Any) -> Any:
    """A sampling or length setting, checked: bars, temperature, top_p, top_k, drafts, seed,
    variations or model (a name; which names are known is the worker's to say). A null
    temperature, top_p, top_k or drafts is the model's own default."""
    if name in ("temperature", "top_p", "top_k", "drafts", "seed") and value is None:
        return None
    if name in LIMITS:  # the engine's table (engine.settings)
        limit = LIMITS[name]
        if limit.whole:
            return integer(value, name, int(limit.low), int(limit.high))
        return number(value, name, limit.low, limit.high, open_low=limit.above_low)
    if name == "model":
        if value is not None and (not isinstance(value, str) or not 0 < len(value) <= 200):
            raise BadRequest(f"model must be a model's name or null, not {shown(value)}")
        return value
    raise BadRequest(f"unknown setting {name!r}")


@dataclass
class ContinueRequest:
    """A checked request to continue some music."""

    form: str
    music: Any
    part: str | None = None
    measures: tuple[int, int] | None = None
    bars: int = DEFAULTS["bars"]
    temperature: float | None = DEFAULTS["temperature"]
    top_p: float | None = DEFAULTS["top_p"]
    top_k: int | None = DEFAULTS["top_k"]
    drafts: int | None = DEFAULTS["drafts"]
    seed: int | None = DEFAULTS["seed"]
    variations: int = DEFAULTS["variations"]
    model: str | None = DEFAULTS["model"]
    bar_meters: list[str] | None = None
    gap: tuple[int, int] | None = None  # POST /v1/fill: the bars to write anew
    add: str | None = None  # POST /v1/accompany: "bass", "voice" or "chords"

    def sampling(self) -> Any:
        """The engine's Sampling for this request."""
        from engine.models.continuation import Sampling

        return Sampling(temperature=self.temperature, top_p=self.top_p, top_k=self.top_k,
                        drafts=self.drafts, seed=self.seed)


SETTINGS = tuple(DEFAULTS)
ALLOWED = {f.name for f in fields(ContinueRequest)} - {"form", "music", "gap", "add"}
ADDS = ("bass", "voice", "chords")
# Continue fields a fill or accompany body refuses, and why.
NOT_FOR_REWRITES = {"bars": "the answer has the bars of the music given",
                    "bar_meters": "the answer has the bars of the music given",
                    "drafts": "drafts are drawn for continuations only"}


def parse_request(body: Any) -> ContinueRequest:
    """A ContinueRequest from a decoded JSON body; BadRequest says what is wrong."""
    if not isinstance(body, dict):
        raise BadRequest("the body must be a JSON object")
    given = [form for form in FORMS if form in body]
    if len(given) != 1:
        raise BadRequest("give the music as exactly one of \"events\", \"musicxml\" or \"abc\"")
    form = given[0]
    unknown = sorted(set(body) - ALLOWED - {form})
    if unknown:
        raise BadRequest(f"unknown field {unknown[0]!r}; fields are {', '.join(FORMS)}, "
                         f"part, measures, bar_meters, {', '.join(SETTINGS)}")
    music = body[form]
    if form == "events" and not isinstance(music, dict):
        raise BadRequest("events must be an object with time_signature, key and staves")
    if form != "events" and (not isinstance(music, str) or not music.strip()):
        raise BadRequest(f"{form} must be a non-empty string")
    request = ContinueRequest(form, music, **{name: check_setting(name, body[name])
                                              for name in SETTINGS if name in body})
    if form != "musicxml" and ("part" in body or "measures" in body):
        raise BadRequest("part and measures select from a musicxml document only")
    request.part = check_part(body.get("part"))
    request.measures = check_measures(body.get("measures"))
    request.bar_meters = check_bar_meters(body.get("bar_meters"), request.bars)
    return request


def parse_fill_request(body: Any) -> ContinueRequest:
    """/v1/fill: a continue body, less bars and bar_meters, plus "gap": [first, last] (or
    "first-last"), the bars to write anew, numbered as in the score (a pickup is bar 0)."""
    rest, gap = split_field(body, "gap", "the bars to write anew, such as [9, 12]")
    request = parse_request(rest)
    try:
        measures = check_measures(gap)
    except BadRequest:
        measures = None
    if measures is None:
        raise BadRequest(f"gap must be [first, last] or \"first-last\", not {shown(gap)}")
    request.gap = measures
    return request


def parse_accompany_request(body: Any) -> ContinueRequest:
    """/v1/accompany: a continue body, less bars and bar_meters, plus "add": "bass", "voice"
    or "chords", the part to write for every bar of the music given."""
    rest, add = split_field(body, "add", "\"bass\", \"voice\" or \"chords\"")
    request = parse_request(rest)
    if add not in ADDS:
        raise BadRequest(f"add must be \"bass\", \"voice\" or \"chords\", not {shown(add)}")
    request.add = add
    return request


def split_field(body: Any, name: str, what: str) -> tuple[dict[str, Any], Any]:
    """(the body less `name`, the value of `name`): a fill or accompany body's own field,
    which must be there; "bars", "bar_meters" and "drafts" do not apply and are refused."""
    if not isinstance(body, dict):
        raise BadRequest("the body must be a JSON object")
    if name not in body:
        raise BadRequest(f"give \"{name}\": {what}")
    for unused, why in NOT_FOR_REWRITES.items():
        if unused in body:
            raise BadRequest(f"{unused} does not apply here: {why}")
    rest = dict(body)
    return rest, rest.pop(name)


def check_bar_meters(value: Any, bars: int) -> list[str] | None:
    """The meters of the new bars, in order (at most `bars` of them), or null."""
    from engine.abc.events import check_meter

    if value is None:
        return None
    if not isinstance(value, list) or not value:
        raise BadRequest(f"bar_meters must be a list of meters such as [\"3/4\", \"3/4\"], "
                         f"not {str(value)[:100]!r}")
    if len(value) > bars:
        raise BadRequest(f"bar_meters names {len(value)} bars, but bars is {bars}")
    try:
        return [check_meter(meter, f"bar_meters[{index}]") for index, meter in enumerate(value)]
    except SegueError as error:
        raise BadRequest(str(error)) from None


def check_part(value: Any) -> str | None:
    """A part number (from 1) or name, or null."""
    if value is None or (isinstance(value, str) and 0 < len(value) <= 200):
        return value
    if isinstance(value, int) and not isinstance(value, bool) and value >= 1:
        return str(value)
    raise BadRequest(f"part must be a part number from 1 or a part's name, not "
                     f"{shown(value)}")


def check_measures(value: Any) -> tuple[int, int] | None:
    """[first, last] or "first-last" (bar numbers, both included) or null."""
    from engine.abc.music import parse_measures

    if value is None:
        return None
    if isinstance(value, str):
        try:
            return parse_measures(value)
        except SegueError:
            raise BadRequest(f"measures must be a bar number or a range such as \"1-8\", "
                             f"not {shown(value)}") from None
    if (isinstance(value, list) and len(value) == 2
            and all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in value)
            and value[0] <= value[1]):
        return value[0], value[1]
    raise BadRequest(f"measures must be [first, last] or \"first-last\", not "
                     f"{shown(value)}")


def check_music(request: ContinueRequest) -> None:
    """The limits (engine.abc.limits) on the request's music, measured on its text before any
    reader runs: TooLarge (413) for sizes, BadMusic (422) for values no reader should meet,
    BadRequest for an events document."""
    try:
        check_work(request.bars, 1, request.variations)
        if request.form == "abc":
            check_abc(request.music)
        elif request.form == "musicxml":
            check_musicxml(request.music, part_chosen=request.part is not None)
        else:
            check_events(request.music)
    except TooLarge:
        raise
    except SegueError as error:
        raise (BadRequest(f"events: {error}") if request.form == "events"
               else BadMusic(str(error))) from None


@dataclass
class Prepared:
    """A request's music, read: the model's prompt, and what its answer's form needs."""

    prompt: Any  # engine.abc.prompt.Prompt
    layout: list[tuple[int, int]] | None = None  # events: (staff, voice) of each part
    part_names: list[str | None] | None = None  # musicxml: the names of the parts


def prepare(_: Any, request: ContinueRequest, chord_symbols: bool) -> Prepared:
    """In a reader process: cut the music to its recent bars (engine.abc.recent), read it, and
    write the model's prompt (with chord symbols if the model reads them). Whatever a reader
    raises is BadMusic in its own words (or BadRequest for a malformed events document,
    TooLarge for a size over a limit)."""
    from engine.abc.limits import check_prompt
    from engine.abc.prompt import make_prompt

    with reading():
        score, prepared = read_music(request, whole=False)
        prepared.prompt = make_prompt(score, chord_symbols=chord_symbols)
        check_prompt(prepared.prompt)
    return prepared


def read_music(request: ContinueRequest, whole: bool) -> tuple[Any, Prepared]:
    """The request's music as a music21 Score (its recent bars only, unless `whole`), and
    what its answer's form needs. Call it inside `reading()`."""
    from engine.abc.events import events_to_score, part_layout, recent_events
    from engine.abc.music import parse_abc, parse_musicxml, select
    from engine.abc.recent import recent_abc, recent_musicxml

    prepared = Prepared(None)
    if request.form == "events":
        try:
            score = events_to_score(request.music if whole else recent_events(request.music))
        except TooLarge:
            raise
        except (SegueError, ValueError, TypeError) as error:  # its shape is the API's
            raise BadRequest(f"events: {error}") from None
        prepared.layout = part_layout(score)
    elif request.form == "musicxml":
        text = request.music if whole else recent_musicxml(
            request.music, part=request.part, measures=request.measures)
        score = parse_musicxml(text)
        if text is request.music:  # not cut (whole, or a timewise document): select here
            score = select(score, part=request.part, measures=request.measures)
        prepared.part_names = [part.partName for part in score.parts]
    else:
        score = parse_abc(request.music if whole else recent_abc(request.music))
    if not any(True for _ in score.recurse().notesAndRests):
        raise BadMusic("the prompt is empty: select some bars with notes or rests")
    return score, prepared


@contextmanager
def reading() -> Iterator[None]:
    """Whatever a reader raises, as a client should hear it: BadMusic in the reader's words,
    BadRequest and TooLarge as they are, TooLarge for running out of memory."""
    try:
        yield
    except (BadRequest, TooLarge):
        raise
    except SegueError as error:
        raise BadMusic(str(error)) from None
    except MemoryError:
        raise TooLarge("the music needs more memory than one request may use") from None
    except Exception as error:  # music21 raises many kinds for music it cannot read
        raise BadMusic(f"the music cannot be read ({type(error).__name__}: "
                       f"{str(error)[:200]})") from None


def continue_prompt(engine: Any, prompt: Any, bars: int, sampling: Any, variations: int,
                    meters: list[str] | None) -> list[tuple[str, list[str]]]:
    """In the model's process: (ABC, meter of each bar) of `variations` continuations of
    `prompt` (engine.models.continuation), plain data that a reader process can unpickle."""
    takes = engine.continue_prompt(prompt, bars, sampling, variations, meters)
    return [(take.abc, take.meters) for take in takes]


def render(_: Any, request: ContinueRequest, takes: list[tuple[str, list[str]]],
           prepared: Prepared) -> list[dict[str, Any]]:
    """In a reader process: each continuation, (ABC, meter of each bar), in the request's
    form ("events" or "musicxml"), and as ABC; events name the meter of each bar when the
    request named them."""
    from engine.abc.events import score_to_events
    from engine.abc.meters import answer_score
    from engine.abc.music import quiet

    rendered = []
    for abc, meters in takes:
        score = answer_score(abc, meters)
        if request.form == "events":
            events = score_to_events(score, prepared.layout)
            if request.bar_meters:
                events["bar_meters"] = meters
            rendered.append({"events": events, "abc": abc})
            continue
        from music21.musicxml.m21ToXml import GeneralObjectExporter

        names = prepared.part_names or []
        if len(names) == len(score.parts):
            for part, name in zip(score.parts, names, strict=True):
                part.partName = name
        with quiet():
            document = GeneralObjectExporter(score).parse().decode("utf-8")
        rendered.append({"musicxml": document, "abc": abc})
    return rendered


def notes(_: Any, abc: str) -> list[float]:
    """In a reader process: pitch, onset, duration (beats) of every sounding note of every
    part of a continuation, flattened, by onset (grace notes, which take no time, left out)."""
    from engine.abc.music import note_events, parse_abc

    triples = sorted(t for part in note_events(parse_abc(abc, rests_only=True)) for t in part
                     if t[1] > 0)
    return [float(x) for onset, length, pitch in triples for x in (pitch, onset, length)]


def rewrite(engine: Any, request: ContinueRequest
            ) -> tuple[list[tuple[str, list[str]]], Prepared, str, int]:
    """In the model's process: read the request's whole music and fill its gap or add its part
    (engine.models.infill): (each answer as (ABC of the whole tune, meter of each bar), what the
    answer's form needs (events: the new part as a staff after the given ones), the note
    saying what the model could not read, the bars written)."""
    from engine.models.infill import accompany_score, fill_score

    with reading():
        score, prepared = read_music(request, whole=True)
    if request.gap is not None:
        results = fill_score(engine, score, request.gap, request.sampling(), request.variations)
    else:
        results = accompany_score(engine, score, request.add or "", request.sampling(),
                                  request.variations)
        if prepared.layout and request.add != "chords":
            prepared.layout = [*prepared.layout,
                               (max(staff for staff, _ in prepared.layout) + 1, 0)]
    return ([(result.abc, result.meters) for result in results], prepared, results[0].note,
            results[0].bars)


@dataclass
class Written:
    """What the model wrote for a request, as plain data."""

    takes: list[tuple[str, list[str]]]  # each answer: (ABC, meter of each bar)
    prepared: Prepared  # the music as read: what the answer's form needs
    engine_ms: float  # the model's milliseconds
    bars: int  # the bars written
    note: str = ""  # a fill or accompaniment that read less than all: what it read


def write_music(worker: Any, request: ContinueRequest, model: str | None) -> Written:
    """Read and continue the music (or, for a fill or accompany request, rewrite it), the
    reading in a reader process, the model in its own, each under its deadline."""
    if request.gap is not None or request.add is not None:
        (takes, prepared, note, bars), engine_ms = worker.timed_call(rewrite, request,
                                                                     model=model)
        return Written(takes, prepared, engine_ms, bars, note)
    prepared = worker.read(prepare, request, worker.chord_symbols(model))
    check_work(request.bars, prepared.prompt.voices, request.variations)
    takes, engine_ms = worker.timed_call(continue_prompt, prepared.prompt, request.bars,
                                         request.sampling(), request.variations,
                                         request.bar_meters, model=model)
    return Written(takes, prepared, engine_ms, request.bars)


def answer_music(worker: Any, request: ContinueRequest, written: Written) -> dict[str, Any]:
    """The answer's music: the first answer in the request's form and as ABC (with the note of
    a fill or accompaniment that read less than all), and every answer under "variations"
    when more than one was asked for."""
    rendered = ([{"abc": abc} for abc, _ in written.takes] if request.form == "abc"
                else worker.read(render, request, written.takes, written.prepared))
    answer = dict(rendered[0])
    if written.note:
        answer["note"] = written.note
    if request.variations > 1:
        answer["variations"] = rendered
    return answer
