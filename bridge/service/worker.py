"""The engine side of `segue serve`: the model in a child process behind one bounded queue,
and a pool of reader processes for music21.

HTTP and OSC ask for continuations at once, but a model computes one at a time: a `Worker`
feeds jobs in order, from its own thread, to the model's process (bridge.processes), which
keeps the engines it has loaded in a small LRU cache (`Engines`). Reading music (events,
MusicXML, ABC into a prompt) and writing answers back run in `readers` reader processes, so
no client's parsing runs in the threads that answer other clients. Every job has a deadline
(`deadline_s` for the model, `read_deadline_s` for a reader): past it, its process is killed
and started again, and the request gets `Overrun` (HTTP 503 with Retry-After). A request
that cannot start soon gets `Busy` at once (queue full, or the queue ahead of it would take
longer than `max_wait_s` at the recent pace) or when its wait runs out, never a hang.
The MIDI bridge's composer (bridge/midi/composer.py) is an engine process too. From Python:

    worker = Worker("segue-gpt2-6m").start()
    takes = worker.call(continue_prompt, prompt, 4, Sampling(temperature=0.9), 1, None)
    worker.stop()

Functions sent to the model take the engine first (`function(engine, *args)`), those sent to
a reader take the reader's state first; both must be module-level (they travel by pickle).
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

from bridge.processes import ChildProcess, Crashed, Overrun, ProcessPool, RetryLater
from engine.errors import SegueError

log = logging.getLogger("segue.worker")
DEADLINE_S = 120.0  # the longest the model may work for one request
READ_DEADLINE_S = 30.0  # the longest a reader may work on one request's music
READER_JOBS = 2_000  # a reader is replaced after this many jobs (music21's caches)
MAX_READER_MB = 1_500.0  # ... or when it holds more memory than this
READER_ADDRESS_MB = 4_096.0  # a reader's address space: past it, MemoryError (HTTP 413)
MAX_MODEL_MB = 4_000.0  # the model's process is replaced between jobs above this
CATALOGUE_S = 5.0  # how long the list of models found on disk is trusted


class Busy(RetryLater):
    """The model is taken for longer than a request may wait; try again later."""


class UnknownModel(SegueError):
    """A request named a model this server does not know."""


class ModelUnavailable(SegueError):
    """A model this server should be able to load could not be loaded."""


def describe_model(model: str | None, name: str) -> dict[str, Any]:
    """name, architecture, parameters, shipped, sampling (what a request that sets none
    gets): of a model given by name or path."""
    from engine.models.checkpoint import (
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


class Engines:
    """The model process's state: the engines it has loaded, least recently used first.

    Keys are None for the default model or a model's name; `get` loads from `path`.
    """

    def __init__(self, model: str | None, device: str, cache_size: int) -> None:
        self.model, self.device, self.cache_size = model, device, max(1, cache_size)
        self.cache: OrderedDict[str | None, Any] = OrderedDict()
        default = self.get(None, model)
        self.info = {"name": str(default.name), "device": str(default.device)}
        warm_up(default)

    def get(self, key: str | None, path: str | None) -> Any:
        from engine.models.continuation import Engine

        if key in self.cache:
            self.cache.move_to_end(key)
            return self.cache[key]
        try:
            engine = Engine.load(path, device=self.device)
        except SegueError as error:
            raise ModelUnavailable(str(error)) from None
        self.cache[key] = engine
        while len(self.cache) > self.cache_size:
            self.cache.popitem(last=False)
        return engine


def warm_up(engine: Any) -> None:
    """One bar from a new engine, so that the first request does not pay for first use."""
    from engine.abc.prompt import Prompt
    from engine.models.continuation import Sampling

    prompt = Prompt(head="X:1\nM:4/4\nL:1/8\nK:G\n", body="GABc d2B2 |", meter="4/4",
                    unit="1/8", key="G", tempo=None, voices=1)
    engine.continue_prompt(prompt, 1, Sampling(seed=0))


def on_engine(engines: Engines, key: str | None, path: str | None,
              function: Callable[..., Any], *args: Any) -> Any:
    """In the model's process: `function(engine, *args)` with the engine of that model."""
    return function(engines.get(key, path), *args)


def engine_process(model: str | None, device: str, cache_size: int = 1, *,
                   name: str = "segue-model") -> ChildProcess:
    """A ChildProcess that holds `Engines` (the MIDI bridge's composer is one too)."""
    return ChildProcess(name, Engines, (model, device, cache_size), max_rss_mb=MAX_MODEL_MB)


class Readers:
    """A reader process's state: music21 loaded and warmed up (each of its readers and
    writers used once, so the first request pays no import), nothing kept between jobs."""

    info = None

    def __init__(self) -> None:
        from music21.musicxml.m21ToXml import GeneralObjectExporter

        from engine.abc.events import events_to_score, score_to_events
        from engine.abc.music import parse_abc, quiet
        from engine.abc.prompt import make_prompt
        from engine.abc.recent import recent_abc

        score = parse_abc(recent_abc("X:1\nM:4/4\nL:1/8\nK:G\nGABc d2B2|c2A2 B2G2|\n"))
        make_prompt(events_to_score(score_to_events(score)))
        with quiet():
            GeneralObjectExporter(score).parse()


