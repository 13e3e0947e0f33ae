"""`segue eval` on the tiny random GPT-2: every figure of every set present and in range,
bar-exact continuations, the measures checked on known music, infill bits, the n-gram
baseline, and the sampling grid on the validation split."""

from __future__ import annotations

import json
import math
import random
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import torch

from bridge.cli import main
from engine.abc.music import parse_abc
from engine.abc.profile import distance
from engine.abc.registers import keeps_voice_order
from engine.models.checkpoint import read_config, write_sampling_defaults
from engine.models.tokenizer import CharTokenizer
from engine.study.abc2midi import abc2midi_messages
from engine.study.accompaniment_eval import cases_for, common_chords, figures_of
from engine.study.eval_sets import load_material, set_cases
from engine.study.evaluate import SYSTEMS
from engine.study.fill_eval import gap_of, join_interval
from engine.study.infill_bits import fill_examples, infill_figures
from engine.study.measures import (
    bars_right,
    chord_agreement,
    chord_bars,
    chord_label_agreement,
    chords_in_key,
    diversity,
    repetition,
    spread,
    voice_means,
)
from engine.study.ngram import NGram
from engine.training.corpus import iter_tunes

LIMIT = 30
HEAD = "X:1\nM:4/4\nL:1/8\nK:G\n"
SHARES = ("parse_share", "bar_share", "in_key_share", "pitch_class_distance",
          "interval_distance", "repetition", "repetition_gap", "abc2midi_silent_share")
# Bars of a two-voice tune with chord symbols: its strong beats (1 and 3) are chord tones.
CHORD_TONES = {"G": ["G", "B", "d", "g"], "C": ["c", "e", "g", "C"], "D": ["d", "f", "a", "A"]}
BASS = {"G": "G,4 D,4", "C": "C,4 G,4", "D": "D,4 A,4"}
ARGS = ["--limit-tunes", str(LIMIT), "--workers", "1", "--threads", "1", "--device", "cpu",
        "--no-progress", "--seeds", "2"]

pytestmark = pytest.mark.usefixtures("segue_home")  # conftest.py: a private home


def two_voice_tune(index: int) -> str:
    """A 16-bar tune for melody (with chord symbols) and bass, made from `index`."""
    rng = random.Random(index)
    melody, bass = [], []
    for _ in range(16):
        chord = rng.choice(list(CHORD_TONES))
        tones = CHORD_TONES[chord]
        notes = [rng.choice(tones), rng.choice("ABcdefg"), rng.choice(tones), rng.choice("ABcd")]
        melody.append(f'"{chord}"' + "".join(f"{n}2" for n in notes))
        bass.append(BASS[chord])
    lines = [" | ".join(voice[i:i + 4]) + " |" for voice in (melody, bass)
             for i in range(0, 16, 4)]
    return (f"X:{index}\nT:Duet {index}\nM:4/4\nL:1/8\nV:1 clef=treble\nV:2 clef=bass\nK:G\n"
            + "V:1\n" + "\n".join(lines[:4]) + "\nV:2\n" + "\n".join(lines[4:]) + "\n")


