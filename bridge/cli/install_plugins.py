"""Install Segue's plug-ins into MuseScore 3, MuseScore 4 and FL Studio (or remove them).

Copies the MuseScore plug-in (Segue.qml) into Documents/MuseScore3/Plugins and
Documents/MuseScore4/Plugins, with segue-launch.json beside it (where this Segue is, so that
the plug-in can start `segue serve` by itself), and the FL Studio controller script
(device_Segue.py) into
Documents/Image-Line/FL Studio/Settings/Hardware/Segue, using your real Documents folder
(also when Windows keeps it in OneDrive). Hosts that have never run here are skipped unless
you give --all. Running it again changes nothing; after an update of Segue it updates the
plug-ins. A file Segue did not put there is never replaced without --force (or your yes, when
asked). --uninstall removes only the files Segue installed. It ends with what you still have to
switch on in each program.

examples:
  segue install-plugins                 install (or update) the plug-ins
  segue install-plugins --dry-run       show what it would do, change nothing
  segue install-plugins --all           also for hosts not started yet on this computer
  segue install-plugins --uninstall     remove the plug-ins Segue installed
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

SUMMARY = "put the MuseScore and FL Studio plug-ins where those programs find them"
DRY = {"installed": "would install", "updated": "would update", "removed": "would remove"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dry-run", "-n", action="store_true",
                        help="say what would be done, change nothing")
    parser.add_argument("--uninstall", action="store_true",
                        help="remove the plug-in files Segue installed")
    parser.add_argument("--all", action="store_true",
                        help="install for every host, even those not started here yet")
    parser.add_argument("--force", action="store_true",
                        help="replace (or, with --uninstall, remove) files Segue did not write "
                             "or that were changed, without asking")


def ask(path: Path) -> bool:
    """Whether the user lets Segue replace a file it did not write."""
    answer = input(f"{path} is not Segue's file. Replace it? [y/N] ")
    return answer.strip().lower() in ("y", "yes")


def run(args: argparse.Namespace) -> int:
    from bridge.plugins_install import (
        SERVER_NOTE,
        SWITCH_ON,
        install,
        launch_targets,
        manifest_path,
        targets,
        uninstall,
    )

    if args.uninstall:
        steps = uninstall(manifest_path(), dry_run=args.dry_run, force=args.force)
        if not steps:
            print("No Segue plug-ins are installed: nothing to remove.")
    else:
        found = targets()
        for target in found:
            if not (target.host_found or args.all):
                print(f"  {target.host:<12} skipped: not started here yet (no "
                      f"{target.host_folder}); start it once and run this again, or use --all")
        chosen = [t for t in found if t.host_found or args.all]
        interactive = sys.stdin.isatty() and not args.force
        steps = install(chosen + launch_targets(chosen), manifest_path(), dry_run=args.dry_run,
                        force=args.force, ask=ask if interactive else None)
    for step in steps:
        outcome = DRY.get(step.outcome, step.outcome) if args.dry_run else step.outcome
        detail = f" ({step.detail})" if step.detail else ""
        print(f"  {step.host:<12} {outcome}: {step.path}{detail}")
    if args.dry_run:
        print("Dry run: nothing was changed.")
    elif steps and not any(step.changed for step in steps):
        print("Nothing to change.")
    ready = dict.fromkeys(s.host for s in steps
                          if s.outcome in ("installed", "updated", "up to date"))
    if ready and not args.uninstall:
        print("\nStill to switch on:")
        for host in ready:
            print(f"  - {SWITCH_ON[host]}")
        print(SERVER_NOTE)
    return 1 if any(step.outcome == "kept" for step in steps) else 0
