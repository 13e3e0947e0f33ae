"""The most recent bars of a prompt, cut from its text before any reader parses it.

A model reads only the last few bars of a prompt (engine.models.continuation keeps the head and the
bars that fit its context), so reading more only costs time: a 10,000-bar tune or a 100-part
score would hold a reader for minutes. These cut the text first, keeping what is in force
where the cut falls (meter, unit length, key, tempo; MusicXML's divisions, key, time and
clefs), so that only about engine.abc.limits.CONTEXT_* of music is ever parsed.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

from engine.abc.limits import (
    BAR_LINE,
    CONTEXT_BARS,
    CONTEXT_CHARS,
    CONTEXT_NOTES,
    FIELD_LINE,
    MAX_PARTS,
    check_size,
    music_only,
    strip_comment,
)
from engine.abc.text import split_head, split_tunes
from engine.errors import SegueError

CARRIED_FIELD = re.compile(r"(?:^|\[)([MLQK]):([^\]\n]*)", re.MULTILINE)


def bar_starts(text: str) -> list[int]:
    """Where each bar of a voice's text starts: 0, then after each bar line that a cut may
    follow (not one followed by an ending number, `|1` or `[2`), the last bar not empty."""
    starts = [0]
    offset = 0
    for line in text.split("\n"):
        if not FIELD_LINE.match(line) or line.startswith("|"):
            for match in BAR_LINE.finditer(music_only(line)):
                after = line[match.end():].lstrip(" ")
                if not re.match(r"\[?\d", after):
                    starts.append(offset + match.end())
        offset += len(line) + 1
    while len(starts) > 1 and not text[starts[-1]:].strip():
        starts.pop()
    return starts


def group_voices(tune: str) -> str:
    """A tune whose voices alternate (`V:1` four bars, `V:2` four bars, `V:1` ...) as one block
    per voice, each opened by the first `V:` line of that voice (its name and clef kept);
    inline `[V:1]` at the start of a line counts as a `V:` line. The head is kept as it is; a
    tune with fewer than two voices is returned unchanged."""
    head, body = split_head(tune)
    order: list[str] = []
    blocks: dict[str, list[str]] = {}
    current = None
    preamble: list[str] = []
    for line in body.split("\n"):
        voice = re.match(r"^V:\s*(\S+)", line) or re.match(r"^\[V:\s*([^\]\s]+)([^\]]*)\](.*)$",
                                                          line)
        if voice:
            current = voice.group(1)
            if current not in blocks:
                order.append(current)
                blocks[current] = [line if line.startswith("V:") else
                                   f"V:{current}{voice.group(2)}"]
            if not line.startswith("V:"):
                blocks[current].append(voice.group(3))
        elif current is None:
            preamble.append(line)
        else:
            blocks[current].append(line)
    if len(order) < 2:
        return tune
    lines = [line for voice in order for line in blocks[voice] if line.strip()]
    return head + "\n".join([*preamble, *lines]) + "\n"


def voice_blocks(body: str) -> list[tuple[str, str]]:
    """A body (voices grouped) as (its `V:` line or "", its music) per voice; comments and
    lyric lines are dropped (the model reads neither)."""
    blocks: list[tuple[str, list[str]]] = [("", [])]
    for raw in body.split("\n"):
        if raw.startswith("%") or re.match(r"^[wW]:", raw):
            continue
        line = strip_comment(raw).rstrip()
        if line.startswith("V:"):
            blocks.append((line, []))
        elif line.strip():
            blocks[-1][1].append(line)
    return [(voice, "\n".join(lines)) for voice, lines in blocks if lines]


def with_fields(head: str, fields: dict[str, str]) -> str:
    """A tune head whose M:, L:, Q:, K: take these values (K: stays last)."""
    lines = [line for line in head.rstrip("\n").split("\n")
             if line[:1] not in fields or line[1:2] != ":" or line[0] == "K"]
    key = next((i for i, line in enumerate(lines) if line.startswith("K:")), len(lines))
    if "K" in fields and key < len(lines):
        lines[key] = f"K:{fields['K']}"
    added = [f"{name}:{value}" for name, value in fields.items() if name != "K"]
    return "\n".join(lines[:key] + added + lines[key:]) + "\n"


def recent_abc(text: str, bars: int = CONTEXT_BARS, chars: int = CONTEXT_CHARS) -> str:
    """The first tune of `text` with its most recent bars only: at most `bars` bars of each
    voice and at most `chars` characters of music in all (at least one bar)."""
    tunes = split_tunes(text)
    if not tunes:
        return text  # the reader says what is missing
    head, body = split_head(group_voices(tunes[0]))
    blocks = voice_blocks(body)
    starts = [bar_starts(music) for _, music in blocks]
    if not blocks:
        return tunes[0]
    keep = min(bars, max(len(s) for s in starts))
    while keep > 1 and sum(len(music) - s[-min(keep, len(s))]
                           for (_, music), s in zip(blocks, starts, strict=True)) > chars:
        keep -= 1
    if all(len(s) <= keep for s in starts):
        return tunes[0]
    lines: list[str] = []
    carried: dict[str, str] = {}
    for index, ((voice, music), block_starts) in enumerate(zip(blocks, starts, strict=True)):
        cut = block_starts[-min(keep, len(block_starts))]
        fields = {name: value.strip() for name, value in CARRIED_FIELD.findall(music[:cut])}
        lines += [voice] if voice else []
        if index == 0:
            carried = fields
        else:
            lines += [f"{name}:{value}" for name, value in fields.items()]
        lines.append(music[cut:].lstrip(" \n"))
    return with_fields(head, carried) + "\n".join(lines) + "\n"


# MusicXML attributes carried to the first kept bar, in the order the schema wants them.
ATTRIBUTE_ORDER = ("divisions", "key", "time", "staves", "part-symbol", "instruments", "clef",
                   "staff-details", "transpose")


def measure_number(measure: ET.Element) -> int | None:
    """A measure's number attribute as a whole number (its leading digits), or None."""
    match = re.match(r"\s*(\d+)", measure.get("number", ""))
    return int(match.group(1)) if match else None


