"""ABC as text: split a file into tunes, normalize a tune, read its header."""

from __future__ import annotations

import re
from dataclasses import dataclass
from fractions import Fraction

# Header fields the model needs; everything else in a header is dropped by `normalize_tune`.
KEPT_HEADER_FIELDS = ("M", "L", "Q", "K")
# Fields that may stand on their own line inside a tune body and change the music.
KEPT_BODY_FIELDS = ("M", "L", "Q", "K", "V")
# What stands between two tunes in a training text, and before a prompt: since every tune ends
# with a newline, the model reads "a blank line, then a new tune".
TUNE_SEPARATOR = "\n"

FIELD_LINE = re.compile(r"^([A-Za-z]):(.*)$")
DECORATION = re.compile(r"![^!\n]*!|\+[^+\n]*\+")
QUOTED = re.compile(r'"[^"\n]*"')
VOICE_LINE = re.compile(r"^V:(\S+)[^\n]*", re.MULTILINE)  # a voice's lines begin: its name


def length_text(ratio: Fraction) -> str:
    """A length in unit notes as ABC writes it after a note: '', '2', '/', '/4', '3/2'."""
    if ratio == 1:
        return ""
    if ratio.denominator == 1:
        return str(ratio.numerator)
    if ratio.numerator == 1:
        return "/" if ratio.denominator == 2 else f"/{ratio.denominator}"
    return f"{ratio.numerator}/{ratio.denominator}"


def without_annotations(line: str) -> str:
    """A line of music without its quoted annotations (`"^rit."`, `"<(1)"`), chord symbols
    (quoted text that starts with a root A-G) kept."""
    return QUOTED.sub(lambda m: m.group(0) if m.group(0)[1:2] in set("ABCDEFG") else "", line)


@dataclass(frozen=True)
class Header:
    """The fields of a tune head that Segue uses."""

    reference: str
    title: str
    meter: str
    unit: str
    tempo: str
    key: str


def split_tunes(text: str) -> list[str]:
    """The tunes of an ABC file, each starting with its `X:` line (file headers dropped)."""
    tunes: list[list[str]] = []
    for line in text.replace("\r\n", "\n").replace("\r", "\n").split("\n"):
        if re.match(r"^X:\s*\S*", line):
            tunes.append([line])
        elif tunes:
            tunes[-1].append(line)
    return ["\n".join(lines).strip() + "\n" for lines in tunes if len(lines) > 1]


def strip_comment(line: str) -> str:
    """A line without its `%` comment (an escaped `\\%` stays)."""
    if line.startswith("%"):
        return ""
    match = re.search(r"(?<!\\)%", line)
    return line[: match.start()] if match else line


def normalize_tune(text: str) -> str | None:
    """A tune reduced to what the model needs, or None if it has no `K:` field or no notes.

    Comments, `%%` directives, lyrics, titles, sources, notes and other metadata go; the head
    becomes `X:1`, the `M:`, `L:`, `Q:` fields (in that order), the voice definitions (`V:`
    with their names and clefs) and `K:`; the body keeps its music, its chord symbols, its
    voice (`V:`) and meter/key/tempo/unit changes, with decorations, annotations in quotes
    and line continuations removed.
    """
    head: dict[str, str] = {}
    voices: list[str] = []
    body: list[str] = []
    in_body = False
    for raw in text.split("\n"):
        line = strip_comment(raw).rstrip()
        if not line.strip():
            continue
        field = FIELD_LINE.match(line)
        if not in_body:
            if field is None:
                continue
            name, value = field.group(1), field.group(2).strip()
            if name in KEPT_HEADER_FIELDS and name not in head:
                head[name] = value
            if name == "V":
                voices.append(f"V:{value}")
            if name == "K":
                in_body = True
            continue
        if line.startswith("+:"):  # the continuation of a lyrics or other field line
            continue
        if field is not None and not line.startswith("|"):
            name = field.group(1)
            if name in KEPT_BODY_FIELDS:
                body.append(f"{name}:{field.group(2).strip()}")
            continue
        music = without_annotations(DECORATION.sub("", line)).rstrip("\\").rstrip()
        if music.strip():
            body.append(music)
    if "K" not in head or not body:
        return None
    lines = ["X:1"] + [f"{name}:{head[name]}" for name in KEPT_HEADER_FIELDS[:-1]
                       if name in head]
    return "\n".join([*lines, *voices, f"K:{head['K']}", *body]) + "\n"


def read_header(text: str) -> Header:
    """The head of a tune: the first value of each field, '' where absent."""
    fields: dict[str, str] = {}
    for line in text.split("\n"):
        field = FIELD_LINE.match(line.strip())
        if field and field.group(1) not in fields:
            fields[field.group(1)] = field.group(2).strip()
        if field and field.group(1) == "K":
            break
    return Header(
        reference=fields.get("X", ""), title=fields.get("T", ""), meter=fields.get("M", ""),
        unit=fields.get("L", ""), tempo=fields.get("Q", ""), key=fields.get("K", ""),
    )


def split_head(text: str) -> tuple[str, str]:
    """(head, body): the head runs up to and including the first `K:` line."""
    lines = text.split("\n")
    for index, line in enumerate(lines):
        if line.startswith("K:"):
            return "\n".join(lines[: index + 1]) + "\n", "\n".join(lines[index + 1:])
    return text, ""
