"""Lead sheets: chord symbols read off the accompaniment, the melody kept note for note."""

from __future__ import annotations

from music21 import chord, harmony, meter, note, stream

from engine.abc.lead_sheet import Label, best_chord, lead_sheet

# Half-bar chords of the accompaniment in 4/4, with the symbol a musician would write.
PROGRESSION = [(["C3", "E4", "G4"], "C"), (["G2", "F4", "B4", "D5"], "G7"),
               (["A2", "C4", "E4"], "Am"), (["F2", "A3", "C4", "E4"], "Fmaj7"),
               (["D3", "F4", "A4"], "Dm"), (["G2", "B3", "D4"], "G")]


def song() -> stream.Score:
    melody, piano = stream.Part(), stream.Part()
    for part in (melody, piano):
        part.insert(0, meter.TimeSignature("4/4"))
    for index, (pitches, _) in enumerate(PROGRESSION):
        piano.insert(index * 2.0, chord.Chord(pitches, quarterLength=2))
        melody.insert(index * 2.0, note.Note(pitches[-1], quarterLength=1))
        melody.insert(index * 2.0 + 1, note.Note("C5", quarterLength=1))  # a passing tone
    score = stream.Score()
    for part in (melody, piano):
        score.insert(0, part.makeNotation())
    return score


def test_each_half_bar_gets_the_chord_its_accompaniment_sounds():
    sheet = lead_sheet(song())
    assert sheet is not None and len(sheet.parts) == 1
    symbols = list(sheet.recurse().getElementsByClass(harmony.ChordSymbol))
    found = [(float(s.getOffsetInHierarchy(sheet.parts[0])), s.root().name, s.chordKind)
             for s in symbols]
    expected = [(i * 2.0, harmony.ChordSymbol(figure).root().name,
                 harmony.ChordSymbol(figure).chordKind)
                for i, (_, figure) in enumerate(PROGRESSION)]
    assert found == expected


def test_the_melody_is_kept_note_for_note():
    original = song()
    sheet = lead_sheet(original)
    before = [(n.offset, n.pitch.midi) for n in original.parts[0].flatten().notes]
    after = [(n.offset, n.pitch.midi) for n in sheet.parts[0].flatten().notes
             if not isinstance(n, harmony.ChordSymbol)]
    assert after == before


def test_a_triad_is_preferred_unless_the_seventh_sounds():
    c_major = [0.0] * 12
    for pc in (0, 4, 7):
        c_major[pc] = 1.0
    assert best_chord(c_major, 0) == Label(0, "major")
    c_major[10] = 1.0
    assert best_chord(c_major, 0) == Label(0, "dominant-seventh")
    assert best_chord([0.0] * 12, None) is None


def test_a_piece_of_one_part_has_no_lead_sheet():
    score = stream.Score()
    score.insert(0, song().parts[0])
    assert lead_sheet(score) is None


def test_roots_are_spelled_in_the_key_in_force():
    from music21 import key

    score = song()
    for part in score.parts:
        measures = list(part.getElementsByClass(stream.Measure))
        measures[0].insert(0, key.KeySignature(-2))  # B-flat major, then E major
        measures[1].insert(0, key.KeySignature(4))
    piano = score.parts[1]
    for element in list(piano.recurse().notes):
        element.activeSite.remove(element)
    bar_one, bar_two = list(piano.getElementsByClass(stream.Measure))[:2]
    bar_one.insert(0, chord.Chord(["D-3", "F4", "A-4"], quarterLength=4))
    bar_two.insert(0, chord.Chord(["C#3", "E#4", "G#4"], quarterLength=4))
    sheet = lead_sheet(score)
    roots = [s.root().name for s in sheet.recurse().getElementsByClass(harmony.ChordSymbol)]
    assert roots[:2] == ["D-", "C#"]  # one pitch class, named as each key names it
