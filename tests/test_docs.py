"""The docs hold together: every link between them leads to a file and a heading of this
repository, the README stays a short front page, and the examples it and the
command-line guide show are what `segue` prints."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md")),
         *sorted((ROOT / "engine" / "checkpoints").glob("*/MODEL_CARD.md"))]
LINK = re.compile(r"\]\(([^)\s]+)\)")


def anchors(page: Path) -> set[str]:
    """GitHub's anchors for the headings of a Markdown page (outside code blocks)."""
    found, in_code = set(), False
    for line in page.read_text(encoding="utf-8").splitlines():
        if line.startswith("```"):
            in_code = not in_code
        heading = re.match(r"#+ (.*)", line)
        if heading and not in_code:
            text = re.sub(r"[^\w\- ]", "", heading.group(1).strip().lower())
            found.add(text.replace(" ", "-"))
    return found


def broken_links(page: Path, text: str | None = None) -> list[str]:
    """The links of `page` (or of `text` read as if it were at `page`) that lead nowhere."""
    broken = []
    for link in LINK.findall(page.read_text(encoding="utf-8") if text is None else text):
        if re.match(r"[a-z]+:", link):
            continue  # a web address
        path, _, anchor = link.partition("#")
        target = (page.parent / path).resolve() if path else page
        if not target.is_relative_to(ROOT) or not target.exists():
            broken.append(f"{link} (no such file in the repository)")
        elif anchor and target.is_file() and anchor not in anchors(target):
            broken.append(f"{link} (no such heading)")
    return broken


def test_every_link_between_the_docs_leads_somewhere() -> None:
    broken = {page.relative_to(ROOT).as_posix(): broken_links(page) for page in PAGES}
    assert {page: links for page, links in broken.items() if links} == {}


def test_the_link_check_finds_a_broken_link() -> None:
    text = ("[a](../reference/http.md#no-such-heading) [b](nowhere.md) [c](../../../pyproject.toml)"
            " [d](../reference/http.md#safety) [e](https://abcnotation.com/)\n")
    assert broken_links(ROOT / "docs" / "guide" / "musescore.md", text) == [
        "../reference/http.md#no-such-heading (no such heading)",
        "nowhere.md (no such file in the repository)",
        "../../../pyproject.toml (no such file in the repository)",
    ]


def test_the_readme_is_a_front_page() -> None:
    lines = (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
    assert len(lines) <= 250
    setup = "bash .ci/setup && .venv/bin/segue continue examples/kesh.abc --bars 8 --seed 1"
    assert lines[4] == "    " + setup
    assert lines[8] == "    bash .ci/run"


def test_the_readme_s_example_is_what_segue_prints(capsys: pytest.CaptureFixture[str]) -> None:
    """The front page's `segue continue` session, run with the shipped model: the same bars
    (a new model means a new example), and the summary line but for its time."""
    from bridge.cli import main

    text = (ROOT / "README.md").read_text(encoding="utf-8")
    command = "segue continue examples/kesh.abc --bars 4 --seed 1"
    shown = text.split(f"    $ {command}\n", 1)[1].split("\n\n", 1)[0].splitlines()
    *abc, summary = [line.removeprefix("    ") for line in shown]
    assert main(command.split()[1:]) == 0
    printed = capsys.readouterr()
    assert printed.out.splitlines() == abc
    timed = re.compile(r"in [\d.]+ s")
    assert timed.sub("in _ s", printed.err.strip().splitlines()[-1]) == \
        timed.sub("in _ s", summary)


# The little files the command-line guide's examples read, as its comments give them.
EXAMPLE_FILES = {
    "jig.abc": ("X:1\nT:A Jig\nM:6/8\nL:1/8\nK:D\n", "A2d dcA|GBd c2A|A2d dcA|G3 G3|"),
    "song.abc": ("X:1\nM:4/4\nL:1/8\nK:G\n",
                 '"G"G2B2 d2B2|"C"c2e2 "D"d2A2|"G"B2G2 "Em"E2G2|"Am"A4 "D"D4|'),
}
SESSION = re.compile(r"^    \$ (segue \w+ (jig|song)\.abc [^#\n]*?)\s*(?:#.*)?$")


def sessions(page: Path) -> list[tuple[str, str, list[str]]]:
    """Each `$ segue COMMAND jig.abc|song.abc ...` example of `page`: its command, the file it
    reads and the lines shown under it (up to a blank line; comments left out), indentation
    removed."""
    lines = page.read_text(encoding="utf-8").splitlines()
    found = []
    for number, line in enumerate(lines):
        if match := SESSION.match(line):
            shown = []
            for below in lines[number + 1:]:
                if not below.strip():
                    break
                if not below.startswith("    # "):
                    shown.append(below.removeprefix("    "))
            found.append((match.group(1), f"{match.group(2)}.abc", shown))
    return found


@pytest.mark.parametrize("page", ["README.md", "docs/guide/command-line.md"])
def test_the_examples_on_small_files_are_what_segue_prints(
        page: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """The jig and song examples, run with the shipped model on the files the guide gives:
    the README shows the last line printed (`after:`, below the jig as `before:`), the guide
    every line (or, after `...`, the last ones)."""
    from bridge.cli import main

    guide = (ROOT / "docs/guide/command-line.md").read_text("utf-8")
    for name, (head, notes) in EXAMPLE_FILES.items():
        assert f"# {name}: {notes}" in guide
        (tmp_path / name).write_text(f"{head}{notes}\n")
    monkeypatch.chdir(tmp_path)
    examples = sessions(ROOT / page)
    assert len(examples) >= 2
    for command, name, shown in examples:
        assert main(command.split()[1:]) == 0, command
        printed = capsys.readouterr().out.splitlines()
        labelled = dict(line.split(maxsplit=1) for line in shown if line.endswith("|"))
        if "after:" in labelled:
            given = EXAMPLE_FILES[name][1].replace(" ", "")
            assert labelled.get("before:", given).replace(" ", "") == given
            assert labelled["after:"] == printed[-1], command
        elif "..." in shown:
            tail = shown[shown.index("...") + 1:]
            assert printed[-len(tail):] == tail, command
        else:
            assert printed == shown, command
