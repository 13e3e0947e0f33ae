"""Work in child processes, where a deadline can stop it: `ChildProcess` and `ProcessPool`.

music21 and the model can run for minutes on hostile input, and a thread cannot be stopped,
so the server reads music and runs the model in child processes (the MIDI bridge's composer
too). A child runs `setup(*args)` once (import music21, load a model) and then the functions
it is sent, one at a time, as `function(state, *args)`; functions and arguments travel by
pickle, so they are module-level functions and plain data. A call that overruns its deadline
kills the child and starts a new one (`Overrun`); a child that dies is started again
(`Crashed`). A child that has run `max_jobs` jobs, or whose resident memory passed
`max_rss_mb`, is replaced between jobs, so whatever caches grow inside it stay bounded.

    reader = ChildProcess("segue-reader", setup=setup_reader)
    reader.start()
    score_abc = reader.call(read_tune, text, deadline_s=20)
    reader.close()
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import multiprocessing
import os
import queue
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable
from typing import Any, NoReturn

from engine.errors import SegueError

log = logging.getLogger("segue.processes")
START_LIMIT_S = 600.0  # the longest a child may take to set up (loading a model included)


class RetryLater(SegueError):
    """Work that cannot be done now; `retry_after_s`: about when to try again (kept when the
    error crosses a process boundary)."""

    def __init__(self, message: str, retry_after_s: float = 1.0) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s

    def __reduce__(self) -> tuple[Any, ...]:
        return type(self), (str(self), self.retry_after_s)


class Overrun(RetryLater):
    """A job ran past its deadline; its process was stopped and is starting again (try again
    after about what the process took to start last time)."""


class Crashed(Overrun):
    """The process running a job ended; it is starting again."""


class ChildFault(RuntimeError):
    """A fault of ours inside a child: its traceback's last lines."""


def resident_mb() -> float:
    """This process's resident memory in MB (0 where /proc is not there to say)."""
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, AttributeError):
        return 0.0


def tame_allocator() -> None:
    """Keep glibc from holding freed memory in one heap ("arena") per thread: a server with a
    thread per connection would creep up in resident memory. Two arenas, for this process
    (now) and the children it starts (through the environment); nothing elsewhere."""
    os.environ.setdefault("MALLOC_ARENA_MAX", "2")
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").mallopt(-8, 2)  # M_ARENA_MAX


def return_freed_memory() -> None:
    """Give the pages a job freed back to the system (glibc's malloc_trim; nothing elsewhere):
    freed small blocks otherwise stay in the heap, and a long-lived model process crept up by
    tens of MB over thousands of requests."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def child_main(connection: Any, setup: Callable[..., Any], args: tuple[Any, ...],
               max_memory_mb: float | None) -> NoReturn:
    """The child's life; it ends with os._exit, so no library's exit handler (torch's, JACK's)
    can hang it or print on the way out."""
    code = 1
    try:
        serve(connection, setup, args, max_memory_mb)
        code = 0
    except BaseException:  # a fault of ours outside any job: say what, then end
        traceback.print_exc()
    finally:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        os._exit(code)


def serve(connection: Any, setup: Callable[..., Any], args: tuple[Any, ...],
          max_memory_mb: float | None) -> None:
    """Set up, then answer (function, args) requests until None or EOF."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's; it stops us
    if max_memory_mb:  # a job that wants more gets MemoryError instead of the machine's RAM
        import resource

        limit = int(max_memory_mb * 2**20)
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    try:
        state = setup(*args)
    except SegueError as error:
        connection.send(("raise", error))
        return
    except BaseException:
        connection.send(("fault", traceback.format_exc(limit=-3).strip()))
        return
    connection.send(("ready", getattr(state, "info", None)))
    while True:
        try:
            request = connection.recv()
        except (EOFError, OSError):  # the parent is gone
            return
        if request is None:
            return
        function, call_args = request
        try:
            reply: tuple[str, Any] = ("ok", function(state, *call_args))
        except SegueError as error:
            reply = ("raise", error)
        except Exception:  # a fault of ours: the parent reports it and keeps us
            reply = ("fault", traceback.format_exc(limit=-3).strip())
        try:
            connection.send((*reply, resident_mb()))
        except Exception:  # the reply does not pickle: that too is a fault of ours
            connection.send(("fault", traceback.format_exc(limit=-3).strip(), resident_mb()))
        return_freed_memory()  # after the answer has gone: no caller waits for it


