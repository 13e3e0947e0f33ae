"""The `segue` command: one entry point, one module per subcommand.

Each module in this package gives `SUMMARY` (one line for `segue --help`), a docstring (the
subcommand's own help), `add_arguments(parser)` and `run(args) -> int`. Modules import their
heavy dependencies (torch, music21) inside `run`, so `segue --help` stays instant.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import logging
import os
import sys
from collections.abc import Sequence
from typing import NoReturn

from engine import __version__
from engine.errors import ParameterError, SegueError

# Subcommands in the order `segue --help` lists them: name -> module in this package.
COMMANDS = {
    "continue": "continue_",
    "fill": "fill",
    "accompany": "accompany",
    "convert": "convert",
    "corpus": "corpus",
    "serve": "serve",
    "midi": "midi",
    "train": "train",
    "bench": "bench",
    "eval": "eval",
    "install-plugins": "install_plugins",
    "doctor": "doctor",
}

# Commands that, once they return, leave nothing running and every file closed: `entry` ends
# their process at once.
ONE_SHOT = {"continue", "fill", "accompany", "convert"}

# The model presets (engine.models.model.PRESETS), named here: `--help` need not import torch.
PRESET_NAMES = ("gpt2-6m", "gpt2-60m", "mamba-6m", "mamba-60m")

EPILOG = """\
examples:
  segue continue tune.abc --bars 8            write 8 more bars of tune.abc to the terminal
  segue continue song.musicxml --measures 1-4 --bars 4 -o next.musicxml
  segue fill tune.abc --measures 9-12         write bars 9-12 anew, between the bars around them
  segue accompany melody.abc --add bass       add a bass line under a melody
  segue convert tune.abc tune.musicxml        convert between ABC, MusicXML and MIDI
  segue <command> --help                      everything a command can do

Set SEGUE_DEBUG=1 to see the full traceback of an unexpected error."""


class ToStderr(logging.StreamHandler):
    """A log handler that writes to sys.stderr as it is at each record: a later run in the same
    process (a test's, an app's) may have replaced and closed the stderr of the first."""

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = sys.stderr
        super().emit(record)


def show_engine_notices() -> None:
    """Print the engine's notices (the `segue` logger at INFO, such as which path a Mamba
    model runs on) on standard error as `segue: ...` lines; `segue serve` logs them instead."""
    logger = logging.getLogger("segue")
    if any(h.get_name() == "segue-notices" for h in logger.handlers):
        return
    handler = ToStderr()
    handler.set_name("segue-notices")
    # the engine's own logger only: a server run in the same process (a test's) logs below it
    handler.addFilter(lambda record: record.name == "segue")
    handler.setFormatter(logging.Formatter("segue: %(message)s"))
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The command line: `segue` and every subcommand (or just `only`, which starts faster)."""
    parser = argparse.ArgumentParser(
        prog="segue",
        description="Segue continues music: give it a few bars, it writes the next ones.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"segue {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", title="commands")
    for name, module_name in COMMANDS.items():
        if only is not None and name != only:
            continue
        module = importlib.import_module(f"{__name__}.{module_name}")
        sub_parser = sub.add_parser(
            name,
            help=module.SUMMARY,
            description=module.__doc__,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        module.add_arguments(sub_parser)
        sub_parser.set_defaults(run=module.run)
    return parser


def command_of(argv: Sequence[str]) -> str | None:
    """The subcommand a command line names, if any: its first word that is not an option."""
    return next((word for word in argv if not word.startswith("-")), None)


def main(argv: Sequence[str] | None = None) -> int:
    """Run `segue`; return the process exit status."""
    argv = sys.argv[1:] if argv is None else list(argv)
    chosen = command_of(argv)
    parser = build_parser(chosen if chosen in COMMANDS else None)
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    try:
        return int(args.run(args) or 0)
    except SegueError as error:
        message = error.flag_message() if isinstance(error, ParameterError) else str(error)
        print(f"segue {args.command}: error: {message}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"segue {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as error:  # a fault of ours: one line, the traceback on request
        if os.environ.get("SEGUE_DEBUG"):
            raise
        print(
            f"segue {args.command}: internal error: {type(error).__name__}: {error}\n"
            "  (set SEGUE_DEBUG=1 for the traceback, and please report it)",
            file=sys.stderr,
        )
        return 70


def entry() -> NoReturn:
    """The `segue` program (its console script, `python -m bridge`, the app): `main`, then exit.

    After a one-shot command (ONE_SHOT) the process leaves with `os._exit` once its output is
    flushed: tearing down an interpreter that holds torch and music21 takes about 0.5 s on 2
    cores (bench/cli_wall.py) and does nothing those commands need."""
    status = main()
    if command_of(sys.argv[1:]) not in ONE_SHOT:
        sys.exit(status)
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError):  # a reader that has gone (`segue continue | head`)
            stream.flush()
    os._exit(status)
