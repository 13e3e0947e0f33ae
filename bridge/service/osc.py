"""Segue over OSC (UDP), in the style of AbletonOSC: a request address and a reply address.

    /segue/ping                      -> /segue/ping "ok" version model
    /segue/continue s:abc [i:bars [i:reply port]]
                                     -> /segue/continue/abc s:abc
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

Addresses are routed by python-osc's Dispatcher and taken literally: an OSC address pattern
(`/segue/*`, `/segue/get/{bars,seed}`) gets /segue/error rather than reaching every handler.

Settings: bars (i), temperature (f), top_p (f), top_k (i), drafts (i) (these four nil: the
model's own default; drafts is for continuations only), seed (i; -1 or nil: random), model (s;
"" or nil: the default). They are shared by every OSC client, like the controls of an
instrument. Onsets and durations of notes are in beats (quarter notes) from the first beat of
the continuation (of the whole tune, for fill and accompany); pitches are MIDI numbers (sent as
floats, so the list has one type).
Replies go to the sender's address and port, or to the port it named with /segue/reply_port
(kept per sender address and port, so one client cannot redirect another's replies; a
/segue/continue may also name its reply port as a third argument, for clients like oscsend
that send each message from a new port). Integer settings accept
whole floats too, as many controllers send only floats. Replies are never answered as requests
(ping and get take no arguments, errors get no reply, and the reply port cannot be Segue's
own), so replies sent back to Segue, or to another Segue, cannot bounce forever.
"""

from __future__ import annotations

import logging
import re
import socket
import socketserver
import threading
import time
from collections import OrderedDict
from typing import Any

from pythonosc.dispatcher import Dispatcher
from pythonosc.osc_message import OscMessage
from pythonosc.osc_message_builder import build_msg
from pythonosc.osc_packet import OscPacket

from bridge.logs import printable
from bridge.service.api import (
    ADDS,
    ContinueRequest,
    check_music,
    check_setting,
    notes,
    without_paths,
    write_music,
)
from bridge.service.worker import Busy, Worker
from engine import __version__
from engine.errors import SegueError
from engine.settings import DEFAULTS

log = logging.getLogger("segue.osc")
PREFIX = "/segue"
SETTINGS = ("bars", "temperature", "top_p", "top_k", "drafts", "seed", "model")
INTEGERS = ("bars", "top_k", "drafts", "seed")
MAX_DATAGRAM = 65_507  # the most one UDP datagram carries
MAX_REPLY_PORTS = 1_024  # senders whose reply port is kept (the oldest are forgotten)
MAX_CONTINUING = 32  # continuations in progress at once; more are answered busy
PATTERN = re.compile(r"[*?\[\]{}]")  # what makes an address an OSC address pattern

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


def no_arguments(address: str, args: tuple[Any, ...]) -> None:
    """OscError for a ping or get that carries arguments: a reply sent back, perhaps."""
    if args:
        raise OscError(f"{address} takes no arguments (is this a reply sent back?)")