class ChildProcess:
    """One child process that runs functions under deadlines (see the module's docstring).

    `start()` launches it and returns at once; the first `call` (or `ready()`) waits for its
    setup. Calls must not overlap: one caller at a time (Worker's thread, or ProcessPool).
    `max_memory_mb` caps the child's address space (POSIX; not for processes that load
    torch, which reserves far more address space than it uses).
    """

    def __init__(self, name: str, setup: Callable[..., Any], args: tuple[Any, ...] = (), *,
                 max_jobs: int | None = None, max_rss_mb: float | None = None,
                 max_memory_mb: float | None = None) -> None:
        self.name, self.setup, self.args = name, setup, args
        self.max_jobs, self.max_rss_mb, self.max_memory_mb = max_jobs, max_rss_mb, max_memory_mb
        self.closed = False  # closing for good: a child that ends is not started again
        self.context = multiprocessing.get_context("spawn")  # no fork of threads or torch
        self.process: Any = None
        self.connection: Any = None
        self.is_ready = False
        self.info: Any = None
        self.jobs = 0
        self.rss_mb = 0.0
        self.started_at = 0.0
        self.lock = threading.Lock()  # kill() forgets the child in one step
        self.start_s = 5.0  # how long the last start took (the Retry-After of an overrun)

    # --- life cycle -------------------------------------------------------------------
    def start(self) -> None:
        """Launch the child (its setup runs while the caller goes on)."""
        parent, child = self.context.Pipe()
        self.process = self.context.Process(
            target=child_main, args=(child, self.setup, self.args, self.max_memory_mb),
            name=self.name, daemon=True)
        self.process.start()
        child.close()
        self.connection, self.is_ready, self.jobs, self.closed = parent, False, 0, False
        self.started_at = time.monotonic()

    def ready(self, timeout_s: float = START_LIMIT_S) -> Any:
        """Wait for the setup: its state's `info`; its SegueError raised here."""
        if self.process is None:
            if self.closed:
                raise Crashed("the server is stopping", 1.0)
            self.start()
        if self.is_ready:
            return self.info
        if not self.connection.poll(timeout_s):
            self.kill()
            raise SegueError(f"{self.name} did not start within {timeout_s:.0f} s")
        try:
            kind, value, *_ = self.connection.recv()
        except (EOFError, OSError):
            kind, value = "fault", f"it ended (exit status {self.process.exitcode})"
        if kind != "ready":
            self.kill()
            if kind == "raise":
                raise value
            raise ChildFault(f"{self.name} could not start: {value}")
        self.is_ready, self.info = True, value
        self.start_s = time.monotonic() - self.started_at
        return value

    def kill(self) -> None:
        """Stop the child at once (SIGKILL) and forget it. Safe while another thread waits
        on the child (`close` from a stopping server): that thread then gets Crashed."""
        with self.lock:
            process, connection = self.process, self.connection
            self.process = self.connection = None
            self.is_ready = False
        if process is None:
            return
        with contextlib.suppress(OSError, ValueError):
            process.kill()
        process.join(5)
        with contextlib.suppress(OSError):
            connection.close()

    def restart(self) -> None:
        """Kill the child and, unless closing, start a new one."""
        self.kill()
        if not self.closed:
            self.start()

    def close(self, timeout_s: float = 5.0) -> None:
        """Ask the child to end; kill it if it does not within `timeout_s`."""
        self.closed = True
        process, connection = self.process, self.connection
        if process is None:
            return
        with contextlib.suppress(OSError, ValueError, AttributeError):
            connection.send(None)
        process.join(timeout_s)
        self.kill()

    def alive(self) -> bool:
        return self.process is not None and self.process.is_alive()

    # --- work --------------------------------------------------------------------------
    def call(self, function: Callable[..., Any], *args: Any,
             deadline_s: float | None = None) -> Any:
        """`function(state, *args)` in the child, its result or its SegueError.

        Past `deadline_s` seconds (None: no deadline) the child is killed and started again,
        and Overrun is raised; if it dies, Crashed; a fault of ours inside it, ChildFault.
        """
        self.ready()
        connection = self.connection  # kept: `close` in another thread may forget it
        try:
            connection.send((function, args))
            answered = connection.poll(deadline_s)
        except (OSError, ValueError, EOFError, AttributeError):
            self.crashed()
        if not answered:
            self.restart()
            raise Overrun(f"the work took longer than its {deadline_s:g} s deadline and was "
                          "stopped", self.start_s)
        kind, value, rss = self.receive(connection)
        self.jobs += 1
        self.rss_mb = rss
        if (self.max_jobs and self.jobs >= self.max_jobs) or \
                (self.max_rss_mb and rss > self.max_rss_mb):
            log.info("%s replaced after %d jobs at %.0f MB", self.name, self.jobs, rss)
            self.restart()
        if kind == "raise":
            raise value
        if kind == "fault":
            raise ChildFault(value)
        return value

    def receive(self, connection: Any) -> tuple[Any, ...]:
        """The child's next message; Crashed (and a new child) if it ended instead."""
        try:
            return connection.recv()
        except (EOFError, OSError):
            self.crashed()

    def crashed(self) -> NoReturn:
        """The child ended in the middle of something: start a new one and raise Crashed."""
        process = self.process
        code = None if process is None else process.exitcode
        if self.closed:
            self.kill()
            raise Crashed("the server is stopping", 1.0)
        self.restart()
        raise Crashed(f"the process doing this work ended (exit status {code}); it is "
                      "starting again", self.start_s)


class ProcessPool:
    """`size` interchangeable ChildProcesses; a call takes an idle one, or waits for one.

    Busy-ness is the caller's to judge: `call` raises `queue.Empty` if no child came free
    within `wait_s`.
    """

    def __init__(self, size: int, name: str, setup: Callable[..., Any],
                 args: tuple[Any, ...] = (), **options: Any) -> None:
        self.children = [ChildProcess(f"{name}-{i + 1}", setup, args, **options)
                         for i in range(max(1, size))]
        self.idle: queue.Queue[ChildProcess] = queue.Queue()
        self.working = 0
        self.lock = threading.Lock()

    def start(self) -> None:
        """Launch every child, wait until each is set up."""
        for child in self.children:
            child.start()
        for child in self.children:
            child.ready()
            self.idle.put(child)

    def call(self, function: Callable[..., Any], *args: Any, deadline_s: float | None = None,
             wait_s: float | None = None) -> Any:
        child = self.idle.get(timeout=wait_s)
        with self.lock:
            self.working += 1
        try:
            return child.call(function, *args, deadline_s=deadline_s)
        finally:
            with self.lock:
                self.working -= 1
            self.idle.put(child)

    def close(self) -> None:
        for child in self.children:
            child.close()
