"""The MIDI bridge's answers: the model and music21, in a process of their own.

The bridge's threads (the input reader, the player, the main loop) must each get Python's
interpreter lock within a fraction of a millisecond to keep time. Composing holds that lock for
long stretches (music21, the model's Python, loading libraries, the garbage collector), so
in the same process it would make notes late and, before Segue stopped running Python on
JACK's thread (bridge.midi.ports.Input), made JACK drop MIDI. So the bridge's process keeps
only the light, timed work (clock, phrase, player) and asks `ComposerProcess`, a child
process, for keys and answers."""

from __future__ import annotations

from typing import Any, Protocol


class Composer(Protocol):
    """What the bridge asks of the model's side."""

    def key(self, events: dict) -> tuple[int, str]:
        """(fifths, mode) of the key heard in an events document."""
        ...

    def __call__(self, events: dict, bars: int, temperature: float | None,
                 seed: int | None) -> tuple[dict, str]:
        """The answer to a phrase: (its events document, its ABC)."""
        ...

    def accompany(self, events: dict, add: str, temperature: float | None,
                  seed: int | None) -> tuple[dict, str]:
        """The phrase with a new part ("bass" or "voice") as its last staff: (its events
        document, its ABC)."""
        ...


def check_temperature(engine: Any, temperature: float | None) -> None:
    """SegueError unless the model can sample at `temperature` (None: its default)."""
    from engine.models.continuation import Sampling

    Sampling(temperature=temperature).check()


def hear_key(engine: Any, events: dict) -> tuple[int, str]:
    """(fifths, mode) of the key heard in an events document."""
    from bridge.midi.phrase import estimate_key

    return estimate_key(events)


def compose(engine: Any, events: dict, bars: int, temperature: float | None,
            seed: int | None) -> tuple[dict, str]:
    """The answer to a phrase: events -> music21 -> the model -> music21 -> events. One draft
    (`engine.models.drafts`) whatever the model's default: the answer is played at the next
    bar line, and each further draft would cost as long again."""
    from engine.abc.events import events_to_score, score_to_events
    from engine.models.continuation import Sampling

    score = events_to_score(events)
    [take] = engine.continue_score(score, bars=bars, sampling=Sampling(
        temperature=temperature, seed=seed, drafts=1))
    return score_to_events(take.score()), take.abc


def accompany(engine: Any, events: dict, add: str, temperature: float | None,
              seed: int | None) -> tuple[dict, str]:
    """The phrase with a new part: events -> music21 -> the model (engine.models.infill) ->
    events."""
    from engine.abc.events import events_to_score, score_to_events
    from engine.models.continuation import Sampling
    from engine.models.infill import accompany_score

    [take] = accompany_score(engine, events_to_score(events), add,
                             Sampling(temperature=temperature, seed=seed))
    return score_to_events(take.score()), take.abc


class ComposerProcess:
    """The model in a child process (bridge.service.worker.engine_process, as `segue serve` runs
    it); calls wait for its answer.

    The child loads the model (`model`, `device` as `Engine.load` takes them) before the
    constructor returns, so a bad checkpoint fails here, with the engine's own message. A
    fault inside it is a RuntimeError here; a child that ends is started again.
    """

    def __init__(self, model: str | None, device: str) -> None:
        from bridge.service.worker import engine_process

        self.model = model
        self.process = engine_process(model, device, name="segue-composer")
        self.process.start()
        info = self.process.ready()
        self.name, self.device = info["name"], info["device"]

    def check(self, temperature: float | None) -> None:
        self.ask(check_temperature, temperature)

    def key(self, events: dict) -> tuple[int, str]:
        return self.ask(hear_key, events)

    def __call__(self, events: dict, bars: int, temperature: float | None,
                 seed: int | None) -> tuple[dict, str]:
        return self.ask(compose, events, bars, temperature, seed)

    def accompany(self, events: dict, add: str, temperature: float | None,
                  seed: int | None) -> tuple[dict, str]:
        return self.ask(accompany, events, add, temperature, seed)

    def ask(self, function: Any, *args: Any) -> Any:
        """`function(engine, *args)` in the child; its SegueError raised again here."""
        from bridge.processes import ChildFault
        from bridge.service.worker import on_engine

        try:
            return self.process.call(on_engine, None, self.model, function, *args)
        except ChildFault as error:
            raise RuntimeError(f"in the composer process: {error}") from None

    def close(self) -> None:
        """Ask the child to end; stop it if it does not within a few seconds."""
        self.process.close()
