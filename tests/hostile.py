"""Hostile requests for the server: the inputs issue 19 found, and a generator of malformed
ABC, events and MusicXML, for the suite's soak (tests/test_soak.py) and the longer one
(bench/soak.py).

Every generated request is a JSON body for POST /v1/continue, with the answers it may get:
a malformed one a 4xx, or a 503 (busy, or a deadline); one that is valid after all a 200.
None may get a 500, or no answer.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from typing import Any

HEAD = "X:1\nM:4/4\nL:1/8\nK:G\n"
VALID_ABC = [
    HEAD + "GABc d2B2|c2A2 B2G2|\n",
    "X:1\nM:6/8\nL:1/8\nK:D\nA2F D2F|A2d f2d|\n",
    "X:1\nM:3/4\nL:1/8\nK:Eb\nE2G2B2|e4 d2|c2B2G2|B6|\n",
]
VALID_EVENTS = {"time_signature": "3/4", "key": -3, "staves": [
    [{"onset": "0/1", "duration": "1/4", "pitches": [63]},
     {"onset": "1/4", "duration": "1/4", "pitches": [67, 70], "tie": True},
     {"onset": "1/2", "duration": "1/4", "pitches": [67, 70]},
     {"onset": "3/4", "duration": "3/4", "pitches": [68]}],
    [{"onset": "0/1", "duration": "3/4", "pitches": [39, 46]},
     {"onset": "3/4", "duration": "3/4", "pitches": [44]}]]}
# Pieces a malformed tune is made of: what issue 19 sent, and ABC's sharper corners.
ABC_PIECES = ["C1000000", "M:1000000/1", "[M:5/7]", "[M:1/1000]", "L:-1/8", "[L:1/3]",
              "Q:1/4=0", "[Q:0]", "C4000", "z/1023", "C////////", "^^^^C", "(3", "(9:2:9",
              "{", "}", "[", "]", "[CEGBdfac'e'g'b']", '"', '"C1000"', "!", "!trill!", "+",
              "|:", ":|", "|1", "[2", "::", "|]", "||", "V:2\n", "V:3 clef=bass\n", "K:\n",
              "K:Hp\n", "%%MIDI program 1\n", "w: la la\n", "T:\n", "\\\n", "&", "y", "Z64",
              "X9", "-", ">>>", "<", "~", "'", ",", "=", "_", "\x00", "\x1b[31m", "é", "\u2028",
              "C|/../../../etc/passwd\n", "/etc/hostname", "0" * 12]
ODD_FRACTIONS = ["1/1023", "1/0", "-1/4", "0", "10000/1", "1/1024", "3/7", "1/96", "x", "",
                 "1/3", "5/4", "1e9", "٣/٤", None, 1.5, -3, 2**70, [], {}]
MAX_BODY_SENT = 4 * 2**20  # a body over the server's 2 MiB, but not so large a client stalls
ODD_VALUES = [None, True, -1, 0, 2**70, 1e308, "x", "", "\x00", [], {}, [60] * 200,
              list(range(-5, 140)), "4/4", "5/7", "1000000/1", "0/4", "3/0"]


@dataclass
class Request:
    """A body for POST /v1/continue, what kind it is, and whether it is surely valid."""

    body: Any
    kind: str
    valid: bool = False
    bars: int = 1


def valid_request(rng: random.Random, musicxml: str) -> Request:
    """A request that must be continued: 1 or 2 bars of ABC, events or MusicXML."""
    bars = rng.choice([1, 2])
    form = rng.choice(["abc", "abc", "events", "musicxml"])
    music: Any = {"abc": rng.choice(VALID_ABC), "events": VALID_EVENTS,
                  "musicxml": musicxml}[form]
    body = {form: music, "bars": bars, "seed": rng.randrange(2**31)}
    if form == "musicxml":
        body["measures"] = [1, 2]
    return Request(body, f"valid {form}", valid=True, bars=bars)


def malformed_abc(rng: random.Random) -> str:
    """A tune with a few random pieces put in, taken out, or repeated."""
    text = rng.choice(VALID_ABC)
    for _ in range(rng.randint(1, 6)):
        at = rng.randrange(len(text) + 1)
        action = rng.random()
        if action < 0.6:
            text = text[:at] + rng.choice(ABC_PIECES) + text[at:]
        elif action < 0.8:
            text = text[:at] + text[at + rng.randint(1, 8):]
        else:
            chunk = text[at:at + rng.randint(1, 12)]
            text = text[:at] + chunk * rng.choice([2, 10, 300]) + text[at:]
    return text


def malformed_events(rng: random.Random) -> dict[str, Any]:
    """The events document with odd onsets, durations, pitches, voices, meters or staves."""
    staves = [[dict(event) for event in staff] for staff in VALID_EVENTS["staves"]]
    document: dict[str, Any] = {"time_signature": "3/4", "key": -3, "staves": staves}
    for _ in range(rng.randint(1, 4)):
        action = rng.random()
        staff = rng.choice(staves)
        events = [event for event in staff if isinstance(event, dict)]
        event = rng.choice(events) if events else {}
        if action < 0.3:
            event[rng.choice(["onset", "duration"])] = rng.choice(ODD_FRACTIONS)
        elif action < 0.45:
            event[rng.choice(["pitches", "voice", "tie"])] = rng.choice(ODD_VALUES)
        elif action < 0.6:
            document[rng.choice(["time_signature", "key", "mode"])] = rng.choice(ODD_VALUES)
        elif action < 0.75:
            size = rng.choice([20, 2_000, 6_000])
            step = rng.choice(["1/16", "1/1023", "1/12", "1/20"])
            staff.extend({"onset": f"{i}/{step.split('/')[1]}", "duration": step,
                          "pitches": [60 + i % 12] * rng.choice([1, 3, 20])}
                         for i in range(size))
        elif action < 0.9:
            staves.extend([[{"onset": "0", "duration": "1/4", "pitches": [60],
                             "voice": rng.randrange(4)}]] * rng.choice([3, 20, 64]))
        else:
            staff.append(rng.choice(ODD_VALUES))
    while len(json.dumps(document)) > MAX_BODY_SENT:  # over 2 MiB (413), not tens of MB
        document["staves"] = document["staves"][: len(document["staves"]) // 2]
    return document


def malformed_musicxml(rng: random.Random, musicxml: str) -> str:
    """The document cut, repeated, or with odd divisions, meters, entities or parts."""
    text = musicxml
    action = rng.random()
    if action < 0.25:
        at = rng.randrange(len(text))
        text = text[:at] + text[at + rng.randint(1, 400):]
    elif action < 0.4:
        text = text.replace("<divisions>", "<divisions>" + rng.choice(["0", "99999999", "-",
                                                                        "1e9", "٣"]), 1)
    elif action < 0.55:
        text = text.replace("<beat-type>4", "<beat-type>" + rng.choice(["7", "1000", "3",
                                                                         "0"]), 1)
    elif action < 0.65:
        text = '<!DOCTYPE x [<!ENTITY a "' + "a" * 50 + '">]>' + text
    elif action < 0.8:
        start, end = text.find("<measure"), text.rfind("</measure>")
        if 0 <= start < end:
            text = text[:end] + text[start:end] * rng.choice([5, 60]) + text[end:]
    elif action < 0.9:
        start, end = text.find("<part "), text.rfind("</part>")
        listed = text.find("</part-list>")
        if 0 <= start < end and listed > 0:
            text = text[:end + 7] + text[start:end + 7] * 20 + text[end + 7:]
    else:
        text = rng.choice(["", "<x/>", "/etc/passwd", text[:100], text.upper()])
    return text


def malformed_request(rng: random.Random, musicxml: str) -> Request:
    """A request with malformed music, or fields of odd kinds."""
    action = rng.random()
    if action < 0.4:
        return Request({"abc": malformed_abc(rng), "bars": 1, "seed": 1}, "malformed abc")
    if action < 0.65:
        return Request({"events": malformed_events(rng), "bars": 1, "seed": 1},
                       "malformed events")
    if action < 0.85:
        body: dict[str, Any] = {"musicxml": malformed_musicxml(rng, musicxml), "bars": 1}
        if rng.random() < 0.5:
            body["part"] = rng.choice([1, 2, 30, "Soprano", "nobody"])
        return Request(body, "malformed musicxml")
    body = {"abc": rng.choice(VALID_ABC)}
    for _ in range(rng.randint(1, 3)):
        body[rng.choice(["bars", "temperature", "top_p", "top_k", "seed", "variations",
                         "model", "part", "measures", "x"])] = rng.choice(ODD_VALUES)
    return Request(body, "odd fields")


def musicxml_document() -> str:
    """A small MusicXML document (2 bars, 2 parts) written by music21."""
    from music21.musicxml.m21ToXml import GeneralObjectExporter

    from engine.abc.music import parse_abc

    tune = ("X:1\nM:4/4\nL:1/8\nK:G\nV:1\nGABc d2B2|c2A2 B2G2|\nV:2\nG,4 D,4|E,4 G,4|\n")
    return GeneralObjectExporter(parse_abc(tune)).parse().decode("utf-8")


def batch(rng: random.Random, musicxml: str, size: int, valid_every: int) -> list[Request]:
    """`size` requests, every `valid_every`-th of them valid, the rest malformed."""
    return [valid_request(rng, musicxml) if index % valid_every == valid_every - 1
            else malformed_request(rng, musicxml) for index in range(size)]


def issue_inputs() -> list[Request]:
    """The inputs issue 19 reproduced (the events and parts at the sizes it sent)."""
    tune = "X:1\nM:4/4\nL:1/8\nK:C\n"
    events = {"time_signature": "4/4", "key": 0, "staves": [[
        {"onset": f"{i}/1023", "duration": "1/1023", "pitches": [60]} for i in range(5_000)]]}
    chords = {"time_signature": "4/4", "key": 0, "staves": [[
        {"onset": f"{i}/4", "duration": "1/4", "pitches": list(range(0, 128)), "tie": True}
        for i in range(200)]]}
    parts = {"time_signature": "4/4", "key": 0, "staves": [[
        {"onset": "0", "duration": "1/4", "pitches": [60], "voice": voice}
        for voice in range(4)] for _ in range(16)]}
    abcs = [tune + "C1000000|", "X:1\nM:1000000/1\nL:1/8\nK:C\nCDEF|",
            tune + "CDEF GABc|" * 10_000, tune + "C" * 200_000, tune + "CDEF|C4000|",
            "X:1\nM:1/1000\nK:C\nC|", "X:1\nM:1/3\nK:C\nC|", "X:1\nM:5/7\nK:C\nC|",
            "X:1\nL:-1/8\nK:C\nC|", "X:1\nQ:1/4=0\nK:C\nCDEF|",
            "X:1\nK:C\nC|/../../../tmp/DIR/secret.abc\n"]
    return ([Request({"abc": abc, "bars": 1}, "issue abc") for abc in abcs]
            + [Request({"events": document, "bars": 1}, "issue events")
               for document in (events, chords, parts)]
            + [Request({"abc": VALID_ABC[0], "temperature": int("1" + "0" * 400)},
                       "issue number")])
