"""The continue request, whatever carries it: its fields and limits, and the three music forms.

A request gives the music as `events` (bridge.events), as a `musicxml` document (with an
optional `part` and `measures` to take a selection) or as an `abc` tune, plus sampling
fields, and optionally `bar_meters`: the meter of each new bar, for a host whose next bars
exist already in another meter. The answer gives the continuation in the same form, and
always as ABC. The HTTP
server uses all of this; OSC and the MIDI bridge use `check_setting` for their controls.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from typing import Any

from engine.errors import SegueError

FORMS = ("events", "musicxml", "abc")
# The server's limits, tighter than the engine's: one request may not hold the model long.
MAX_VARIATIONS = 8
MAX_BARS = 64
MAX_SEED = 2**63 - 1
MAX_SPAN = 256  # whole notes of events a request may send (4/4 bars)
# The defaults every transport starts from (temperature, top_p, top_k None: the model's own).
DEFAULTS = {"bars": 8, "temperature": None, "top_p": None, "top_k": None, "seed": None,
            "variations": 1, "model": None}


class BadRequest(SegueError):
    """A field is missing, of the wrong type or out of range."""

    code = "bad_request"


class BadMusic(SegueError):
    """The music cannot be read or continued."""

    code = "bad_music"


def integer(value: Any, name: str, low: int, high: int) -> int:
    """`value` as an int in [low, high]; BadRequest otherwise (booleans are not numbers)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise BadRequest(f"{name} must be a whole number from {low} to {high}, not {value!r}")
    if not low <= value <= high:
        raise BadRequest(f"{name} must be from {low} to {high}, not {value}")
    return value


