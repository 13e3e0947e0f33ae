"""The corpus: tunes normalized for training, split by a hash of their text, user folders."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from itertools import islice
from pathlib import Path

from engine.abc_text import normalize_tune
from engine.corpus import SPLITS, iter_tunes, split_of

MESSY = """%abc-2.1
X:12
T:The Kesh
C:trad.
O:Ireland
S:a session % where it was heard
R:jig
Z:transcriber
N:a note
M:6/8
L:1/8
Q:3/8=120
K:G
%%staffsep 40
"Am"!trill!GAG GAB|ABA ABd|\\
edd gdd|edB dBA|
w:la la la
T:Part two
M:9/8
GAB c2d e2f|]
"""


def test_normalization_keeps_the_music_and_the_fields_the_model_needs():
    text = normalize_tune(MESSY)
    assert text == ("X:1\nM:6/8\nL:1/8\nQ:3/8=120\nK:G\n\"Am\"GAG GAB|ABA ABd|\nedd gdd|edB dBA|\n"
                    "M:9/8\nGAB c2d e2f|]\n")


def test_normalization_keeps_voice_definitions_and_chord_symbols_drops_annotations():
    text = normalize_tune('X:3\nT:t\nM:C\nV:1 name="Fiddle"\nV:2 clef=bass\nK:D\n'
                          '[V:1]"^slowly""D"d4 "_x"A4|\n[V:2]D,8|\nw:one two\n')
    assert text == ('X:1\nM:C\nV:1 name="Fiddle"\nV:2 clef=bass\nK:D\n'
                    '[V:1]"D"d4 A4|\n[V:2]D,8|\n')


def test_a_tune_without_key_or_notes_is_dropped():
    assert normalize_tune("X:1\nT:no key\nM:4/4\nABcd|\n") is None
    assert normalize_tune("X:1\nT:no notes\nK:D\n") is None


def test_split_is_fixed_by_the_text_and_near_90_5_5():
    tunes = list(islice(iter_tunes(), 3000))
    assert all(tune.split == split_of(tune.text) for tune in tunes)
    counts = Counter(tune.split for tune in tunes)
    assert set(counts) == set(SPLITS)
    assert 0.86 < counts["train"] / len(tunes) < 0.94
    assert 0.03 < counts["test"] / len(tunes) < 0.07
    assert len({tune.text for tune in tunes}) == len(tunes)  # duplicates are dropped


def test_one_split_only(tmp_path: Path):
    valid = list(islice(iter_tunes(split="valid"), 50))
    assert valid and {tune.split for tune in valid} == {"valid"}


def test_user_folders_take_abc_musicxml_and_midi(tmp_path: Path):
    (tmp_path / "set.abc").write_text(MESSY + "\nX:2\nK:D\nDEF|\n")
    from engine.music import parse_abc, write_score
    write_score(parse_abc("X:1\nM:3/4\nL:1/8\nK:F\nF2A2c2|f6|\n"), tmp_path / "waltz.musicxml")
    (tmp_path / "notes.txt").write_text("not music")
    tunes = list(iter_tunes([tmp_path], bundled=False))
    assert len(tunes) == 3
    assert any("F2A2c2" in tune.text.replace(" ", "") for tune in tunes)


def test_stats_command_counts_a_user_folder(tmp_path: Path):
    (tmp_path / "set.abc").write_text(MESSY + "\nX:2\nK:D\nDEF|\n")
    result = subprocess.run([sys.executable, "-m", "bridge", "corpus", "--stats", "--no-bundled",
                             "--data", str(tmp_path), "--json"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    stats = json.loads(result.stdout)
    assert stats["tunes"] == 2
    assert sum(split["tunes"] for split in stats["splits"].values()) == 2
    assert stats["collections"] == {str(tmp_path): 2}
