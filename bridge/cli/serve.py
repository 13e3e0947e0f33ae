"""Serve Segue to other programs: HTTP for the MuseScore plug-in, OSC for controllers.

One process loads the model once and answers every host. HTTP (JSON under /v1: GET /v1/health,
GET /v1/models, POST /v1/continue) listens on TCP --port; OSC (namespace /segue) on UDP
--osc-port. Both listen on 127.0.0.1 unless --host says otherwise: any other address lets
other machines use Segue, and Segue warns. Requests from web pages are refused either way.
Ctrl-C stops it. docs/reference/http.md and osc.md list every route and address.

--idle-exit MINUTES stops the server once nobody has used it for that long. --detach starts
the server in the background, detached from this terminal (or from the program that ran the
command), and waits until it answers. On standard output it says at once that it is starting,
then, as its last line, where the server runs and where its log is ($SEGUE_HOME/serve.log),
or the error (exit status 1); if a Segue answers there already, it says so and starts nothing.
The MuseScore plug-in starts Segue this way when it finds no server.

examples:
  segue serve                                 HTTP on 127.0.0.1:8765, OSC on 127.0.0.1:8766
  segue serve --model my-model --verbose      serve a model trained with `segue train`
  segue serve --no-osc --port 9999            HTTP only, on another port
  segue serve --detach --idle-exit 30         in the background; stops after 30 idle minutes
  curl -s localhost:8765/v1/health            is it up?
  curl -s localhost:8765/v1/continue -d '{"abc": "X:1\\nL:1/8\\nK:G\\nGABc d2B2|", "bars": 4}'
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bridge.service.server import Server

SUMMARY = "serve the HTTP (MuseScore) and OSC APIs on this machine"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to listen on (default 127.0.0.1: this machine only)")
    parser.add_argument("--port", type=int, default=8765, help="HTTP port, TCP (default 8765)")
    parser.add_argument("--osc-port", type=int, default=8766,
                        help="OSC port, UDP (default 8766; 0 picks a free one)")
    parser.add_argument("--no-osc", action="store_true", help="serve HTTP only")
    parser.add_argument("--model", default=None,
                        help="default model: a name (`GET /v1/models` lists them) or a "
                             "checkpoint folder (default: the model shipped with Segue)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or mps")
    parser.add_argument("--cache", type=int, default=2, metavar="N",
                        help="models kept loaded at once (default 2)")
    parser.add_argument("--queue", type=int, default=32, metavar="N",
                        help="requests that may wait for the model (default 32)")
    parser.add_argument("--max-wait", type=float, default=30.0, metavar="SECONDS",
                        help="longest wait for the model before answering busy (default 30)")
    parser.add_argument("--deadline", type=float, default=120.0, metavar="SECONDS",
                        help="longest the model may work on one request; past it, it is "
                             "stopped and restarted and the request answered 503 "
                             "(default 120; reading the music gets a quarter of it)")
    parser.add_argument("--readers", type=int, default=2, metavar="N",
                        help="processes that read music for requests, side by side "
                             "(default 2)")
    parser.add_argument("--idle-exit", type=float, default=None, metavar="MINUTES",
                        help="stop after this many minutes without a request (default: never)")
    parser.add_argument("--detach", action="store_true",
                        help="run in the background, print where, and return once it answers")
    parser.add_argument("--verbose", "-v", action="store_true", help="log debug messages")


def background_args(args: argparse.Namespace) -> list[str]:
    """The options of `args` for the server that --detach starts (all but --detach)."""
    options = ["--host", args.host, "--port", str(args.port), "--device", args.device,
               "--cache", str(args.cache), "--queue", str(args.queue),
               "--max-wait", str(args.max_wait), "--deadline", str(args.deadline),
               "--readers", str(args.readers)]
    options += ["--no-osc"] if args.no_osc else ["--osc-port", str(args.osc_port)]
    options += ["--model", args.model] if args.model is not None else []
    options += ["--idle-exit", str(args.idle_exit)] if args.idle_exit is not None else []
    return options + (["--verbose"] if args.verbose else [])


def detach(args: argparse.Namespace) -> int:
    """--detach: start the server in the background; the last line on stdout says how it
    went (a program that started the command reads it)."""
    from bridge.launch import LOCAL, health, start_in_background
    from engine.errors import SegueError
    from engine.home import segue_home

    log = segue_home() / "serve.log"
    try:
        if args.port == 0:
            raise SegueError("--detach needs a fixed --port, so that it can tell when the "
                             "server answers")
        if health(args.host, args.port):
            host = LOCAL.get(args.host, args.host)
            print(f"segue serve: already running at http://{host}:{args.port}/v1", flush=True)
            return 0
        print(f"segue serve: starting in the background (log {log})", flush=True)
        line = start_in_background(background_args(args), args.host, args.port, log)
    except SegueError as error:
        print(f"segue serve: error: {error}", flush=True)
        return 1
    print(line, flush=True)
    return 0


def run(args: argparse.Namespace) -> int:
    from bridge.logs import Formatter
    from bridge.processes import tame_allocator
    from bridge.service.server import Server
    from bridge.service.worker import Worker
    from engine.errors import SegueError

    for port in (args.port, args.osc_port):
        if not 0 <= port <= 65535:
            raise SegueError(f"port {port} is not a port number (0-65535)")
    if not (1 <= args.readers <= 16 and args.deadline > 0 and args.max_wait > 0):
        raise SegueError("--readers must be 1 to 16, --deadline and --max-wait above 0")
    if args.idle_exit is not None and not args.idle_exit > 0:
        raise SegueError(f"--idle-exit must be a number of minutes above 0, not {args.idle_exit}")
    if args.detach:
        return detach(args)
    handler = logging.StreamHandler()
    handler.setFormatter(Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        handlers=[handler])
    tame_allocator()
    worker = Worker(args.model, device=args.device, cache_size=args.cache,
                    queue_size=args.queue, max_wait_s=args.max_wait, readers=args.readers,
                    deadline_s=args.deadline, read_deadline_s=args.deadline / 4)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    # Ctrl-C stops it even when started from a script's `&`, which ignores SIGINT (as `segue
    # midi` does too): KeyboardInterrupt, caught below.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        worker.start()
        try:
            server = Server(worker, host=args.host, port=args.port,
                            osc_port=None if args.no_osc else args.osc_port)
        except OSError as error:
            raise SegueError(f"cannot listen on {args.host}: {error.strerror or error}") from None
        host = f"[{args.host}]" if ":" in args.host else args.host
        with server:
            osc = "off" if server.osc_port is None else f"udp://{host}:{server.osc_port}"
            print(f"segue serve: model {worker.default_name} on {worker.device}; "
                  f"HTTP http://{host}:{server.http_port}/v1  OSC {osc}  "
                  "(Ctrl-C stops)", file=sys.stderr, flush=True)
            wait_until_stopped(stop, server, args.idle_exit)
    except KeyboardInterrupt:
        pass
    finally:
        worker.stop()
    print("segue serve: stopped", file=sys.stderr, flush=True)
    return 0


def wait_until_stopped(stop: threading.Event, server: Server,
                       idle_minutes: float | None) -> None:
    """Return on SIGTERM, or once the server has been unused for `idle_minutes`."""
    if idle_minutes is None:
        stop.wait()
        return
    limit = idle_minutes * 60
    while not stop.wait(min(1.0, limit / 4)):
        if server.idle_seconds() >= limit:
            print(f"segue serve: unused for {idle_minutes:g} minutes; stopping",
                  file=sys.stderr, flush=True)
            return
