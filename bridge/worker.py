"""One thread owns the models; every transport hands it work through one bounded queue.

HTTP and OSC clients ask for continuations at once, but a model computes one at a time: a
`Worker` runs jobs in order on its own thread and keeps the engines it has loaded in a small
LRU cache. A request that cannot start soon gets `Busy` at once (queue full, or the queue
ahead of it would take longer than `max_wait_s` at the recent pace) or when its wait runs out,
never a hang. (The MIDI bridge does not use it: its composer runs the model in a process of
its own, bridge/composer.py.) From Python:

    worker = Worker("segue-gpt2-6m").start()
    [take] = worker.continue_abc(abc_text, bars=4, sampling=Sampling(temperature=0.9))
    worker.stop()
"""

from __future__ import annotations

import contextlib
import logging
import math
import queue
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import CancelledError, Future
from dataclasses import dataclass, field
from typing import Any

from engine.errors import SegueError

log = logging.getLogger("segue.worker")
JOB_LIMIT_S = 600.0  # a job running longer than this is taken for hung


class Busy(SegueError):
    """The model is taken for longer than a request may wait; try again later."""


class UnknownModel(SegueError):
    """A request named a model this server does not know."""


class ModelUnavailable(SegueError):
    """A model this server should be able to load could not be loaded."""


def load_engine(model: str | None, device: str) -> Any:
    """The real loader: `engine.continuation.Engine.load`."""
    from engine.continuation import Engine

    return Engine.load(model, device=device)


def describe_model(model: str | None, name: str) -> dict[str, Any]:
    """name, architecture, parameters, shipped, sampling (what a request that sets none
    gets): of a model given by name or path."""
    from engine.checkpoint import (
        DEFAULT_SAMPLING,
        SHIPPED,
        read_config,
        resolve_model,
        sampling_defaults,
    )

    folder = resolve_model(model)
    config = read_config(folder)
    return {"name": name, "architecture": config["model"].get("architecture"),
            "parameters": config.get("parameters"), "shipped": SHIPPED in folder.parents,
            "sampling": {**DEFAULT_SAMPLING, **sampling_defaults(config, folder)}}


@dataclass
class Job:
    """A function of an engine, the model it needs, and where its result goes."""

    run: Callable[[Any], Any]
    model: str | None
    future: Future = field(default_factory=Future)
    queued_at: float = field(default_factory=time.monotonic)
    engine_ms: float = 0.0