def carried_attributes(measures: list[ET.Element]) -> dict[tuple[str, str], ET.Element]:
    """The attributes in force after these measures: the last of each kind (and number)."""
    state: dict[tuple[str, str], ET.Element] = {}
    for measure in measures:
        for attributes in measure.iter("attributes"):
            for child in attributes:
                if child.tag in ATTRIBUTE_ORDER:
                    state[(child.tag, child.get("number", ""))] = child
    return state


def carry_into(measure: ET.Element, state: dict[tuple[str, str], ET.Element]) -> None:
    """Give the first kept measure the attributes in force where the cut falls, leaving those
    it sets itself before its first note."""
    own = None
    for child in measure:
        if child.tag == "note":
            break
        if child.tag == "attributes":
            own = child
            break
    if own is None:
        own = ET.Element("attributes")
        measure.insert(0, own)
    present = {(child.tag, child.get("number", "")) for child in own}
    for kind, element in state.items():
        if kind not in present:
            own.append(element)
    own[:] = sorted(own, key=lambda child: ATTRIBUTE_ORDER.index(child.tag)
                    if child.tag in ATTRIBUTE_ORDER else len(ATTRIBUTE_ORDER))


def choose_part(root: ET.Element, part: str) -> None:
    """Keep only the part chosen by number (from 1) or by name (as music21 reads names)."""
    part_list = root.find("part-list")
    listed = [] if part_list is None else part_list.findall("score-part")
    parts = root.findall("part")
    names = {p.get("id"): (p.findtext("part-name") or "").strip() for p in listed}
    chosen = None
    if part.isdigit() and 1 <= int(part) <= len(parts):
        chosen = parts[int(part) - 1]
    else:
        chosen = next((p for p in parts if names.get(p.get("id"), "").lower() == part.lower()),
                      None)
    if chosen is None:
        known = ", ".join(f"{i + 1} ({names.get(p.get('id')) or 'unnamed'})"
                          for i, p in enumerate(parts[:20]))
        raise SegueError(f"part {part}: the score has parts {known}")
    for other in parts:
        if other is not chosen:
            root.remove(other)
    for listed_part in listed:
        if listed_part.get("id") != chosen.get("id"):
            part_list.remove(listed_part)  # type: ignore[union-attr]


def recent_musicxml(text: str, *, part: str | None = None,
                    measures: tuple[int, int] | None = None,
                    bars: int = CONTEXT_BARS, notes: int = CONTEXT_NOTES) -> str:
    """A partwise MusicXML document cut to the chosen part and the most recent bars of the
    chosen measures (at most `bars` bars and `notes` notes in all, at least one bar).

    A timewise document is returned whole (music21 reads it; the size limits still hold).
    """
    try:
        root = ET.fromstring(text)
    except ET.ParseError as error:
        raise SegueError(f"not a readable MusicXML document ({error})") from None
    if root.tag != "score-partwise":
        return text
    if part is not None:
        choose_part(root, str(part))
    parts = root.findall("part")
    check_size(len(parts), MAX_PARTS, "parts", "choose one with \"part\"")
    if not parts:
        return text
    numbers = [measure_number(m) for m in parts[0].findall("measure")]
    chosen = list(range(len(numbers)))
    if measures is not None:
        first, last = measures
        chosen = [i for i, n in enumerate(numbers) if n is not None and first <= n <= last]
        if not chosen:
            known = [n for n in numbers if n is not None]
            span = f"{min(known)}-{max(known)}" if known else "none"
            raise SegueError(f"measures {first}-{last} is outside the score, whose bars are "
                             f"numbered {span}")
    keep = chosen[-bars:]
    all_measures = [p.findall("measure") for p in parts]

    def notes_in(index: int) -> int:
        return sum(len(ms[index].findall("note")) for ms in all_measures if index < len(ms))

    while len(keep) > 1 and sum(notes_in(i) for i in keep) > notes:
        keep = keep[1:]
    for part_element, part_measures in zip(parts, all_measures, strict=True):
        state = carried_attributes(part_measures[:keep[0]])
        for index, measure in enumerate(part_measures):
            if not keep[0] <= index <= keep[-1]:
                part_element.remove(measure)
        if keep[0] < len(part_measures) and state:
            carry_into(part_measures[keep[0]], state)
    return ET.tostring(root, encoding="unicode")

