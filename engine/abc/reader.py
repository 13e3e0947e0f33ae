"""ABC text -> music21 Score, through Willem Vree's abc2xml (the `abctoolkit` package, LGPL).

music21's own ABC reader loses much of real-world ABC: meter changes on their own line or
inline, additive meters (`M:2+3/8` becomes 23/8), voices laid out with `%%staves` or
interleaved `V:` lines, chord symbols; and it reads `w:` lyrics as notes. abc2xml (the
converter EasyABC uses) reads all of these into MusicXML, which music21 imports well. The
docs/reference/abc.md "Reading ABC" table has the numbers behind this choice.

abc2xml's chord-symbol grammar has no `7sus4` or `add9`: before the text goes in, those two
qualities are respelled to ones it reads with the same notes (`sus4` plus an added 7th, an
added 2nd). abc2xml keeps one converter object for the whole process and reports through
`sys.stderr`, so conversions take a lock and its reports are collected, not printed.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

from engine.errors import SegueError

if TYPE_CHECKING:
    from xml.etree.ElementTree import Element

    from music21 import stream

_lock = threading.Lock()
# "G7sus4" -> "Gsus47" (suspended fourth, added seventh); "Gadd9" -> "G2" (added ninth).
_CHORD_RESPELLING = re.compile(r'"([A-G][#b]?)(7sus4|add9)((?:/[A-G][#b]?)?)"')


def _respell(match: re.Match[str]) -> str:
    root, quality, bass = match.groups()
    return f'"{root}{"sus47" if quality == "7sus4" else "2"}{bass}"'


def abc_to_musicxml(text: str) -> tuple[Element, list[str]]:
    """The first tune of `text` as a MusicXML element tree root, and abc2xml's reports."""
    from abctoolkit import abc2xml

    reports: list[str] = []
    text = _CHORD_RESPELLING.sub(_respell, text)
    with _lock:
        saved: Callable[..., None] = abc2xml.info
        abc2xml.info = lambda message, warn=1: reports.append(str(message))
        try:
            documents = abc2xml.getXmlDocs(text)
        finally:
            abc2xml.info = saved
    if not documents:
        detail = next((r for r in reports if "skipped header" not in r), "")
        raise SegueError("the ABC tune cannot be read" + (f": {detail[:200]}" if detail else ""))
    return documents[0], reports


def read_abc(text: str) -> stream.Score:
    """One ABC tune as a music21 Score (parts with bars; chord symbols as ChordSymbols)."""
    from music21.musicxml.xmlToM21 import MusicXMLImporter

    from engine.abc.music21_mends import mend_music21

    mend_music21()
    root, _ = abc_to_musicxml(text)
    try:
        return MusicXMLImporter().xmlRootToScore(root)
    except Exception as error:  # music21 raises many kinds on odd documents
        raise SegueError(f"the ABC tune cannot be read ({type(error).__name__}: "
                         f"{str(error)[:200]})") from None