@pytest.fixture(scope="module")
def duets(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder of two-voice tunes, some of them in the test and validation splits."""
    folder = tmp_path_factory.mktemp("duets")
    candidates = folder / "candidates.abc"
    candidates.write_text("\n\n".join(two_voice_tune(i) for i in range(1, 120)))
    splits = {"test": [], "valid": [], "train": []}
    for tune in iter_tunes([folder], bundled=False):
        splits[tune.split].append(tune.text)
    assert len(splits["test"]) >= 2 and len(splits["valid"]) >= 2
    candidates.unlink()
    kept = splits["test"][:3] + splits["valid"][:3] + splits["train"][:10]
    (folder / "duets.abc").write_text("\n\n".join(kept))
    return folder


def test_the_prompts_drawn_do_not_depend_on_how_the_folder_is_reached(
        duets: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Pieces are taken in an order hashed from their names: a folder given by an absolute
    path, a relative one or a link gives the same prompts, named the same way."""
    link = tmp_path / "link"
    link.symlink_to(duets)
    monkeypatch.chdir(duets.parent)
    drawn = []
    for folder in (str(duets), duets.name, str(link)):
        material = load_material("test", [folder], test_tunes=0, workers=1, progress=False)
        cases = set_cases(material, "voices", 4, 4, 4)
        drawn.append([(case.source, case.answers["real"]) for case in cases])
    assert len(drawn[0]) == 4 and drawn[0][0][0].startswith(f"{duets.name}/duets.abc#")
    assert drawn[0] == drawn[1] == drawn[2]


@pytest.fixture(scope="module")
def report(model_path: Path, duets: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("eval") / "report"
    status = main(["eval", "--model", str(model_path), "--data", str(duets), "--prompts", "3",
                   "--prompt-bars", "4", "--bars", "4", "--test-tunes", "40",
                   "--bpc-chars", "2000", "--top-p", "0.9", *ARGS, "--out", str(out)])
    assert status == 0
    return out


def test_every_figure_of_every_set_is_present_and_in_range(report: Path) -> None:
    figures = json.loads((report / "results.json").read_text())
    assert figures["model"] == "tiny-gpt2" and list(figures["sets"]) == ["folk", "voices",
                                                                          "chords"]
    for system in ("model", "ngram"):  # the sampling the answers were drawn with
        assert figures["sampling"][system]["temperature"] == 1.0  # the engine's default
        assert figures["sampling"][system]["top_p"] == 0.9  # --top-p
    for name, result in figures["sets"].items():
        systems = result["systems"]
        assert list(systems) == list(SYSTEMS) and 1 <= result["prompts"] <= 3
        prompts = result["prompts"]
        for system, values in systems.items():
            for key in SHARES:
                assert 0 <= values[key] <= 1, (name, system, key)
            assert sum(values["pitch_class_histogram"]) == pytest.approx(1)
        assert systems["model"]["continuations"] == systems["ngram"]["continuations"] \
            == 2 * prompts
        assert systems["repeat"]["continuations"] == systems["real"]["continuations"] == prompts
        # bar-exact decoding: every answer parses and every bar has the meter's length
        for system in ("model", "ngram"):
            assert systems[system]["parse_share"] == systems[system]["bar_share"] == 1.0
            assert 0 < systems[system]["diversity"] <= 1
            assert 0 < systems[system]["pitch_class_spread"] <= 1
            assert 0 <= systems[system]["interval_spread"] <= 1
        for system in ("repeat", "real"):  # one answer a prompt: no spread
            assert systems[system]["pitch_class_spread"] is None
        assert systems["real"]["pitch_class_distance"] == 0 == systems["real"]["repetition_gap"]
        # random weights know nothing (about log2(96) = 6.6 bits); an n-gram does better
        assert 5 < systems["model"]["bits_per_char"] < 8
        assert systems["ngram"]["bits_per_char"] < systems["model"]["bits_per_char"]
        for system in ("model", "ngram"):
            both = systems[system]["infill_both_sides"]
            assert 0 < both < 10 and 0 < systems[system]["infill_prefix_only"] < 10
        assert systems["repeat"]["bits_per_char"] is None
    voices, chords = figures["sets"]["voices"]["systems"], figures["sets"]["chords"]["systems"]
    # the duets' bass stays below the melody, and every bar has a chord its melody starts on
    assert voices["real"]["voice_order_share"] == voices["repeat"]["voice_order_share"] == 1.0
    assert voices["model"]["voice_order_answers"] == 2 * figures["sets"]["voices"]["prompts"]
    assert chords["real"]["chord_bar_share"] == 1.0 and chords["real"]["chord_agreement"] == 1.0
    assert chords["real"]["abc2midi_silent_share"] == 1.0
    # the lead-sheet view's chords come from the bass, the labeller hears the melody alone
    assert 0 < chords["real"]["chord_label_agreement"] <= 1
    assert 0 <= chords["model"]["chord_bar_share"] <= 1
    assert figures["sets"]["folk"]["systems"]["model"]["voice_order_share"] is None
    # random weights wander from the prompt's registers; one voice has no register to leave
    assert voices["model"]["register_drift"] > 0 and voices["real"]["register_drift"] >= 0
    assert figures["sets"]["folk"]["systems"]["model"]["register_drift"] is None
    # accompaniment: the duets lose their bass, or their chord symbols, and get them back
    bass, symbols = (figures["sets"][name]["accompaniment"] for name in ("voices", "chords"))
    assert bass["add"] == "bass" and symbols["add"] == "chords"
    assert 1 <= bass["cases"] <= 3 and 1 <= symbols["cases"] <= 3
    for system in ("model", "ngram"):
        added = bass["systems"][system]
        assert added["given_kept"] == 1.0 and added["failed"] == 0
        assert added["register_error"] >= 0 and 0 <= added["duration_distance"] <= 1
    real = bass["systems"]["real"]
    assert real["below_share"] == 1.0 and real["notes_per_bar"] == 2.0  # "G,4 D,4"
    assert symbols["systems"]["ngram"]["given_kept"] == 1.0
    assert symbols["systems"]["model"]["failed"] == symbols["cases"]  # no chords: refused
    assert symbols["systems"]["real"]["chord_agreement"] == 1.0
    assert 0 <= symbols["systems"]["common"]["root_match"] <= 1
    assert "#### adding a bass" in (report / "table.md").read_text()
    # fill joins: bars 2-3 of 4-bar windows written anew, the join into bar 4 measured
    for name, result in figures["sets"].items():
        joins = result["fill_joins"]
        assert joins["gap"] == [2, 3] and 1 <= joins["windows"] <= 3, name
        real = joins["systems"]["real"]
        assert real["joins"] == joins["windows"] and real["join_distance"] is None
        for system in ("model", "ngram"):
            figures_ = joins["systems"][system]
            assert 0 <= figures_["joins"] <= joins["windows"]
            if figures_["joins"]:
                assert figures_["join_leap"] >= 0 and 0 <= figures_["join_distance"] <= 1
    answers = json.loads((report / "continuations.json").read_text())["sets"]
    for text in (t for cases in answers.values() for case in cases
                 for t in case["model"] + case["ngram"]):
        assert bars_right(parse_abc(text), 4), text


def test_table_and_plots_are_written(report: Path) -> None:
    table = (report / "table.md").read_text()
    assert "| bits/char ↓ |" in table and "tiny-gpt2" in table and "ngram (" in table
    assert "| voice order kept |" in table and "| chord agreement |" in table
    assert "sampling temperature 1, top p 0.9, top k 0," in table and ", drafts 1." in table
    for name in ("folk-pitch_class_histogram.png", "folk-interval_histogram.png",
                 "voices-figures.png", "chords-figures.png"):
        data = (report / name).read_bytes()
        assert data.startswith(b"\x89PNG") and len(data) > 10_000, name


def test_the_grid_chooses_on_validation_and_writes_the_choice(
        model_path: Path, duets: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import shutil

    model = tmp_path / "model"
    shutil.copytree(model_path, model)
    write_sampling_defaults(model, {"chord_tones": 1.5})  # kept: the grid does not try others
    out = tmp_path / "grid"
    status = main(["eval", "--grid", "--model", str(model), "--data", str(duets),
                   "--set", "voices", "--prompts", "2", "--prompt-bars", "4", "--bars", "4",
                   "--temperatures", "0,1.5", "--top-ps", "1", "--register-lean", "0,3",
                   "--write", *ARGS, "--out", str(out)])
    assert status == 0
    figures = json.loads((out / "results.json").read_text())
    assert figures["split"] == "valid" and len(figures["points"]) == 4
    best = min(figures["points"], key=lambda point: point["score"])
    assert figures["chosen"] == {"temperature": best["temperature"], "top_p": 1.0,
                                 "chord_tones": 1.5, "register_lean": best["register_lean"],
                                 "chord_fit": 0.0, "drafts": 1}
    assert read_config(model)["sampling"] == figures["chosen"]
    assert [(p["temperature"], p["register_lean"]) for p in figures["points"]] == [
        (0, 0), (0, 3), (1.5, 0), (1.5, 3)]
    for point in figures["points"]:  # duets: the voice order counts, short of the real one's
        voices = point["sets"]["voices"]
        assert voices["voice_order_shortfall"] == pytest.approx(max(
            0.0, figures["real"]["voices"]["voice_order_share"] - voices["voice_order_share"]))
        assert voices["register_drift_gap"] == pytest.approx(abs(
            voices["register_drift"] - figures["real"]["voices"]["register_drift"]) / 12)
    # greedy answers are all alike: no diversity; sampling hot gives some
    greedy, hot = figures["points"][0], figures["points"][2]
    assert greedy["sets"]["voices"]["diversity"] == 0 < hot["sets"]["voices"]["diversity"]
    assert "chosen: temperature" in capsys.readouterr().out


def test_the_grid_adds_chords_to_choose_the_chord_fit(model_path: Path, duets: Path,
                                                      tmp_path: Path) -> None:
    import shutil

    model = tmp_path / "model"
    shutil.copytree(model_path, model)
    config = read_config(model)
    (model / "config.json").write_text(json.dumps({**config, "abc_language": 2}))
    out = tmp_path / "grid"
    status = main(["eval", "--grid", "--model", str(model), "--data", str(duets),
                   "--set", "chords", "--prompts", "3", "--prompt-bars", "4", "--bars", "4",
                   "--temperatures", "1", "--top-ps", "1", "--chord-fit", "0,10",
                   *ARGS, "--out", str(out)])
    assert status == 0
    figures = json.loads((out / "results.json").read_text())
    plain, fitted = (point["sets"]["chords"] for point in figures["points"])
    # random weights choose chords at random; a strong fit comes nearer the duets' chords,
    # whose tones are the notes on their strong beats
    assert plain["added_chord_agreement"] < fitted["added_chord_agreement"]
    assert fitted["added_chord_gap"] < plain["added_chord_gap"]
    for point in (plain, fitted):
        assert point["added_chord_gap"] is not None and 0 <= point["added_chord_gap"] <= 1
    assert figures["chosen"]["chord_fit"] == 10.0
    assert "| chord fit |" in (out / "table.md").read_text()


def test_the_grid_tries_drafts(model_path: Path, duets: Path, tmp_path: Path,
                               capsys: pytest.CaptureFixture[str]) -> None:
    import shutil

    from engine.models.continuation import Engine

    model = tmp_path / "model"
    shutil.copytree(model_path, model)
    out = tmp_path / "grid"
    status = main(["eval", "--grid", "--model", str(model), "--data", str(duets),
                   "--set", "voices", "--prompts", "2", "--prompt-bars", "4", "--bars", "4",
                   "--temperatures", "1", "--top-ps", "1", "--drafts", "1,3", "--write",
                   *ARGS, "--out", str(out)])
    assert status == 0
    figures = json.loads((out / "results.json").read_text())
    assert [point["drafts"] for point in figures["points"]] == [1, 3]
    one, three = (point["sets"]["voices"] for point in figures["points"])
    assert one != three  # other answers: the drafts were drawn and chosen from
    chosen = figures["chosen"]["drafts"]
    assert read_config(model)["sampling"]["drafts"] == chosen
    assert Engine.load(str(model), "cpu").resolve_sampling(None).drafts == chosen
    assert "| drafts |" in (out / "table.md").read_text()
    capsys.readouterr()
    assert main(["eval", "--model", str(model), "--drafts", "1,3", *ARGS]) == 1
    assert "several --drafts are for --grid" in capsys.readouterr().err


def test_bar_check_measures_each_bar() -> None:
    def right(body: str, count: int) -> bool:
        return bars_right(parse_abc(HEAD + body), count)

    assert right("GABc d2B2 | c2A2 (3BAG G2 |]\n", 2)
    assert not right("GABc d2B2 | c2A2 B2G |]\n", 2)  # short
    assert not right("GABc d2B2 | c2A2 B2G2 |]\n", 3)  # too few bars
    assert right("|: GABc d2B2 :: [CEG]8 |[1 G8 :|[2 g8 |]\n", 4)
    assert right("G8 | z8 |]\n", 2)  # a bar of rests
    assert right("d2B2 B2 :: Bc | d2B2 g2B2 |]\n", 3)  # split at a repeat
    assert not right("Bc | d2B2 g2B2 |]\n", 2)  # half a bar alone
    # after a prompt that stopped inside a bar, the answer first completes it
    completing = parse_abc(HEAD + "B2 | GABc d2B2 | c2A2 B2G2 |]\n")
    assert bars_right(completing, 2, Fraction(1)) and not bars_right(completing, 2)
    assert not bars_right(completing, 2, Fraction(2))  # the rest of the bar was a half note
    assert not bars_right(parse_abc(HEAD + "GABc d2B2 | c2A2 B2G2 |]\n"), 2, Fraction(1))


def test_repetition_diversity_and_distance() -> None:
    assert repetition(HEAD + "G8 | A8 | G8 | G8 |]\n") == 0.5
    assert repetition(HEAD + "G8 | A8 | B8 | c8 |]\n") == 0
    same, other = HEAD + "GABc d2B2 |]\n", HEAD + "e8 |]\n"
    assert diversity([same, same]) == 0 and diversity([same, other]) > 0.5
    assert diversity([same]) is None
    a, b = np.array([0.5, 0.5, 0]), np.array([0, 0.5, 0.5])
    assert distance(a, a) == 0 and distance(a, b) == 0.5 and distance(a, np.zeros(3)) == 1
    assert spread([a, a]) == 0 and spread([a, b]) == 0.5
    assert spread([a, a, b]) == pytest.approx((0 + 0.5 + 0.5) / 3)  # every two of three


def test_voice_order() -> None:
    duet = HEAD.replace("K:G", "V:1\nV:2 clef=bass\nK:G") + "V:1\nd8 | g8 |\nV:2\nG,8 | D,8 |\n"
    means = voice_means(parse_abc(duet))
    assert means == [pytest.approx(76.5), pytest.approx(52.5)]
    assert keeps_voice_order(means, [70.0, 50.0])
    assert not keeps_voice_order(means, [50.0, 70.0])  # swapped
    assert not keeps_voice_order(means, [70.0, None])  # the bass fell silent
    assert not keeps_voice_order(means, [70.0])  # a voice lost
    assert keeps_voice_order([60.0], [50.0]) is None  # one voice: no order to keep
    # a song: voice and right hand a third apart may cross; the left hand must stay below
    song = [67.0, 63.0, 48.0]
    assert not keeps_voice_order(song, [64.0, 66.0, 50.0])
    assert keeps_voice_order(song, [64.0, 66.0, 50.0], apart=7)
    assert not keeps_voice_order(song, [64.0, 66.0, 65.0], apart=7)  # the bass rose above
    assert keeps_voice_order([67.0, 63.0], [60.0, 70.0], apart=7) is None  # no pair apart


def test_chord_bars_and_agreement() -> None:
    tune = HEAD + '"G"G2B2 d4 | "C"E2G2 c4 | "D"F8 | B8 |\n'
    assert chord_bars(tune) == (3, 4)
    # strong beats of 4/4: beats 1 and 3. G bar: G, d in G; C bar: E, c in C; D bar: F# in
    # D; the last bar (D in force): B, not in D
    assert chord_agreement(parse_abc(tune)) == (5, 6)
    assert chord_agreement(parse_abc(HEAD + "G8 |\n")) == (0, 0)
    # the labelling baseline hears G, then C, then F# alone (no A minor): roots agree twice
    labelled = HEAD + '"G"G2B2 d4 | "C"E2G2 c4 | "Am"F8 |\n'
    assert chord_label_agreement(parse_abc(labelled)) == (2, 3)


def test_abc2midi_judges_what_it_reads() -> None:
    assert abc2midi_messages(HEAD + "GABc d2B2 | c2A2 B2G2 |]\n") == []
    assert abc2midi_messages(HEAD + "GABc d2B2 | c2A2 B2 | G8 |]\n")  # a short bar: a warning


def test_accompaniment_figures_on_known_music() -> None:
    """The real part scores as itself; a given note changed in an answer is caught; the
    most-common-chord baseline labels each bar, and its roots are counted against the real
    chords'."""
    [case] = cases_for("bass", [("duet", two_voice_tune(1))], 4, 5)
    assert case.bars == 4 and "V:2" not in case.given and "V:2" in case.real
    first = next(i for i, line in enumerate(case.real.splitlines()) if line == "V:1") + 1
    lines = case.real.splitlines()
    lines[first] = lines[first].replace("2", "3", 1)  # a longer first note: given not kept
    case.answers = {"same": case.real, "changed": "\n".join(lines) + "\n"}
    same = figures_of("bass", [case], "same")
    assert same["given_kept"] == 1.0 and same["register_error"] == 0
    assert same["duration_distance"] == 0 and same["below_share"] == 1.0
    assert same["notes_per_bar"] == 2.0
    assert figures_of("bass", [case], "changed")["given_kept"] == 0.0

    [case] = cases_for("chords", [("duet", two_voice_tune(2))], 4, 5)
    assert '"' not in case.given.split("K:", 1)[1] and '"D"' in case.real
    case.answers = {"common": common_chords(case.given)}
    assert chord_bars(case.answers["common"]) == (4, 4)
    common = figures_of("chords", [case], "common")
    # G D D D as written; the baseline hears Dsus4 D7 D7 Asus4 (it weighs the lowest note,
    # here the bass's fifth below the root, twice): two roots of four
    assert common["given_kept"] == 1.0 and common["root_match"] == 0.5
    real = figures_of("chords", [case], "real")
    assert real["chord_agreement"] == 1.0 and real["in_key"] == 1.0  # G, C and D in G major


def test_chords_in_key_count_triads_in_the_key_signature_s_scale() -> None:
    tune = 'X:1\nM:6/8\nL:1/8\nK:D\n"D"A2d dcA | "C7"G6 | "Bm7"B6 | "^text"A6 | "A7/G"A6 |\n'
    assert chords_in_key(tune) == (3, 4)  # C7's C natural is not in D major; text is no chord
    assert chords_in_key(tune.replace("K:D", "K:Dmix")) == (3, 4)  # A's C sharp is not
    assert chords_in_key(HEAD + "G8 |\n") == (0, 0)


def test_the_join_is_the_step_from_the_gap_into_the_bar_after() -> None:
    """Bars 2-3 of four are the gap (`gap_of(4)`): from its last note g to the a after it is
    a step up; a chord counts by its top note; no note after the gap, no join."""
    assert gap_of(4) == (1, 3) and gap_of(8) == (3, 5)
    tune = "X:1\nM:4/4\nL:1/4\nK:C\nCDEF|GABc|defg|abc'd'|\n"
    assert join_interval(parse_abc(tune), gap_of(4)) == 2
    assert join_interval(parse_abc(tune.replace("defg|", "def[Bg]|").replace("abc", "[Ce]bc")),
                         gap_of(4)) == -3  # g (the top of B g) down to e (the top of C e)
    assert join_interval(parse_abc(tune.replace("abc'd'", "z4")), gap_of(4)) is None


def test_infill_uses_the_music_after_the_gap() -> None:
    tokenizer = CharTokenizer()
    texts = [two_voice_tune(i).split("V:2\n")[0].replace("V:1 clef=treble\nV:2 clef=bass\n", "")
             .replace("V:1\n", "") for i in range(1, 40)]
    examples = fill_examples(texts, 256, 30)
    assert len(examples) == 30 and all(1 <= fill.bars <= 8 for fill in examples)
    # an n-gram that has read these very examples knows each middle after its fill line,
    # not after the bars before the gap
    data = np.array(tokenizer.encode("\n\n".join(fill.text for fill in examples)),
                    dtype=np.uint8)
    ngram = NGram.fit(data, order=9, vocab_size=tokenizer.vocab_size, pad=0)
    figures = infill_figures(ngram, tokenizer, examples, 256, "cpu")
    assert figures["middle_characters"] == sum(len(fill.middle) for fill in examples)
    assert figures["both_sides"] < figures["prefix_only"]


def test_ngram_is_a_distribution_that_learns() -> None:
    tokenizer = CharTokenizer()
    text = np.array(tokenizer.encode("\n" + HEAD + "GABc d2B2 | " * 50), dtype=np.uint8)
    model = NGram.fit(text, order=4, vocab_size=tokenizer.vocab_size, pad=0)
    logits = model(torch.tensor([tokenizer.encode("GABc d2B")])).logits
    assert logits.shape == (1, 1, tokenizer.vocab_size)
    probs = logits.exp()[0, 0]
    assert float(probs.sum()) == pytest.approx(1, abs=1e-6) and bool((probs > 0).all())
    assert tokenizer.alphabet[int(probs.argmax())] == "2"
    noise = np.random.default_rng(0).integers(0, tokenizer.vocab_size, 500)
    assert model.bits_per_char(text) < 1 < math.log2(tokenizer.vocab_size) < \
        model.bits_per_char(noise)