def describe(error: SegueError) -> str:
    """An error's message, free of server paths; "busy: ..." when the queue turned the
    request away."""
    message = without_paths(str(error))
    return f"busy: {message}" if isinstance(error, Busy) else message


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
        self.reply_ports: OrderedDict[tuple[str, int], int] = OrderedDict()
        self.continuing = threading.BoundedSemaphore(MAX_CONTINUING)
        self.lock = threading.Lock()
        self.last_active = time.monotonic()  # when a message last came
        self.dispatcher = self.routes()

    # --- sending -----------------------------------------------------------------------
    def target(self, client: tuple[str, int]) -> tuple[str, int]:
        """Where replies to `client` go: its address, and its port or the one it named."""
        with self.lock:
            return client[0], self.reply_ports.get(client[:2], client[1])

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
        log.info("OSC %s from %s:%d refused: %s", printable(address or "(not OSC)"),
                 *client[:2], printable(message))
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
                self.dispatch(message, client)
            except SegueError as error:
                self.send_error(client, address, describe(error))
            except Exception:
                log.exception("fault while answering OSC %s", printable(address))
                self.send_error(client, address, "an internal error; see the server log")

    def routes(self) -> Dispatcher:
        """Where each address goes: python-osc's Dispatcher, every handler called with the
        sender, the address and the arguments."""
        dispatcher = Dispatcher()
        for address, handler in ((f"{PREFIX}/ping", self.on_ping),
                                 (f"{PREFIX}/continue", self.on_continue),
                                 (f"{PREFIX}/fill", self.on_rewrite),
                                 (f"{PREFIX}/accompany", self.on_rewrite),
                                 (f"{PREFIX}/reply_port", self.on_reply_port),
                                 (f"{PREFIX}/set/*", self.on_set),
                                 (f"{PREFIX}/get/*", self.on_get)):
            dispatcher.map(address, handler, needs_reply_address=True)
        dispatcher.set_default_handler(self.on_unknown, needs_reply_address=True)
        return dispatcher

    def dispatch(self, message: OscMessage, client: tuple[str, int]) -> None:
        """Act on one message; SegueError says why it cannot. Addresses are taken as they
        are: an OSC address pattern (`/segue/*`) would reach every handler at once."""
        address = message.address
        log.debug("OSC %s %s from %s:%d", printable(address),
                  printable(repr(list(message.params)[:4])[:300]), *client[:2])
        if PATTERN.search(address):
            raise OscError("Segue answers plain addresses, not OSC address patterns "
                           "(* ? [ ] { })")
        for handler in self.dispatcher.handlers_for_address(address):
            handler.invoke(client, message)

    def on_ping(self, client: tuple[str, int], address: str, *args: Any) -> None:
        no_arguments(address, args)
        self.send(client, address, ["ok", __version__, self.worker.default_name])

    def on_continue(self, client: tuple[str, int], address: str, *args: Any) -> None:
        self.start_continue(list(args), client)

    def on_rewrite(self, client: tuple[str, int], address: str, *args: Any) -> None:
        self.start_rewrite(address, list(args), client)

    def on_reply_port(self, client: tuple[str, int], address: str, *args: Any) -> None:
        self.set_reply_port(list(args), client)

    def on_set(self, client: tuple[str, int], address: str, *args: Any) -> None:
        """/segue/set/<setting> value: one shared setting."""
        name = address[len(f"{PREFIX}/set/"):]
        if name not in SETTINGS:
            self.on_unknown(client, address)
        value = osc_setting(name, list(args))
        if name == "model":
            self.worker.resolve(value)
        with self.lock:
            self.settings[name] = value

    def on_get(self, client: tuple[str, int], address: str, *args: Any) -> None:
        """/segue/get/<setting> or /segue/get/models: answered at the same address."""
        no_arguments(address, args)
        name = address[len(f"{PREFIX}/get/"):]
        if name == "models":
            self.send(client, address, [m["name"] for m in self.worker.known_models()])
        elif name in SETTINGS:
            self.send(client, address, [self.get(name)])
        else:
            self.on_unknown(client, address)

    def on_unknown(self, client: tuple[str, int], address: str, *args: Any) -> None:
        raise OscError(f"unknown address; Segue answers {PREFIX}/ping, /continue, /fill, "
                       "/accompany, /set/<setting>, /get/<setting>, /get/models, /reply_port")

    def get(self, name: str) -> Any:
        """A setting as OSC sends it: seed -1 for random, the default model by name, an unset
        temperature, top_p, top_k or drafts as the model's own default."""
        value = self.settings[name]
        if name == "seed":
            return -1 if value is None else value
        if name == "model":
            return value or self.worker.default_name
        if value is None and name in ("temperature", "top_p", "top_k", "drafts"):
            value = self.worker.sampling_defaults(self.settings["model"])[name]  # the model's
        return float(value) if name in ("temperature", "top_p") else value

    def set_reply_port(self, args: list[Any], client: tuple[str, int]) -> None:
        """Send this sender's replies (its address and port) to another port of its address
        (0: back to the sender's own port)."""
        if len(args) != 1:
            raise OscError("/segue/reply_port takes one port number (0: the sender's own)")
        port = check_port(args[0], self.server_address[1])
        with self.lock:
            self.reply_ports.pop(client[:2], None)
            if port:
                self.reply_ports[client[:2]] = port
                while len(self.reply_ports) > MAX_REPLY_PORTS:
                    self.reply_ports.popitem(last=False)
        self.send(client, f"{PREFIX}/reply_port", [port])

    # --- continuing --------------------------------------------------------------------
    def start_continue(self, args: list[Any], client: tuple[str, int]) -> None:
        """Check the request here, then read, continue and answer it from a thread of its
        own (at most MAX_CONTINUING at once: more are answered busy). A third argument names
        the port for this request's replies, errors included."""
        if len(args) == 3 and isinstance(args[2], int) and not isinstance(args[2], bool):
            client = (client[0], check_port(args[2], self.server_address[1]) or client[1])
        try:
            request, model = self.continue_request(args)
        except SegueError as error:
            self.send_error(client, f"{PREFIX}/continue", describe(error))
            return
        if not self.continuing.acquire(blocking=False):
            self.send_error(client, f"{PREFIX}/continue", describe(Busy(
                f"{MAX_CONTINUING} continuations are in progress already; try again later")))
            return
        threading.Thread(target=self.finish_continue, args=(request, model, client),
                         name="segue-osc-continue", daemon=True).start()

    def continue_request(self, args: list[Any]) -> tuple[ContinueRequest, str | None]:
        """The request a /segue/continue carries, checked, and its model's key."""
        if not 1 <= len(args) <= 3 or not isinstance(args[0], str):
            raise OscError("/segue/continue takes an ABC tune (s), and optionally bars (i) "
                           "and a reply port (i)")
        with self.lock:
            settings = dict(self.settings)
        if len(args) >= 2:
            settings["bars"] = osc_setting("bars", args[1:2])
        if len(args) == 3:
            check_port(args[2], self.server_address[1])
        if not args[0].strip():
            raise OscError("/segue/continue: the ABC tune is empty")
        request = ContinueRequest("abc", args[0], **{name: settings[name] for name in SETTINGS})
        check_music(request)
        return request, self.worker.resolve(settings["model"])

    def start_rewrite(self, address: str, args: list[Any], client: tuple[str, int]) -> None:
        """/segue/fill s:abc i:first i:last or /segue/accompany s:abc s:add: check here, then
        answer from a thread of its own as /segue/continue is answered."""
        try:
            request, model = self.rewrite_request(address, args)
        except SegueError as error:
            self.send_error(client, address, describe(error))
            return
        if not self.continuing.acquire(blocking=False):
            self.send_error(client, address, describe(Busy(
                f"{MAX_CONTINUING} continuations are in progress already; try again later")))
            return
        threading.Thread(target=self.finish_continue, args=(request, model, client),
                         kwargs={"address": address}, name="segue-osc-rewrite",
                         daemon=True).start()

    def rewrite_request(self, address: str,
                        args: list[Any]) -> tuple[ContinueRequest, str | None]:
        """The request a /segue/fill or /segue/accompany carries, checked, and its model's
        key."""
        fill = address.endswith("/fill")
        kinds = (str, int, int) if fill else (str, str)
        if len(args) != len(kinds) or not all(isinstance(a, k) and not isinstance(a, bool)
                                              for a, k in zip(args, kinds, strict=True)):
            raise OscError(f"{address} takes an ABC tune (s) and "
                           + ("the first and last bar of the gap (i i)" if fill
                              else "the part to add (s: bass, voice or chords)"))
        if fill and not 0 <= args[1] <= args[2]:
            raise OscError(f"{address}: the gap's bars must be first <= last, from 0")
        if not fill and args[1] not in ADDS:
            raise OscError(f"{address}: the part to add is bass, voice or chords, not "
                           f"{args[1][:50]!r}")
        if not args[0].strip():
            raise OscError(f"{address}: the ABC tune is empty")
        with self.lock:
            settings = dict(self.settings)
        request = ContinueRequest("abc", args[0], **{name: settings[name] for name in SETTINGS})
        if fill:
            request.gap = (args[1], args[2])
        else:
            request.add = args[1]
        check_music(request)
        return request, self.worker.resolve(settings["model"])

    def finish_continue(self, request: ContinueRequest, model: str | None,
                        client: tuple[str, int], address: str = f"{PREFIX}/continue") -> None:
        """Read the tune, continue (fill, accompany) it, send the ABC and the notes (or an
        error)."""
        started = time.monotonic()
        try:
            written = write_music(self.worker, request, model)
            [(abc, _)] = written.takes
            values = self.worker.read(notes, abc)
        except SegueError as error:
            self.send_error(client, address, describe(error))
            return
        except Exception as error:  # a fault of ours (ChildFault: in a worker process)
            log.error("fault while continuing for OSC client %s:%d: %s", *client[:2], error)
            self.send_error(client, address, "an internal error; see the server log")
            return
        finally:
            self.continuing.release()
        self.send(client, f"{address}/abc", [abc])
        self.send(client, f"{address}/notes", values)
        log.info("OSC %s from %s:%d in=%dB bars=%d ok %.1f ms", address, *client[:2],
                 len(request.music), written.bars, (time.monotonic() - started) * 1000)


def check_port(value: Any, own: int) -> int:
    """A reply port from an OSC argument: 0 (the sender's own) to 65535, never Segue's."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 65535:
        raise OscError(f"a reply port is a port number from 0 to 65535, not {value!r}"[:200])
    if value == own:
        raise OscError("the reply port cannot be Segue's own OSC port")
    return value
