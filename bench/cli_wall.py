"""Wall time of the `segue` command as a user runs it, cold process each time (target: `segue
continue` under 2 s on 2 CPU cores).

    python bench/cli_wall.py                  # 5 runs of each command
    python bench/cli_wall.py --runs 10 --json out.json

Each run is a new process, as from a shell: `segue --help`, an error path (`segue continue`
of a missing file) and `segue continue examples/kesh.abc --bars 4 --seed 1` with the shipped
model. The load average before and after says how busy the machine was.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
COMMANDS = {
    "segue --help": ["--help"],
    "segue continue (a missing file)": ["continue", "no-such-tune.abc"],
    "segue continue kesh.abc --bars 4": ["continue", str(ROOT / "examples" / "kesh.abc"),
                                         "--bars", "4", "--seed", "1"],
}


def wall(args: list[str]) -> float:
    """Seconds from starting `segue ARGS` to its end."""
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "bridge", *args], cwd=ROOT, capture_output=True,
                   check=False)
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--json", help="also write the figures here")
    args = parser.parse_args()
    load_before = os.getloadavg()[0]
    figures = {}
    for name, command in COMMANDS.items():
        wall(command)  # the first run reads the files from disk; it is not counted
        seconds = sorted(wall(command) for _ in range(args.runs))
        figures[name] = {"p50_s": statistics.median(seconds), "min_s": seconds[0],
                         "max_s": seconds[-1]}
        print(f"{name:36s} p50 {figures[name]['p50_s']:5.2f} s   min {seconds[0]:5.2f} s   "
              f"max {seconds[-1]:5.2f} s")
    loads = {"before": load_before, "after": os.getloadavg()[0]}
    print(f"load average (1 min): {loads['before']:.2f} before, {loads['after']:.2f} after")
    if args.json:
        Path(args.json).write_text(json.dumps({"commands": figures, "load": loads,
                                               "runs": args.runs}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
