"""ABC as text: split a file into tunes, normalize a tune, read its header, regroup voices."""

from __future__ import annotations

import re
from dataclasses import dataclass

# Header fields the model needs; everything else in a header is dropped by `normalize_tune`.
KEPT_HEADER_FIELDS = ("M", "L", "Q", "K")
# Fields that may stand on their own line inside a tune body and change the music.
KEPT_BODY_FIELDS = ("M", "L", "Q", "K", "V")

FIELD_LINE = re.compile(r"^([A-Za-z]):(.*)$")
DECORATION = re.compile(r"![^!\n]*!|\+[^+\n]*\+")
ANNOTATION = re.compile(r'"[^"\n]*"')


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
    becomes `X:1` and the `M:`, `L:`, `Q:`, `K:` fields (in that order, `K:` last); the body
    keeps its music, its voice (`V:`) and meter/key/tempo/unit changes, with decorations,
    chord symbols and annotations in quotes, and line continuations removed.
    """
    head: dict[str, str] = {}
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
            if name == "K":
                in_body = True
            continue
        if field is not None and not line.startswith("|"):
            name = field.group(1)
            if name in KEPT_BODY_FIELDS:
                body.append(f"{name}:{field.group(2).strip()}")
            continue
        music = ANNOTATION.sub("", DECORATION.sub("", line)).rstrip("\\").rstrip()
        if music.strip():
            body.append(music)
    if "K" not in head or not body:
        return None
    lines = ["X:1"] + [f"{name}:{head[name]}" for name in KEPT_HEADER_FIELDS if name in head]
    return "\n".join(lines + body) + "\n"


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


def group_voices(text: str) -> str:
    """Rewrite a tune whose voices alternate line by line as one block per voice.

    ABC lets voices alternate (`V:1` four bars, `V:2` four bars, `V:1` ...); music21 reads each
    `V:` line as a new part, so before music21 sees such a tune its lines are gathered per voice.
    A tune with fewer than two voices is returned unchanged.
    """
    head, body = split_head(text)
    order: list[str] = []
    blocks: dict[str, list[str]] = {}
    current = None
    preamble: list[str] = []
    for line in body.split("\n"):
        voice = re.match(r"^V:\s*(\S+)", line) or re.match(r"^\[V:\s*([^\]\s]+)[^\]]*\]\s*$", line)
        if voice:
            current = voice.group(1)
            if current not in blocks:
                order.append(current)
                blocks[current] = []
            continue
        inline = re.match(r"^\[V:\s*([^\]\s]+)[^\]]*\](.*)$", line)
        if inline:
            current = inline.group(1)
            if current not in blocks:
                order.append(current)
                blocks[current] = []
            line = inline.group(2)
        if current is None:
            preamble.append(line)
        else:
            blocks[current].append(line)
    if len(order) < 2:
        return text
    out = [line for line in head.rstrip("\n").split("\n") if not line.startswith("V:")]
    out += preamble
    for voice in order:
        out.append(f"V:{voice}")
        out += [line for line in blocks[voice] if line.strip()]
    return "\n".join(out) + "\n"