def number(value: Any, name: str, low: float, high: float, *, open_low: bool = True) -> float:
    """`value` as a finite float in (low, high] (or [low, high]); BadRequest otherwise."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise BadRequest(f"{name} must be a number, not {value!r}")
    if not (low < value if open_low else low <= value) or value > high:
        above = "greater than" if open_low else "at least"
        raise BadRequest(f"{name} must be {above} {low:g} and at most {high:g}, not {value:g}")
    return float(value)


def check_setting(name: str, value: Any) -> Any:
    """A sampling or length setting, checked: bars, temperature, top_p, top_k, seed,
    variations or model (a name; which names are known is the worker's to say). A null
    temperature, top_p or top_k is the model's own default."""
    if name in ("temperature", "top_p", "top_k") and value is None:
        return None
    if name == "bars":
        return integer(value, name, 1, MAX_BARS)
    if name == "temperature":  # 0: always the likeliest symbol (greedy)
        return number(value, name, 0.0, 5.0, open_low=False)
    if name == "top_p":
        return number(value, name, 0.0, 1.0)
    if name == "top_k":
        return integer(value, name, 0, 100_000)
    if name == "seed":
        return None if value is None else integer(value, name, 0, MAX_SEED)
    if name == "variations":
        return integer(value, name, 1, MAX_VARIATIONS)
    if name == "model":
        if value is not None and (not isinstance(value, str) or not 0 < len(value) <= 200):
            raise BadRequest(f"model must be a model's name or null, not {value!r}")
        return value
    raise BadRequest(f"unknown setting {name!r}")


@dataclass
class ContinueRequest:
    """A checked request to continue some music."""

    form: str
    music: Any
    part: str | int | None = None
    measures: tuple[int, int] | None = None
    bars: int = DEFAULTS["bars"]
    temperature: float | None = DEFAULTS["temperature"]
    top_p: float | None = DEFAULTS["top_p"]
    top_k: int | None = DEFAULTS["top_k"]
    seed: int | None = DEFAULTS["seed"]
    variations: int = DEFAULTS["variations"]
    model: str | None = DEFAULTS["model"]
    bar_meters: list[str] | None = None
    prompt: Any = field(default=None, repr=False)  # the music21 score (events, musicxml)
    layout: list[tuple[int, int]] | None = field(default=None, repr=False)
    gap: tuple[int, int] | None = None  # POST /v1/fill: the bars to write anew
    add: str | None = None  # POST /v1/accompany: "bass", "voice" or "chords"

    def sampling(self) -> Any:
        """The engine's Sampling for this request."""
        from engine.continuation import Sampling

        return Sampling(temperature=self.temperature, top_p=self.top_p, top_k=self.top_k,
                        seed=self.seed)


SETTINGS = tuple(DEFAULTS)
ALLOWED = {f.name for f in fields(ContinueRequest)} - {"form", "music", "prompt", "layout",
                                                       "gap", "add"}
ADDS = ("bass", "voice", "chords")


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
        raise BadRequest(f"gap must be [first, last] or \"first-last\", not {gap!r}")
    request.gap = measures
    return request


def parse_accompany_request(body: Any) -> ContinueRequest:
    """/v1/accompany: a continue body, less bars and bar_meters, plus "add": "bass", "voice"
    or "chords", the part to write for every bar of the music given."""
    rest, add = split_field(body, "add", "\"bass\", \"voice\" or \"chords\"")
    request = parse_request(rest)
    if add not in ADDS:
        raise BadRequest(f"add must be \"bass\", \"voice\" or \"chords\", not {add!r}")
    request.add = add
    return request


def split_field(body: Any, name: str, what: str) -> tuple[dict[str, Any], Any]:
    """(the body less `name`, the value of `name`): a fill or accompany body's own field,
    which must be there; "bars" and "bar_meters" do not apply and are refused."""
    if not isinstance(body, dict):
        raise BadRequest("the body must be a JSON object")
    if name not in body:
        raise BadRequest(f"give \"{name}\": {what}")
    for unused in ("bars", "bar_meters"):
        if unused in body:
            raise BadRequest(f"{unused} does not apply here: the answer has the bars of the "
                             "music given")
    rest = dict(body)
    return rest, rest.pop(name)


def check_bar_meters(value: Any, bars: int) -> list[str] | None:
    """The meters of the new bars, in order (at most `bars` of them), or null."""
    from bridge.events import check_meter

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


def check_part(value: Any) -> str | int | None:
    """A part number (from 1) or name, or null."""
    if value is None or (isinstance(value, str) and 0 < len(value) <= 200):
        return value
    if isinstance(value, int) and not isinstance(value, bool) and value >= 1:
        return str(value)
    raise BadRequest(f"part must be a part number from 1 or a part's name, not {value!r}")


def check_measures(value: Any) -> tuple[int, int] | None:
    """[first, last] or "first-last" (bar numbers, both included) or null."""
    from engine.music import parse_measures

    if value is None:
        return None
    if isinstance(value, str):
        try:
            return parse_measures(value)
        except SegueError:
            raise BadRequest(f"measures must be a bar number or a range such as \"1-8\", "
                             f"not {value!r}") from None
    if (isinstance(value, list) and len(value) == 2
            and all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in value)
            and value[0] <= value[1]):
        return value[0], value[1]
    raise BadRequest(f"measures must be [first, last] or \"first-last\", not {value!r}")


def read_prompt(request: ContinueRequest) -> None:
    """Turn the request's music into the engine's prompt (a score; ABC stays text).

    Runs in the requesting thread, so the worker spends its time on the model only.
    BadRequest for a malformed events document, BadMusic for music that cannot be read.
    """
    from bridge.events import events_to_score, part_layout
    from engine.music import select

    if request.form == "events":  # its shape is the API's: errors in it are bad requests
        try:
            check_span(request.music)
            request.prompt = events_to_score(request.music)
        except SegueError as error:
            raise BadRequest(f"events: {error}") from None
        request.layout = part_layout(request.prompt)
        return
    try:
        if request.form == "musicxml":
            score = parse_musicxml(request.music)
            request.prompt = select(score, part=request.part, measures=request.measures)
        else:
            check_abc(request.music)
    except SegueError as error:
        message = str(error).replace("--measures", "measures").replace("--part", "part")
        raise BadMusic(message) from None


