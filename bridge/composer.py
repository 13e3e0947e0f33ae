"""The MIDI bridge's answers: the model and music21, in a process of their own.

The bridge's threads (the input reader, the player, the main loop) must each get Python's
interpreter lock within a fraction of a millisecond to keep time. Composing holds that lock for
long stretches (music21, the model's Python, loading libraries, the garbage collector), so
in the same process it would make notes late and, before Segue stopped running Python on
JACK's thread (bridge/midi_ports.Input), made JACK drop MIDI. So the bridge's process keeps
only the light, timed work (clock, phrase, player) and asks `ComposerProcess`, a child
process, for keys and answers."""

from __future__ import annotations

import contextlib
import multiprocessing
import signal
import traceback
from typing import Any, Protocol

from engine.errors import SegueError


class Composer(Protocol):
    """What the bridge asks of the model's side."""

    def key(self, events: dict) -> tuple[int, str]:
        """(fifths, mode) of the key heard in an events document."""
        ...

    def __call__(self, events: dict, bars: int, temperature: float | None,
                 seed: int | None) -> tuple[dict, str]:
        """The answer to a phrase: (its events document, its ABC)."""
        ...


class EngineComposer:
    """The Engine as a Composer: events -> music21 -> the model -> music21 -> events."""

    def __init__(self, engine: Any) -> None:
        self.engine = engine

    def check(self, temperature: float | None) -> None:
        """SegueError unless the model can sample at `temperature` (None: its default)."""
        from engine.continuation import Sampling

        Sampling(temperature=temperature).check()

    def key(self, events: dict) -> tuple[int, str]:
        from bridge.phrase import estimate_key

        return estimate_key(events)

    def __call__(self, events: dict, bars: int, temperature: float | None,
                 seed: int | None) -> tuple[dict, str]:
        from bridge.events import events_to_score, score_to_events
        from engine.continuation import Sampling

        score = events_to_score(events)
        [take] = self.engine.continue_score(score, bars=bars, sampling=Sampling(
            temperature=temperature, seed=seed))
        return score_to_events(take.score()), take.abc


class ComposerProcess:
    """An EngineComposer in a child process; calls wait for its answer.

    The child loads the model (`model`, `device` as `Engine.load` takes them) before the
    constructor returns, so a bad checkpoint fails here, with the engine's own message.
    """

    def __init__(self, model: str | None, device: str) -> None:
        context = multiprocessing.get_context("spawn")  # no fork of rtmidi's or torch's threads
        self.connection, child = context.Pipe()
        self.process = context.Process(target=serve, args=(child, model, device),
                                       name="segue-composer", daemon=True)
        self.process.start()
        child.close()
        self.name, self.device = self.receive()

    def check(self, temperature: float | None) -> None:
        self.ask("check", temperature)

    def key(self, events: dict) -> tuple[int, str]:
        return self.ask("key", events)

    def __call__(self, events: dict, bars: int, temperature: float | None,
                 seed: int | None) -> tuple[dict, str]:
        return self.ask("__call__", events, bars, temperature, seed)

    def ask(self, method: str, *args: Any) -> Any:
        self.connection.send((method, args))
        return self.receive()

    def receive(self) -> Any:
        """The child's next reply; its SegueError raised again here."""
        try:
            outcome, value = self.connection.recv()
        except (EOFError, OSError):
            self.process.join(timeout=5)
            raise RuntimeError(f"the composer process ended (exit status "
                               f"{self.process.exitcode})") from None
        if outcome == "segue":
            raise SegueError(value)
        if outcome == "error":
            raise RuntimeError(f"in the composer process: {value}")
        return value

    def close(self) -> None:
        """Ask the child to end; stop it if it does not within a few seconds."""
        with contextlib.suppress(OSError):  # it has ended already
            self.connection.send(None)
        self.process.join(timeout=5)
        if self.process.is_alive():
            self.process.terminate()
            self.process.join()
        self.connection.close()


def serve(connection: Any, model: str | None, device: str) -> None:
    """The child: load the model, then answer (method, args) requests until None comes."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the bridge's; it closes us
    from engine.continuation import Engine

    try:
        engine = Engine.load(model, device=device)
    except SegueError as error:
        connection.send(("segue", str(error)))
        return
    composer = EngineComposer(engine)
    connection.send(("ok", (engine.name, engine.device)))
    while True:
        try:
            request = connection.recv()
        except EOFError:  # the bridge is gone
            return
        if request is None:
            return
        method, args = request
        try:
            reply = ("ok", getattr(composer, method)(*args))
        except SegueError as error:
            reply = ("segue", str(error))
        except Exception:  # a fault of ours: the bridge reports it and keeps listening
            reply = ("error", traceback.format_exc(limit=-3).strip())
        connection.send(reply)
