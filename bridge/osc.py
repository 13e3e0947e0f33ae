"""Segue over OSC (UDP), in the style of AbletonOSC: a request address and a reply address.

    /segue/ping                      -> /segue/ping "ok" version model
    /segue/continue s:abc [i:bars]   -> /segue/continue/abc s:abc
                                        /segue/continue/notes f:pitch f:onset f:duration ...
    /segue/fill s:abc i:first i:last -> /segue/fill/abc s:abc (the whole tune, bars first-last
                                        written anew), /segue/fill/notes f:pitch f:onset ...
    /segue/accompany s:abc s:add     -> /segue/accompany/abc s:abc (add: bass, voice, chords),
                                        /segue/accompany/notes f:pitch f:onset f:duration ...
    /segue/set/<setting> value       (no reply; /segue/error if refused)
    /segue/get/<setting>             -> /segue/get/<setting> value
    /segue/get/models                -> /segue/get/models s:name ...
    /segue/reply_port i:port         -> /segue/reply_port i:port (at the new port; 0: sender's)
    anything wrong                   -> /segue/error s:address s:message

Settings: bars (i), temperature (f), top_p (f), top_k (i) (these three nil: the model's own
default), seed (i; -1 or nil: random), model (s; "" or nil: the default). They are shared by
every OSC client, like the controls of an instrument. Onsets and durations of notes are in
beats (quarter notes) from the first beat of the continuation (of the whole tune, for fill and
accompany); pitches are MIDI numbers (sent as floats, so the list has one type).
Replies go to the sender's address, or to the port it named with /segue/reply_port (one
port per client address: oscsend sends each message from a new port). Integer settings accept
whole floats too, as many controllers send only floats. Replies are never answered as requests
(ping and get take no arguments, errors get no reply, and the reply port cannot be Segue's
own), so replies sent back to Segue, or to another Segue, cannot bounce forever.
"""

from __future__ import annotations

import logging
import socket
import socketserver
import threading
import time
from typing import Any

from pythonosc.osc_message_builder import build_msg
from pythonosc.osc_packet import OscPacket

from bridge.api import DEFAULTS, check_abc, check_setting
from bridge.worker import Busy, Job, Worker
from engine import __version__
from engine.errors import SegueError

log = logging.getLogger("segue.osc")
PREFIX = "/segue"
SETTINGS = ("bars", "temperature", "top_p", "top_k", "seed", "model")
INTEGERS = ("bars", "top_k", "seed")
MAX_DATAGRAM = 65_507  # the most one UDP datagram carries


class OscError(SegueError):
    """A message Segue cannot act on."""


def osc_setting(name: str, args: list[Any]) -> Any:
    """The setting value carried by a /segue/set message's arguments, checked."""
    if len(args) != 1:
        raise OscError(f"/segue/set/{name} takes one argument, not {len(args)}")
    value = args[0]
    if name in INTEGERS and isinstance(value, float) and value.is_integer():
        value = int(value)
    if name == "seed" and value in (None, -1):
        return None
    if name == "model" and value in (None, ""):
        return None
    return check_setting(name, value)


def describe(error: SegueError) -> str:
    """An error's message; "busy: ..." when the queue turned the request away."""
    return f"busy: {error}" if isinstance(error, Busy) else str(error)


def notes_of(score: Any) -> list[float]:
    """pitch, onset, duration (beats) of every sounding note of every part, flattened, by
    onset (grace notes, which take no time, are left out)."""
    from engine.music import note_events

    triples = sorted(t for part in note_events(score) for t in part if t[1] > 0)
    return [float(x) for onset, length, pitch in triples for x in (pitch, onset, length)]


class Handler(socketserver.BaseRequestHandler):
    """One datagram, passed to the server."""

    server: OscServer

    def handle(self) -> None:
        self.server.receive(self.request[0], self.client_address)