def check_span(events: dict[str, Any]) -> None:
    """Refuse events reaching past MAX_SPAN whole notes (music21 would take minutes)."""
    from bridge.events import parse_fraction

    staves = events.get("staves")
    for staff in staves if isinstance(staves, list) else []:
        for event in staff if isinstance(staff, list) else []:
            try:
                end = parse_fraction(event["onset"], "") + parse_fraction(event["duration"], "")
            except (SegueError, KeyError, TypeError):
                continue  # events_to_score says what is wrong, and where
            if end > MAX_SPAN:
                raise SegueError(f"the events reach {float(end):g} whole notes from the "
                                 f"start; send at most {MAX_SPAN} (the model reads far less)")


def check_abc(text: str) -> None:
    """A cheap check that `text` is a tune; the engine reads the music itself."""
    from engine.abc_text import read_header, split_tunes

    tunes = split_tunes(text)
    if not tunes:
        raise BadMusic("no ABC tune found (a tune starts with an X: line and has a K: line)")
    if not read_header(tunes[0]).key:
        raise BadMusic("the ABC tune has no K: (key) line")


def parse_musicxml(text: str) -> Any:
    """A MusicXML document held in a string (never a path) as a music21 Score."""
    from music21 import converter, stream

    from engine.music import has_notes, quiet

    if "<!ENTITY" in text:
        raise BadMusic("MusicXML with entity declarations is not accepted")
    try:
        with quiet():
            score = converter.parseData(text, format="musicxml")
    except Exception as error:  # music21 raises many kinds for broken XML
        raise BadMusic(f"not a readable MusicXML document ({type(error).__name__}: "
                       f"{str(error)[:200]})") from None
    if isinstance(score, stream.Opus):
        score = score.scores[0]
    if not isinstance(score, stream.Score) or not has_notes(score):
        raise BadMusic("the MusicXML document has no notes")
    return score


def run_request(request: ContinueRequest, engine: Any) -> list[Any]:
    """The worker's part: continue the prompt with this engine."""
    if request.gap is not None or request.add is not None:
        return run_rewrite(request, engine)
    options = {"bars": request.bars, "sampling": request.sampling(),
               "variations": request.variations, "meters": request.bar_meters}
    if request.prompt is None:
        return engine.continue_abc(request.music, **options)
    return engine.continue_score(request.prompt, **options)


def run_rewrite(request: ContinueRequest, engine: Any) -> list[Any]:
    """Fill the request's gap or add its part; an events answer gets the new part as a new
    staff after the given ones."""
    from engine.infill import accompany_score, fill_score
    from engine.music import parse_abc

    score = request.prompt if request.prompt is not None else parse_abc(request.music)
    if request.gap is not None:
        return fill_score(engine, score, request.gap, request.sampling(), request.variations)
    results = accompany_score(engine, score, request.add, request.sampling(),
                              request.variations)
    if request.layout and request.add != "chords":
        request.layout = [*request.layout, (max(staff for staff, _ in request.layout) + 1, 0)]
    return results


def render(request: ContinueRequest, results: list[Any]) -> dict[str, Any]:
    """The answer's music: the first continuation in the request's form and as ABC, and
    every continuation under "variations" when more than one was asked for."""
    takes = [render_one(request, result) for result in results]
    answer = dict(takes[0])
    if getattr(results[0], "note", ""):  # a fill or accompaniment that read less than all
        answer["note"] = results[0].note
    if request.variations > 1:
        answer["variations"] = takes
    return answer


def render_one(request: ContinueRequest, result: Any) -> dict[str, Any]:
    """One continuation in the request's form, and as ABC."""
    from bridge.events import score_to_events
    from engine.music import quiet

    if request.form == "abc":
        return {"abc": result.abc}
    score = result.score()
    if request.form == "events":
        events = score_to_events(score, request.layout)
        if request.bar_meters:
            events["bar_meters"] = result.meters
        return {"events": events, "abc": result.abc}
    from music21.musicxml.m21ToXml import GeneralObjectExporter

    names = [part.partName for part in request.prompt.parts]
    if len(names) == len(score.parts):
        for part, name in zip(score.parts, names, strict=True):
            part.partName = name
    with quiet():
        document = GeneralObjectExporter(score).parse().decode("utf-8")
    return {"musicxml": document, "abc": result.abc}
