"""Report folders for `segue bench` and `segue eval`: figures as JSON, a Markdown table, plots.

    folder = report_folder("bench", out=None)        # reports/bench-20260125-1042/
    write_json(folder / "results.json", figures)
    write_text_atomic(folder / "table.md", markdown_table(["preset", "tokens/s"], rows))
    with figure_file(folder / "loss_vs_step.png") as (figure, axes): axes.plot(...)
"""

from __future__ import annotations

import contextlib
import json
import math
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from engine.files import atomic_path, write_text_atomic


def report_folder(kind: str, out: str | None) -> Path:
    """`out`, or reports/<kind>-<local time>/; created."""
    folder = Path(out) if out else Path("reports") / f"{kind}-{time.strftime('%Y%m%d-%H%M%S')}"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def write_json(path: Path, figures: dict[str, Any]) -> None:
    """The figures as indented JSON (NaN and infinity are written as null)."""
    def clean(value: Any) -> Any:
        if isinstance(value, float) and not math.isfinite(value):
            return None
        if isinstance(value, dict):
            return {str(k): clean(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [clean(v) for v in value]
        return value

    write_text_atomic(path, json.dumps(clean(figures), indent=2) + "\n")


def cell(value: Any) -> str:
    """A table cell: floats with 3, 1 or 0 decimals by size, None as a dash."""
    if value is None:
        return "–"
    if isinstance(value, float):
        digits = 3 if abs(value) < 10 else 1 if abs(value) < 100 else 0
        return f"{value:,.{digits}f}"
    return str(value)


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A GitHub Markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


@contextlib.contextmanager
def figure_file(path: Path, size: tuple[float, float] = (7, 4),
                columns: int = 1) -> Iterator[tuple[Any, Any]]:
    """A matplotlib (figure, axes) saved as a PNG at `path` when the block ends.

    With `columns` > 1, axes is an array of that many side-by-side axes.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, columns, figsize=size)
    try:
        yield figure, axes
        for ax in figure.axes:
            ax.grid(alpha=0.3)
            if ax.get_legend_handles_labels()[0]:
                ax.legend(fontsize=8)
        figure.tight_layout()
        with atomic_path(path) as tmp:
            figure.savefig(tmp, dpi=100, format="png")
    finally:
        plt.close(figure)