class OscServer(socketserver.UDPServer):
    """The OSC side of `segue serve`: quick messages on its own thread, continuations
    queued to the Worker and answered from a waiting thread each."""

    max_packet_size = 65_535

    def __init__(self, worker: Worker, host: str, port: int) -> None:
        self.address_family = socket.AF_INET6 if ":" in host else socket.AF_INET
        super().__init__((host, port), Handler)
        self.worker = worker
        self.settings: dict[str, Any] = {name: DEFAULTS[name] for name in SETTINGS}
        self.reply_ports: dict[str, int] = {}
        self.lock = threading.Lock()
        self.last_active = time.monotonic()  # when a message last came

    # --- sending -----------------------------------------------------------------------
    def target(self, client: tuple[str, int]) -> tuple[str, int]:
        """Where replies to `client` go: its address, or the reply port it named."""
        return client[0], self.reply_ports.get(client[0], client[1])

    def send(self, client: tuple[str, int], address: str, args: list[Any]) -> None:
        """Send one message to the client (an error instead if it would not fit a datagram)."""
        data = build_msg(address, args).dgram
        if len(data) > MAX_DATAGRAM:
            address, args = f"{PREFIX}/error", [address, f"the answer ({len(data)} bytes) is "
                                                "too large for one UDP datagram; ask for fewer "
                                                "bars"]
            data = build_msg(address, args).dgram
        try:
            self.socket.sendto(data, self.target(client))
        except OSError as error:
            log.info("OSC reply to %s failed: %s", self.target(client), error)

    def send_error(self, client: tuple[str, int], address: str, message: str) -> None:
        """Log and send /segue/error address message."""
        log.info("OSC %s from %s:%d refused: %s", address or "(not OSC)", *client[:2], message)
        self.send(client, f"{PREFIX}/error", [address, message])

    # --- receiving ---------------------------------------------------------------------
    def receive(self, data: bytes, client: tuple[str, int]) -> None:
        """One datagram: a message or a bundle of them (time tags are not waited for)."""
        self.last_active = time.monotonic()
        try:
            messages = [timed.message for timed in OscPacket(data).messages]
        except Exception:  # python-osc raises several kinds for junk
            self.send_error(client, "", f"not an OSC message ({len(data)} bytes)")
            return
        for message in messages:
            address = message.address
            if address == f"{PREFIX}/error":
                continue  # never answer an error with an error
            try:
                self.dispatch(address, list(message.params), client)
            except SegueError as error:
                self.send_error(client, address, describe(error))

    def dispatch(self, address: str, args: list[Any], client: tuple[str, int]) -> None:
        """Act on one message; SegueError says why it cannot."""
        log.debug("OSC %s %r from %s:%d", address, args[:4], *client[:2])
        if args and (address == f"{PREFIX}/ping" or address.startswith(f"{PREFIX}/get/")):
            raise OscError(f"{address} takes no arguments (is this a reply sent back?)")
        if address == f"{PREFIX}/ping":
            self.send(client, address, ["ok", __version__, self.worker.default_name])
        elif address == f"{PREFIX}/continue":
            self.start_continue(args, client)
        elif address in (f"{PREFIX}/fill", f"{PREFIX}/accompany"):
            self.start_rewrite(address, args, client)
        elif address == f"{PREFIX}/reply_port":
            self.set_reply_port(args, client)
        elif address == f"{PREFIX}/get/models":
            self.send(client, address, [m["name"] for m in self.worker.known_models()])
        elif address.startswith(f"{PREFIX}/set/") and address[11:] in SETTINGS:
            name = address[11:]
            value = osc_setting(name, args)
            if name == "model":
                self.worker.resolve(value)
            with self.lock:
                self.settings[name] = value
        elif address.startswith(f"{PREFIX}/get/") and address[11:] in SETTINGS:
            self.send(client, address, [self.get(address[11:])])
        else:
            raise OscError(f"unknown address; Segue answers {PREFIX}/ping, /continue, /fill, "
                           "/accompany, /set/<setting>, /get/<setting>, /get/models, /reply_port")

    def get(self, name: str) -> Any:
        """A setting as OSC sends it: seed -1 for random, the default model by name, an unset
        temperature, top_p or top_k as the model's own default."""
        value = self.settings[name]
        if name == "seed":
            return -1 if value is None else value
        if name == "model":
            return value or self.worker.default_name
        if value is None and name in ("temperature", "top_p", "top_k"):
            value = self.worker.sampling_defaults(self.settings["model"])[name]  # the model's
        return float(value) if name in ("temperature", "top_p") else value

    def set_reply_port(self, args: list[Any], client: tuple[str, int]) -> None:
        """Send this client address's replies to another port (0: back to the sender)."""
        if len(args) != 1 or isinstance(args[0], bool) or not isinstance(args[0], int) \
                or not 0 <= args[0] <= 65535:
            raise OscError("/segue/reply_port takes one port number (0: the sender's own)")
        if args[0] == self.server_address[1]:
            raise OscError("the reply port cannot be Segue's own OSC port")
        with self.lock:
            if args[0]:
                self.reply_ports[client[0]] = args[0]
            else:
                self.reply_ports.pop(client[0], None)
        self.send(client, f"{PREFIX}/reply_port", [args[0]])

    # --- continuing --------------------------------------------------------------------
    def start_continue(self, args: list[Any], client: tuple[str, int]) -> None:
        """Check the request, queue it (Busy at once if the queue is full), answer later."""
        if not 1 <= len(args) <= 2 or not isinstance(args[0], str):
            raise OscError("/segue/continue takes an ABC tune (s) and optionally bars (i)")
        with self.lock:
            settings = dict(self.settings)
        if len(args) == 2:
            settings["bars"] = osc_setting("bars", args[1:])
        abc = args[0]
        check_abc(abc)
        model = self.worker.resolve(settings["model"])
        bars = settings["bars"]

        def run(engine: Any) -> list[Any]:
            from engine.continuation import Sampling

            sampling = Sampling(temperature=settings["temperature"], top_p=settings["top_p"],
                                top_k=settings["top_k"], seed=settings["seed"])
            return engine.continue_abc(abc, bars=bars, sampling=sampling)

        started = time.monotonic()
        job = self.worker.submit(run, model)
        threading.Thread(target=self.finish_continue, args=(job, client, started, len(abc), bars),
                         name="segue-osc-continue", daemon=True).start()

    def start_rewrite(self, address: str, args: list[Any], client: tuple[str, int]) -> None:
        """/segue/fill s:abc i:first i:last or /segue/accompany s:abc s:add: check, queue,
        answer later as /segue/continue is answered."""
        fill = address.endswith("/fill")
        kinds = (str, int, int) if fill else (str, str)
        if len(args) != len(kinds) or not all(isinstance(a, k) and not isinstance(a, bool)
                                              for a, k in zip(args, kinds, strict=True)):
            raise OscError(f"{address} takes an ABC tune (s) and "
                           + ("the first and last bar of the gap (i i)" if fill
                              else "the part to add (s: bass, voice or chords)"))
        if fill and not 0 <= args[1] <= args[2]:
            raise OscError(f"{address}: the gap's bars must be first <= last, from 0")
        if not fill and args[1] not in ("bass", "voice", "chords"):
            raise OscError(f"{address}: the part to add is bass, voice or chords, not "
                           f"{args[1]!r}")
        with self.lock:
            settings = dict(self.settings)
        abc = args[0]
        check_abc(abc)
        model = self.worker.resolve(settings["model"])

        def run(engine: Any) -> list[Any]:
            from engine.continuation import Sampling
            from engine.infill import accompany_score, fill_score
            from engine.music import parse_abc

            sampling = Sampling(temperature=settings["temperature"], top_p=settings["top_p"],
                                top_k=settings["top_k"], seed=settings["seed"])
            if fill:
                return fill_score(engine, parse_abc(abc), (args[1], args[2]), sampling)
            return accompany_score(engine, parse_abc(abc), args[1], sampling)

        started = time.monotonic()
        job = self.worker.submit(run, model)
        threading.Thread(target=self.finish_continue, args=(job, client, started, len(abc), 0),
                         kwargs={"address": address}, name="segue-osc-rewrite",
                         daemon=True).start()

    def finish_continue(self, job: Job, client: tuple[str, int], started: float, size: int,
                        bars: int, address: str = f"{PREFIX}/continue") -> None:
        """Wait for the job, then send the ABC and the notes (or an error) to the client."""
        try:
            [result], _ = self.worker.wait(job)
            notes = notes_of(result.score())
        except SegueError as error:
            self.send_error(client, address, describe(error))
            return
        except Exception:
            log.exception("fault while continuing for OSC client %s:%d", *client[:2])
            self.send_error(client, address, "an internal error; see the server log")
            return
        self.send(client, f"{address}/abc", [result.abc])
        self.send(client, f"{address}/notes", notes)
        log.info("OSC %s from %s:%d in=%dB bars=%d ok %.1f ms", address, *client[:2], size, bars,
                 (time.monotonic() - started) * 1000)

