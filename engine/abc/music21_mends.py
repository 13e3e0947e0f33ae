"""A mend to music21's MusicXML importer, for a bug that changes how long a bar is.

music21 (10.5) takes a bar holding chords and a single whole or breve rest for a bar of rest
alone, because it counts no chord as a note, and stretches that rest to the bar: in 3/2,
`[E,F,]2 z8 [E,E]2` (a quarter, a whole rest, a quarter) comes back seven quarter notes long.
Every MusicXML reading in Segue (ABC through abc2xml, MusicXML files and documents) goes
through the importer's measure parser, so it is given the rule it misses: a bar that holds a
note or a chord is not a bar of rest.
"""

from __future__ import annotations


def mend_music21() -> None:
    """Install the mended measure parser in music21's importer (once; later calls do nothing)."""
    from music21.musicxml import xmlToM21

    if getattr(xmlToM21.MeasureParser, "segue_mended", False):
        return

    class MeasureParser(xmlToM21.MeasureParser):
        segue_mended = True

        def parse(self) -> None:
            super().parse()
            if self.fullMeasureRest and self.stream.recurse().notes:
                self.fullMeasureRest = False

    xmlToM21.MeasureParser = MeasureParser  # type: ignore[misc]
