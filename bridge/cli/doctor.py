"""Check this computer for Segue: the model, the device, MIDI, the hosts and their plug-ins.

Reports what Segue finds: whether the model loads and writes music, which device (CPU, CUDA
GPU, Apple MPS) it runs on, the MIDI APIs and ports it can see, MuseScore 3, MuseScore 4 and
FL Studio with their plug-in folders and whether Segue's plug-ins are there, and whether a
`segue serve` is already answering. It ends with what to fix, in plain words, and exits with
status 1 if Segue cannot work at all (the model does not load).

examples:
  segue doctor                          check everything
  segue doctor --model my-model         check another model instead of the default one
  segue doctor --device cuda            check that the GPU works
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import shutil
import sys
import time
import urllib.request
from dataclasses import dataclass

SUMMARY = "check the model, device, MIDI ports and host plug-ins, and say what to fix"
TEST_TUNE = "X:1\nM:4/4\nL:1/8\nK:G\nGABc d2B2|c2A2 B2G2|"
MARKS = {"ok": "ok  ", "note": "--  ", "warn": "warn", "fail": "FAIL"}
GPU_PIP = ("pip install segue into a Python environment with a CUDA PyTorch (see "
           "https://pytorch.org/get-started/locally/)")
# Where each host's program usually is: commands on PATH, else globs for macOS and Windows.
PROGRAMS = {
    "MuseScore 3": (("mscore3", "musescore3", "mscore", "MuseScore3"),
                    ("/Applications/MuseScore 3*.app",
                     "{ProgramFiles}/MuseScore 3/bin/MuseScore3.exe")),
    "MuseScore 4": (("mscore4portable", "musescore4", "MuseScore4", "mscore4"),
                    ("/Applications/MuseScore 4*.app",
                     "{ProgramFiles}/MuseScore 4/bin/MuseScore4.exe")),
    "FL Studio": ((), ("/Applications/FL Studio*.app",
                       "{ProgramFiles}/Image-Line/FL Studio*/FL64.exe")),
}


@dataclass
class Check:
    """One finding: its level (ok, note, warn, fail), what was found, and what to do."""

    level: str
    text: str
    fix: str = ""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", default=None,
                        help="the model to check: a name or a checkpoint folder (default: "
                             "the model shipped with Segue)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or mps")
    parser.add_argument("--port", type=int, default=8765,
                        help="the port where `segue serve` is looked for (default 8765)")


def model_checks(model: str | None, device: str) -> list[Check]:
    """Load the model, write one bar with it, and say on which device."""
    import torch

    from engine.errors import SegueError
    from engine.models.continuation import Engine

    checks = []
    start = time.perf_counter()
    try:
        engine = Engine.load(model, device=device)
        engine.continue_abc(TEST_TUNE, bars=1)
        checks.append(Check("ok", f"model {engine.name} loads and writes music on "
                            f"{engine.device} ({time.perf_counter() - start:.1f} s)"))
    except SegueError as error:
        checks.append(Check("fail", f"the model does not load: {error}",
                            "give a model that exists with --model (`segue serve --model` "
                            "takes the same), train one with `segue train`, or reinstall "
                            "Segue to get its default model back"))
    gpu = "CUDA " + torch.cuda.get_device_name(0) if torch.cuda.is_available() else (
        "Apple MPS" if torch.backends.mps.is_available() else "")
    if gpu:
        checks.append(Check("ok", f"GPU: {gpu} (used when --device is auto)"))
    elif shutil.which("nvidia-smi") and torch.version.cuda is None:
        checks.append(Check("warn", f"an NVIDIA GPU is here, but this PyTorch "
                            f"({torch.__version__}) runs on the CPU only",
                            f"to use the GPU, {GPU_PIP}"))
    else:
        checks.append(Check("note", f"no GPU: Segue runs on the CPU (PyTorch "
                            f"{torch.__version__}), which is enough to continue music"))
    return checks


def midi_checks() -> list[Check]:
    """Every MIDI API python-rtmidi has here, and the ports each one sees."""
    import rtmidi

    from bridge.midi.ports import APIS, list_ports, resolve_api
    from engine.errors import SegueError

    compiled = set(rtmidi.get_compiled_api())
    default = resolve_api("auto")
    checks = []
    for name, constant in APIS.items():
        if getattr(rtmidi, f"API_{constant}", None) not in compiled:
            continue
        label = f"MIDI {name}{' (the default)' if name == default else ''}"
        try:
            inputs, outputs = list_ports(name)
        except SegueError as error:
            if name == default:
                checks.append(Check("warn", f"{label}: unavailable", str(error)))
            else:
                checks.append(Check("note", f"{label}: unavailable ({error})"))
            continue
        ports = ", ".join(dict.fromkeys(inputs + outputs)) or "no ports yet"
        checks.append(Check("ok", f"{label}: {ports}"))
        if name == "winmm" and not inputs:
            checks.append(Check("warn", "Windows MIDI has no ports for Segue to use",
                                'make two loopback ports with loopMIDI ("Segue In" and '
                                '"Segue Out"), then start `segue midi`'))
    if not checks:
        checks.append(Check("warn", "python-rtmidi has no MIDI API here",
                            "reinstall python-rtmidi (pip install --force-reinstall "
                            "python-rtmidi)"))
    return checks


def find_program(host: str) -> str | None:
    """Where the host's program is installed, if Segue can tell."""
    commands, patterns = PROGRAMS[host]
    for command in commands:
        if found := shutil.which(command):
            return found
    program_files = os.environ.get("PROGRAMFILES", "C:/Program Files")
    for pattern in patterns:
        if found_paths := sorted(glob.glob(pattern.format(ProgramFiles=program_files))):
            return found_paths[-1]
    return None


