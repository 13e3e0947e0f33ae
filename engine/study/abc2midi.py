"""abc2midi (Debian's abcmidi), the reference ABC player, as a judge of Segue's ABC.

Segue's ABC must be read by abc2midi without a word about it: `abc2midi_messages` returns
everything abc2midi says about a tune besides its version banner and "writing MIDI file"
(errors, warnings about bars, ties or chords), and "no MIDI file written" when it wrote none.
`segue eval` counts the answers it is silent on; the tests assert on its errors.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

ROUTINE = ("writing MIDI file",)


def available() -> bool:
    """Whether abc2midi is installed."""
    return shutil.which("abc2midi") is not None


def abc2midi_messages(abc: str) -> list[str]:
    """What abc2midi reports about `abc` beyond its routine lines (empty: it is silent)."""
    with tempfile.TemporaryDirectory() as folder:
        source, midi = Path(folder) / "tune.abc", Path(folder) / "tune.mid"
        source.write_text(abc, "utf-8")
        result = subprocess.run(["abc2midi", str(source), "-o", str(midi)],
                                capture_output=True, text=True, timeout=30)
        lines = (result.stdout + result.stderr).splitlines()
        said = [line for line in lines[1:] if line.strip() and not line.startswith(ROUTINE)]
        if lines and "abc2midi" not in lines[0]:  # no banner: keep the first line too
            said = [line for line in lines[:1] if line.strip()] + said
        return said if midi.exists() else [*said, "no MIDI file written"]


def abc2midi_errors(abc: str) -> list[str]:
    """The errors abc2midi reports for `abc` (its warnings left out)."""
    return [line for line in abc2midi_messages(abc)
            if line.startswith("Error") or line == "no MIDI file written"]