class Worker:
    """The thread that owns the models, and the queue in front of it.

    `model` is the default model (a name, a checkpoint folder, or None for Segue's default);
    requests may name other models only by the names `engine.checkpoint.list_models` knows.
    `loader(model, device)` makes an engine: the real `Engine.load` unless a test swaps it.
    """

    def __init__(self, model: str | None = None, *, device: str = "auto", cache_size: int = 2,
                 queue_size: int = 32, max_wait_s: float = 30.0,
                 loader: Callable[[str | None, str], Any] = load_engine) -> None:
        self.model, self.device_name, self.loader = model, device, loader
        self.cache_size, self.max_wait_s = max(1, cache_size), max_wait_s
        self.jobs: queue.Queue[Job | None] = queue.Queue(maxsize=queue_size)
        self.engines: OrderedDict[str | None, Any] = OrderedDict()
        self.default_name = ""
        self.default_info: dict[str, Any] = {}
        self.device = ""
        self.running = False  # a job is being computed
        self.pace_s = 0.0  # recent seconds a job (moving average)
        self.stopping = False
        self.thread = threading.Thread(target=self._loop, name="segue-worker", daemon=True)

    # --- life cycle -------------------------------------------------------------------
    def start(self) -> Worker:
        """Start the thread and load the default model; SegueError if it cannot be loaded."""
        self.thread.start()
        engine, _ = self.timed_call(lambda engine: engine, wait_s=math.inf)
        self.default_name, self.device = str(engine.name), str(engine.device)
        self.default_info = describe_model(self.model, self.default_name)
        self.pace_s = 0.0  # loading is no measure of a continuation's pace
        log.info("model %s loaded on %s", self.default_name, self.device)
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Refuse new work, answer queued jobs with Busy, let the running one end, join."""
        if self.stopping and not self.thread.is_alive():
            return
        self.stopping = True
        while True:
            try:
                job = self.jobs.get_nowait()
            except queue.Empty:
                break
            if job is not None and job.future.cancel():
                log.debug("dropped a queued job: stopping")
        with contextlib.suppress(queue.Full):
            self.jobs.put(None, timeout=timeout)
        if self.thread.is_alive():
            self.thread.join(timeout)
            if self.thread.is_alive():
                log.warning("the worker is still computing; leaving it behind")

    # --- asking ------------------------------------------------------------------------
    def submit(self, run: Callable[[Any], Any], model: str | None = None) -> Job:
        """Queue `run(engine)` for `model` (a key from `resolve`); Busy if it cannot wait."""
        if self.stopping:
            raise Busy("the server is stopping")
        ahead = self.jobs.qsize() + self.running
        if ahead and ahead * self.pace_s > self.max_wait_s:
            raise Busy(f"{ahead} requests are ahead (about {ahead * self.pace_s:.0f} s); "
                       "try again later")
        job = Job(run, model)
        try:
            self.jobs.put_nowait(job)
        except queue.Full:
            raise Busy(f"{ahead} requests are waiting already; try again later") from None
        return job

    def call(self, run: Callable[[Any], Any], model: str | None = None) -> Any:
        """Run `run(engine)` on the worker and return its result (or raise its error)."""
        return self.timed_call(run, model)[0]

    def timed_call(self, run: Callable[[Any], Any], model: str | None = None, *,
                   wait_s: float | None = None) -> tuple[Any, float]:
        """`call`, also returning the milliseconds the job spent in the engine."""
        return self.wait(self.submit(run, model), wait_s)

    def wait(self, job: Job, wait_s: float | None = None) -> tuple[Any, float]:
        """The result of a submitted job, and its milliseconds in the engine.

        Busy if the job has not started within `wait_s` seconds (default `max_wait_s`;
        `math.inf` waits as long as it takes, as loading at start-up does).
        """
        wait = self.max_wait_s if wait_s is None else wait_s
        try:
            try:
                result = job.future.result(timeout=None if wait == math.inf else wait)
            except TimeoutError:
                if job.future.cancel():
                    raise Busy(f"the model stayed busy for {wait:.0f} s; "
                               "try again later") from None
                result = job.future.result(timeout=JOB_LIMIT_S)
        except CancelledError:
            raise Busy("the server is stopping") from None
        return result, job.engine_ms

    def continue_abc(self, abc: str, *, bars: int = 8, sampling: Any = None, variations: int = 1,
                     model: str | None = None) -> list[Any]:
        """`Engine.continue_abc` on the worker (see engine.continuation)."""
        return self.call(lambda e: e.continue_abc(abc, bars=bars, sampling=sampling,
                                                  variations=variations), self.resolve(model))

    def continue_score(self, score: Any, *, bars: int = 8, sampling: Any = None,
                       variations: int = 1, model: str | None = None) -> list[Any]:
        """`Engine.continue_score` on the worker (see engine.continuation)."""
        return self.call(lambda e: e.continue_score(score, bars=bars, sampling=sampling,
                                                    variations=variations), self.resolve(model))

    # --- models ------------------------------------------------------------------------
    def known_models(self) -> list[dict[str, Any]]:
        """The models requests may name: the default first, then those found by name."""
        from engine.checkpoint import list_models

        loaded = self.loaded()
        models = [self.default_info] + [
            {key: m.get(key) for key in ("name", "architecture", "parameters", "shipped",
                                         "sampling")}
            for m in list_models() if m["name"] != self.default_name]
        return [m | {"default": m is self.default_info, "loaded": m["name"] in loaded}
                for m in models]

    def resolve(self, name: str | None) -> str | None:
        """The cache key of a model a request names: None for the default; never a path."""
        if name is None or name == self.default_name:
            return None
        names = [m["name"] for m in self.known_models()]
        if name not in names:
            raise UnknownModel(f"unknown model {name!r}; known models: {', '.join(names)}")
        return name

    def sampling_defaults(self, name: str | None) -> dict[str, float]:
        """The temperature and top_p model `name` (None: the default) uses where a request
        sets none."""
        key = self.resolve(name)
        wanted = self.default_name if key is None else key
        return next(m["sampling"] for m in self.known_models() if m["name"] == wanted)

    def loaded(self) -> list[str]:
        """Names of the models in the cache, most recently used last."""
        return [self.default_name if key is None else key for key in list(self.engines)]

    def queued(self) -> int:
        """Jobs waiting or running."""
        return self.jobs.qsize() + self.running

    def _engine(self, key: str | None) -> Any:
        """The engine for a cache key, loaded if need be: a named model from the folder
        `list_models` found it in (a name alone could match a folder in the working directory)."""
        from engine.checkpoint import list_models

        if key in self.engines:
            self.engines.move_to_end(key)
            return self.engines[key]
        started = time.monotonic()
        model = self.model if key is None else next(
            (m["path"] for m in list_models() if m["name"] == key), key)
        try:
            engine = self.loader(model, self.device_name)
        except SegueError as error:
            raise ModelUnavailable(str(error)) from None
        log.info("loaded model %s in %.1f s", engine.name, time.monotonic() - started)
        self.engines[key] = engine
        while len(self.engines) > self.cache_size:
            evicted, _ = self.engines.popitem(last=False)
            log.info("unloaded model %s (cache of %d)", evicted or self.default_name,
                     self.cache_size)
        return engine

    # --- the thread --------------------------------------------------------------------
    def _loop(self) -> None:
        while True:
            job = self.jobs.get()
            if job is None:
                return
            if not job.future.set_running_or_notify_cancel():
                continue  # the caller gave up waiting
            self.running = True
            started = time.monotonic()
            try:
                result = job.run(self._engine(job.model))
            except BaseException as error:  # the caller decides what it means
                job.engine_ms = (time.monotonic() - started) * 1000
                job.future.set_exception(error)
            else:
                job.engine_ms = (time.monotonic() - started) * 1000
                job.future.set_result(result)
            finally:
                seconds = time.monotonic() - started
                self.pace_s = seconds if not self.pace_s else 0.7 * self.pace_s + 0.3 * seconds
                self.running = False