def host_checks() -> list[Check]:
    """Each host: its program, its plug-in folder, and whether Segue's plug-in is there."""
    from bridge.plugins_install import sha256, targets

    checks = []
    for target in targets():
        program = find_program(target.host)
        where = f" ({program})" if program else ""
        if not target.host_found:
            text = f"{target.host}{where}: not started here yet (no {target.host_folder})"
            fix = (f"start {target.host} once, then run `segue install-plugins`"
                   if program else "")
            checks.append(Check("warn" if program else "note", text, fix))
        elif sha256(target.dest) == target.sha256():
            checks.append(Check("ok", f"{target.host}{where}: plug-in installed: "
                                      f"{target.dest}"))
        elif target.dest.exists():
            checks.append(Check("warn", f"{target.host}: {target.dest} is not this Segue's "
                                "plug-in (older, or changed)",
                                "run `segue install-plugins` (with --force if it asks)"))
        else:
            checks.append(Check("warn", f"{target.host}{where}: Segue's plug-in is not in "
                                f"{target.dest.parent}", "run `segue install-plugins`"))
    return checks


def server_check(port: int) -> Check:
    """Whether a Segue server already answers on this machine."""
    url = f"http://127.0.0.1:{port}/v1/health"
    try:
        with urllib.request.urlopen(url, timeout=1) as answer:
            health = json.load(answer)
        return Check("ok", f"`segue serve` answers at {url} (model {health.get('model')} on "
                           f"{health.get('device')})")
    except (OSError, ValueError):
        return Check("note", f"no `segue serve` on port {port}: start it before you use the "
                             "MuseScore plug-in")


def run(args: argparse.Namespace) -> int:
    from engine import __version__

    frozen = "app" if getattr(sys, "frozen", False) else f"Python {sys.version.split()[0]}"
    print(f"Segue {__version__} ({frozen}, {sys.platform})")
    sections = {"Model and device": model_checks(args.model, args.device),
                "MIDI": midi_checks(), "Hosts and plug-ins": host_checks(),
                "Server": [server_check(args.port)]}
    for title, checks in sections.items():
        print(f"\n{title}")
        for check in checks:
            print(f"  {MARKS[check.level]}  {check.text}")
    fixes = [c.fix for checks in sections.values() for c in checks if c.fix]
    if fixes:
        print("\nTo fix:")
        for number, fix in enumerate(fixes, 1):
            print(f"  {number}. {fix}")
    else:
        print("\nNothing to fix.")
    failed = any(c.level == "fail" for checks in sections.values() for c in checks)
    return 1 if failed else 0