@dataclass
class Job:
    """A function of an engine and its arguments, the model it needs, its result."""

    function: Callable[..., Any]
    args: tuple[Any, ...]
    model: str | None
    deadline_s: float | None
    future: Future = field(default_factory=Future)
    engine_ms: float = 0.0


class Worker:
    """The model's process, the queue in front of it, and the reader processes.

    `model` is the default model (a name, a checkpoint folder, or None for Segue's default);
    requests may name other models only by the names `engine.models.checkpoint.list_models` knows.
    """

    def __init__(self, model: str | None = None, *, device: str = "auto", cache_size: int = 2,
                 queue_size: int = 32, max_wait_s: float = 30.0, readers: int = 2,
                 deadline_s: float = DEADLINE_S,
                 read_deadline_s: float = READ_DEADLINE_S) -> None:
        self.model, self.device_name = model, device
        self.max_wait_s, self.deadline_s, self.read_deadline_s = \
            max_wait_s, deadline_s, read_deadline_s
        self.process = engine_process(model, device, cache_size)
        self.cache_size = max(1, cache_size)
        self.readers = ProcessPool(readers, "segue-reader", Readers, max_jobs=READER_JOBS,
                                   max_rss_mb=MAX_READER_MB, max_memory_mb=READER_ADDRESS_MB)
        self.jobs: queue.Queue[Job | None] = queue.Queue(maxsize=queue_size)
        self.loaded_keys: OrderedDict[str | None, None] = OrderedDict()  # the process's cache
        self.reads_symbols: dict[str | None, bool] = {}  # by cache key: see chord_symbols
        self.catalogue_seen: tuple[float, list[dict[str, Any]]] = (-math.inf, [])
        self.default_name = ""
        self.default_info: dict[str, Any] = {}
        self.device = ""
        self.running = False  # a job is being computed
        self.pace_s = 0.0  # recent seconds a job (moving average)
        self.stopping = False
        self.thread = threading.Thread(target=self._loop, name="segue-worker", daemon=True)

    # --- life cycle -------------------------------------------------------------------
    def start(self) -> Worker:
        """Start the processes and the thread; SegueError if the model cannot be loaded."""
        self.process.start()
        try:
            info = self.process.ready()
            self.readers.start()
        except BaseException:
            self.process.close()
            self.readers.close()
            raise
        self.default_name, self.device = info["name"], info["device"]
        self.loaded_keys = OrderedDict({None: None})
        self.default_info = describe_model(self.model, self.default_name)
        self.thread.start()
        log.info("model %s loaded on %s", self.default_name, self.device)
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Refuse new work, answer queued jobs with Busy, give the running one `timeout`
        seconds, then end the processes."""
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
        self.process.closed = True
        self.process.close(timeout_s=1)
        self.readers.close()
        if self.thread.ident is not None:  # started (a model that failed to load: never)
            self.thread.join(5)

    # --- asking ------------------------------------------------------------------------
    def submit(self, function: Callable[..., Any], *args: Any, model: str | None = None,
               deadline_s: float | None = None) -> Job:
        """Queue `function(engine, *args)` for `model` (a key from `resolve`); Busy if it
        cannot wait. The job's deadline is `deadline_s`, or the worker's."""
        if self.stopping:
            raise Busy("the server is stopping")
        ahead = self.jobs.qsize() + self.running
        if ahead and ahead * self.pace_s > self.max_wait_s:
            raise Busy(f"{ahead} requests are ahead (about {ahead * self.pace_s:.0f} s); "
                       "try again later", ahead * self.pace_s)
        job = Job(function, args, model, self.deadline_s if deadline_s is None else deadline_s)
        try:
            self.jobs.put_nowait(job)
        except queue.Full:
            raise Busy(f"{ahead} requests are waiting already; try again later",
                       max(1.0, ahead * self.pace_s)) from None
        return job

    def call(self, function: Callable[..., Any], *args: Any, model: str | None = None) -> Any:
        """Run `function(engine, *args)` in the model's process; its result or its error."""
        return self.timed_call(function, *args, model=model)[0]

    def timed_call(self, function: Callable[..., Any], *args: Any,
                   model: str | None = None) -> tuple[Any, float]:
        """`call`, also returning the milliseconds the job spent in the engine."""
        return self.wait(self.submit(function, *args, model=model))

    def wait(self, job: Job, wait_s: float | None = None) -> tuple[Any, float]:
        """The result of a submitted job, and its milliseconds in the engine.

        Busy if the job has not started within `wait_s` seconds (default `max_wait_s`); once
        started, its deadline bounds the rest.
        """
        wait = self.max_wait_s if wait_s is None else wait_s
        try:
            try:
                result = job.future.result(timeout=wait)
            except TimeoutError:
                if job.future.cancel():
                    raise Busy(f"the model stayed busy for {wait:.0f} s; try again later",
                               max(1.0, self.pace_s)) from None
                result = job.future.result()
        except CancelledError:
            raise Busy("the server is stopping") from None
        return result, job.engine_ms

    def read(self, function: Callable[..., Any], *args: Any) -> Any:
        """`function(state, *args)` in a reader process, under the read deadline; Busy if no
        reader comes free within `max_wait_s`."""
        if self.stopping:
            raise Busy("the server is stopping")
        try:
            return self.readers.call(function, *args, deadline_s=self.read_deadline_s,
                                     wait_s=self.max_wait_s)
        except queue.Empty:
            raise Busy(f"every reader stayed busy for {self.max_wait_s:.0f} s; try again "
                       "later") from None

    # --- models ------------------------------------------------------------------------
    def catalogue(self) -> list[dict[str, Any]]:
        """`engine.models.checkpoint.list_models`, read from disk at most every CATALOGUE_S seconds
        (a request resolves its model several times; a model trained meanwhile shows up)."""
        from engine.models.checkpoint import list_models

        seen, models = self.catalogue_seen
        if time.monotonic() - seen > CATALOGUE_S:
            models = list_models()
            self.catalogue_seen = (time.monotonic(), models)
        return models

    def known_models(self) -> list[dict[str, Any]]:
        """The models requests may name: the default first, then those found by name."""
        loaded = self.loaded()
        models = [self.default_info] + [
            {key: m.get(key) for key in ("name", "architecture", "parameters", "shipped",
                                         "sampling")}
            for m in self.catalogue() if m["name"] != self.default_name]
        return [m | {"default": m is self.default_info, "loaded": m["name"] in loaded}
                for m in models]

    def resolve(self, name: str | None) -> str | None:
        """The cache key of a model a request names: None for the default; never a path."""
        if name is None or name == self.default_name:
            return None
        names = [m["name"] for m in self.known_models()]
        if name not in names:
            from engine.models.checkpoint import how_to_make

            unmade = how_to_make(name)
            raise UnknownModel(f"unknown model {name!r}; known models: {', '.join(names)}"
                               + (f"; {unmade}" if unmade else ""))
        return name

    def sampling_defaults(self, name: str | None) -> dict[str, float]:
        """The temperature and top_p model `name` (None: the default) uses where a request
        sets none."""
        key = self.resolve(name)
        wanted = self.default_name if key is None else key
        return next(m["sampling"] for m in self.known_models() if m["name"] == wanted)

    def loaded(self) -> list[str]:
        """Names of the models in the process's cache, most recently used last."""
        return [self.default_name if key is None else key for key in list(self.loaded_keys)]

    def queued(self) -> int:
        """Jobs waiting or running."""
        return self.jobs.qsize() + self.running

    def model_path(self, key: str | None) -> str | None:
        """Where the model of a cache key is: the folder `list_models` found it in (a name
        alone could match a folder in the working directory)."""
        if key is None:
            return self.model
        return next((m["path"] for m in self.catalogue() if m["name"] == key), key)

    def chord_symbols(self, key: str | None) -> bool:
        """Whether the model of a cache key read chord symbols in training (its checkpoint's
        `abc_language`, as `Engine.load` judges it): the readers write its prompts so."""
        if key not in self.reads_symbols:
            from engine.models.checkpoint import read_config, resolve_model

            config = read_config(resolve_model(self.model_path(key)))
            self.reads_symbols[key] = int(config.get("abc_language", 1)) >= 2
        return self.reads_symbols[key]

    def note_loaded(self, key: str | None) -> None:
        """Mirror the process's LRU cache after a job that used model `key`."""
        self.loaded_keys[key] = None
        self.loaded_keys.move_to_end(key)
        while len(self.loaded_keys) > self.cache_size:
            self.loaded_keys.popitem(last=False)

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
                path = self.model_path(job.model)
                result = self.process.call(on_engine, job.model, path, job.function, *job.args,
                                           deadline_s=job.deadline_s)
            except BaseException as error:  # the caller decides what it means
                if isinstance(error, (Overrun, Crashed)):
                    self.loaded_keys = OrderedDict({None: None})
                    log.warning("the model's process was restarted: %s", error)
                elif not isinstance(error, ModelUnavailable):
                    self.note_loaded(job.model)
                job.engine_ms = (time.monotonic() - started) * 1000
                job.future.set_exception(error)
            else:
                self.note_loaded(job.model)
                job.engine_ms = (time.monotonic() - started) * 1000
                job.future.set_result(result)
            finally:
                seconds = time.monotonic() - started
                self.pace_s = seconds if not self.pace_s else 0.7 * self.pace_s + 0.3 * seconds
                self.running = False

