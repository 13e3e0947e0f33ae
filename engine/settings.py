"""The settings of a request, their defaults and their limits: one table.

The engine checks them (`check`, used by `Sampling.check` and `Engine.continue_prompt`); the
CLI, HTTP, OSC and the MIDI bridge take their limits from `LIMITS` and their defaults from
`DEFAULTS`. A transport that needs a tighter limit says so beside the table.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from engine.errors import ParameterError


@dataclass(frozen=True)
class Limit:
    """The values a setting may take: from `low` to `high`, whole numbers only if `whole`,
    `low` itself excluded if `above_low`."""

    low: float
    high: float
    whole: bool = False
    above_low: bool = False

    def allows(self, value: float) -> bool:
        above = self.low < value if self.above_low else self.low <= value
        return above and value <= self.high and (not self.whole or value == int(value))

    def describe(self) -> str:
        """'from 1 to 64', 'above 0 and at most 1'."""
        low, high = (f"{int(x)}" if self.whole else f"{x:g}" for x in (self.low, self.high))
        return f"above {low} and at most {high}" if self.above_low else f"from {low} to {high}"


LIMITS: dict[str, Limit] = {
    "bars": Limit(1, 64, whole=True),  # bars of one answer
    "temperature": Limit(0, 5),  # 0: always the likeliest symbol (greedy)
    "top_p": Limit(0, 1, above_low=True),
    "top_k": Limit(0, 100_000, whole=True),  # 0: off
    "chord_tones": Limit(0, 10),  # 0: off (engine.models.chord_tones)
    "register_lean": Limit(0, 10),  # 0: off (engine.models.register_lean)
    "chord_fit": Limit(0, 10),  # 0: off (engine.models.chord_fit)
    "drafts": Limit(1, 16, whole=True),  # drawn for each answer (engine.models.drafts)
    "seed": Limit(0, 2**63 - 1, whole=True),
    "variations": Limit(1, 8, whole=True),  # answers to one request
}
# Temperature, top_p, top_k and drafts None: the model's own (its config.json "sampling").
DEFAULTS: dict[str, Any] = {"bars": 8, "temperature": None, "top_p": None, "top_k": None,
                            "drafts": None, "seed": None, "variations": 1, "model": None}
MIDI_MAX_BARS = 16  # the MIDI bridge's answers, heard while the musician waits (CC 21: 1-16)


def check(name: str, value: float | None) -> None:
    """ParameterError unless `value` is within the limits of setting `name` (None passes:
    the default)."""
    limit = LIMITS[name]
    if value is not None and not limit.allows(value):
        raise ParameterError(name, f"must be {limit.describe()}, not {value}")
