"""The import picture in docs/development.md is drawn from the code and kept current; engine
never imports bridge; no imports form a cycle; the ground stands on no room; at most 5 floors."""

from __future__ import annotations

import runpy
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "import_graph.py"


@pytest.fixture(scope="module")
def tool() -> dict:
    return runpy.run_path(str(SCRIPT))


def test_the_picture_in_the_doc_is_current() -> None:
    check = subprocess.run([sys.executable, str(SCRIPT), "--check"], cwd=ROOT,
                           capture_output=True, text=True, timeout=60)
    assert check.returncode == 0, check.stderr


def test_engine_never_imports_bridge(tool: dict) -> None:
    edges = tool["graph"]()
    crossing = [(s, t) for s, targets in edges.items() for t in targets
                if s.startswith("engine") and t.startswith("bridge")]
    assert crossing == []


def test_no_import_cycles(tool: dict) -> None:
    assert tool["cycles"](tool["graph"]()) == []


def test_the_graph_sees_every_kind_of_import(tool: dict) -> None:
    edges = tool["graph"]()
    assert "engine.models.cached_decoder" in edges["engine.models.lm"]  # at the top of the file
    assert "engine.models.gpt2_fast" in edges["engine.models.lm"]  # inside a function
    assert "engine.errors" in edges["engine.abc.events"]
    assert "bridge.cli" in edges["bridge.__main__"]


def test_the_ground_imports_no_room(tool: dict) -> None:
    assert tool["ground_climbing"](tool["graph"]()) == []


def test_the_house_has_at_most_five_floors(tool: dict) -> None:
    heights = tool["room_floors"](tool["graph"]())
    assert heights["engine.abc"] == 1  # the ground does not count
    assert max(heights.values()) <= 5, heights


def test_rooms_are_sub_packages_and_the_ground_is_the_top_level(tool: dict) -> None:
    room_of = tool["room_of"]
    assert room_of("engine.abc.text") == "engine.abc"
    assert room_of("bridge.cli") == "bridge.cli"  # a room's own __init__
    assert room_of("engine.errors") == "engine"
    edges = {"engine.errors": set(), "engine.abc.text": {"engine.errors"},
             "engine.files": {"engine.abc.text"}, "bridge.__main__": {"bridge.cli"}}
    assert tool["ground_climbing"](edges) == ["engine.files -> engine.abc.text"]


def test_cycles_and_floors_are_found(tool: dict) -> None:
    edges = {"a": {"b"}, "b": {"c"}, "c": {"b", "d"}, "d": set()}
    assert tool["cycles"](edges) == [["b", "c"]]
    assert tool["floors"](edges) == {"a": 3, "b": 2, "c": 2, "d": 1}


def test_a_stale_picture_is_reported(tool: dict) -> None:
    text = (ROOT / "docs" / "development.md").read_text(encoding="utf-8")
    block = tool["picture"](tool["graph"]())
    assert tool["with_picture"](text, block) == text
    stale = text.replace("engine_models --> engine_abc\n", "")
    assert stale != text
    assert tool["with_picture"](stale, block) == text
