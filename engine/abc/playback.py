"""What abc2midi, the reference ABC player, needs to play Segue's answers without a warning.

abc2midi accompanies chord symbols with a pattern of bass notes and chords chosen by the meter,
but has one for 13 meters only (probed with abcmidi 4.84: 2/2; 2/4 to 7/4; 3/8, 5/8, 6/8, 7/8,
9/8 and 12/8). In any other meter (3/2, 4/2, 9/4, 2/8, ...) it warns "no default gchord string
for this meter" and plays the symbols silent. An answer with chord symbols in such a meter gets
a `%%MIDI gchord` line in its head, in abc2midi's own style: a bass note on the first beat, a
chord on each other beat (`fzczcz` in 3/2); with several voices, each voice gets it. Other
readers skip `%%` lines.
"""

from __future__ import annotations

import re

from engine.abc.meters import beat_count
from engine.abc.text import VOICE_LINE

ABC2MIDI_PATTERN_METERS = frozenset({"2/2", "2/4", "3/4", "4/4", "5/4", "6/4", "7/4", "3/8", "5/8",
                                     "6/8", "7/8", "9/8", "12/8", "C", "C|"})


def gchord_line(meter: str) -> str:
    """The `%%MIDI gchord` line for a meter abc2midi has no chord pattern for; "" for one it
    has."""
    meter = meter.strip()
    if meter in ABC2MIDI_PATTERN_METERS:
        return ""
    beats = beat_count(meter)
    return "%%MIDI gchord " + ("fc" if beats == 1 else "fz" + "cz" * (beats - 1))


def playable(abc: str) -> str:
    """An ABC tune that gains the `gchord_line` of its `M:` when its music has chord symbols:
    in its head for one voice; after each voice's first `V:` line of the body for several (in
    the head, abc2midi applies it to some voices only)."""
    head, key, rest = abc.partition("\nK:")
    meter = re.search(r"^M:(.*)$", head, re.MULTILINE)
    line = gchord_line(meter.group(1)) if meter else ""
    key_value, _, body = rest.partition("\n")
    if not line or '"' not in body:
        return abc
    if not VOICE_LINE.search(body):
        return f"{head}\n{line}{key}{rest}"
    seen: set[str] = set()

    def first_of_voice(match: re.Match[str]) -> str:
        if match.group(1) in seen:
            return match.group(0)
        seen.add(match.group(1))
        return f"{match.group(0)}\n{line}"

    return f"{head}{key}{key_value}\n" + VOICE_LINE.sub(first_of_voice, body)
