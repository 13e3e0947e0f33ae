"""`segue --help`, each command's --help and the early errors import neither torch nor music21.

Importing torch costs about a second of CPU, music21 a third of one: help and mistakes must
answer at once. Each case runs `segue` in a fresh interpreter and lists the heavy packages
loaded by the time it returns.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bridge.cli import COMMANDS

HEAVY = ("torch", "music21", "transformers", "numpy")
PROBE = """
import sys
from bridge.cli import main
try:
    status = main(sys.argv[1:])
except SystemExit as exit:
    status = exit.code
print(status, [m for m in {heavy!r} if m in sys.modules], file=sys.stderr)
"""


def segue_imports(*args: str, cwd: Path) -> tuple[int, list[str], str]:
    """Run `segue ARGS`; its exit status, the heavy packages it imported, and its stderr."""
    result = subprocess.run([sys.executable, "-c", PROBE.format(heavy=HEAVY), *args],
                            capture_output=True, text=True, timeout=120, cwd=cwd)
    *message, last = result.stderr.strip().split("\n")
    status, modules = last.split(" ", 1)
    return int(status), ast.literal_eval(modules), "\n".join(message)


@pytest.mark.parametrize("args", [["--help"], *([name, "--help"] for name in COMMANDS)],
                         ids=lambda args: " ".join(args))
def test_help_imports_nothing_heavy(args: list[str], tmp_path: Path) -> None:
    status, modules, _ = segue_imports(*args, cwd=tmp_path)
    assert (status, modules) == (0, [])


@pytest.mark.parametrize(("args", "message"), [
    (["continue", "missing.abc"], "missing.abc: no such file"),
    (["continue", "empty.abc"], "the file is empty"),
    (["continue", "tune.txt"], "unknown file type '.txt'"),
    (["continue", "tune.abc", "-o", "out.xyz"], "unknown file type '.xyz'"),
    (["convert", "missing.mid", "out.abc"], "missing.mid: no such file"),
])
def test_early_errors_import_nothing_heavy(args: list[str], message: str,
                                           tmp_path: Path) -> None:
    (tmp_path / "empty.abc").write_text("")
    (tmp_path / "tune.abc").write_text("X:1\nM:3/4\nL:1/8\nK:G\nB2d2g2|f4 e2|\n")
    status, modules, stderr = segue_imports(*args, cwd=tmp_path)
    assert (status, modules) == (1, [])
    assert message in stderr
    assert not (tmp_path / "out.xyz").exists()


TEARDOWN_PROBE = """
import atexit, sys
atexit.register(lambda: print("interpreter torn down", file=sys.stderr))
sys.argv = ["segue", *sys.argv[1:]]
from bridge.cli import entry
entry()
"""


def test_one_shot_commands_leave_at_once_with_their_output_whole(model_path: Path,
                                                                 tmp_path: Path) -> None:
    """`segue continue` ends its process without the interpreter's teardown (0.5 s with torch
    loaded), yet what it printed into a pipe and the file it wrote are whole; a command that is
    not one-shot exits the usual way."""
    tune = tmp_path / "tune.abc"
    tune.write_text("X:1\nM:4/4\nL:1/8\nK:D\nd2fd A2FA|d2fd a2fd|e2ge B2GB|e2ge c2Ac|\n")
    printed = subprocess.run(
        [sys.executable, "-c", TEARDOWN_PROBE, "continue", str(tune), "--bars", "2",
         "--seed", "1", "--model", str(model_path)],
        capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert printed.returncode == 0, printed.stderr
    assert "interpreter torn down" not in printed.stderr
    assert printed.stdout.startswith("X:1\n") and printed.stdout.endswith("]\n")
    assert "segue: 1 x 2 bars in" in printed.stderr
    written = subprocess.run(
        [sys.executable, "-c", TEARDOWN_PROBE, "continue", str(tune), "--bars", "2",
         "--seed", "1", "--model", str(model_path), "-o", str(tmp_path / "next.musicxml")],
        capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert written.returncode == 0, written.stderr
    assert (tmp_path / "next.musicxml").read_text().rstrip().endswith("</score-partwise>")
    other = subprocess.run([sys.executable, "-c", TEARDOWN_PROBE, "install-plugins", "--dry-run"],
                           capture_output=True, text=True, timeout=120, cwd=tmp_path,
                           env={**os.environ, "HOME": str(tmp_path)})
    assert other.returncode == 0, other.stderr
    assert "interpreter torn down" in other.stderr
