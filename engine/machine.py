"""The hardware a run uses, in words, for run records and reports."""

from __future__ import annotations

import platform

import torch


def machine(device: torch.device, world: int) -> str:
    """The hardware a run trained on, in words: "1 x CPU (x86_64, 1 threads)"."""
    if device.type == "cuda":
        return f"{world} x {torch.cuda.get_device_name(device)}"
    return f"{world} x CPU ({platform.processor() or platform.machine()}, " \
           f"{torch.get_num_threads()} threads)"
