"""Segue's HTTP API (`/v1`), and `Server`, which runs it and the OSC server beside one Worker.

    GET  /v1/health     {"status": "ok", "version", "model", "device", "loaded", "queue"}
    GET  /v1/models     {"default": name, "models": [{"name", "architecture", ...}]}
    POST /v1/continue   {"events" | "musicxml" | "abc": ..., "bars", "temperature", ...}
    POST /v1/fill       the same music and sampling fields, and "gap": [first, last]
    POST /v1/accompany  the same music and sampling fields, and "add": "bass"|"voice"|"chords"

The standard library's ThreadingHTTPServer is enough for a loopback service: one thread per
connection, requests read and checked there, the music read and the model run in the
Worker's processes (bridge.service.worker), so no request's work runs in a thread that answers
others. Safety: it listens on 127.0.0.1 unless told otherwise; a request whose Host is not
this machine (DNS rebinding) or that comes from a web page (an Origin that is not local, or
Sec-Fetch-Site cross-site) gets 403; bodies are capped at MAX_BODY; nothing in a request can
name a file. A connection must send its request line, headers and body within REQUEST_TIME_S
in all (slow senders are cut off); at most MAX_CONNECTIONS are open, MAX_PER_ADDRESS of them
from one address, and past either cap a few more are let in to be answered health or "busy".
Errors are `{"error": {"code", "message"}}`: 4xx for bad input, 503 with Retry-After when the
model is busy or a job overran its deadline, 500 only for faults of ours; no error names a
file of the server's.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import logging
import math
import socket
import threading
import time
from collections.abc import Callable
from functools import partial
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

from bridge.logs import printable
from bridge.processes import ChildFault, Crashed, Overrun
from bridge.service.api import (
    BadMusic,
    BadRequest,
    answer_music,
    check_music,
    parse_accompany_request,
    parse_fill_request,
    parse_request,
    without_paths,
    write_music,
)
from bridge.service.worker import Busy, ModelUnavailable, UnknownModel, Worker
from engine import __version__
from engine.abc.limits import TooLarge
from engine.errors import SegueError

log = logging.getLogger("segue.server")
MAX_BODY = 2 * 1024 * 1024
MAX_CONNECTIONS = 64  # connections served at once
MAX_PER_ADDRESS = 32  # ... from one client address
MAX_OVERFLOW = 8  # connections past a cap, let in to be answered health or "busy"
REQUEST_TIME_S = 10.0  # to send request line, headers and body (or to start the next one)
OVERFLOW_TIME_S = 2.0  # ... for a connection let in past a cap
LINGER_S = 2.0  # the longest pause of a client still sending after its answer
LOCAL_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
# Errors a request can cause: (class, HTTP status, code), the first that matches. A
# SegueError from the engine is about the music it was given.
ERRORS = ((BadRequest, 400, "bad_request"), (UnknownModel, 400, "unknown_model"),
          (TooLarge, 413, "too_large"), (BadMusic, 422, "bad_music"), (Busy, 503, "busy"),
          (Crashed, 503, "crashed"), (Overrun, 503, "timeout"),
          (ModelUnavailable, 500, "model_unavailable"), (SegueError, 422, "bad_music"))


class HTTPError(Exception):
    """An answer that is an error: status, code, message, and when to try again (503)."""

    def __init__(self, status: int, code: str, message: str,
                 retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.retry_after_s = retry_after_s


def is_loopback(host: str) -> bool:
    """Whether a listening address is reachable from this machine only."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def host_name(header: str) -> str:
    """The name in a Host header, without port: '[::1]:8765' -> '::1'."""
    header = header.strip().lower()
    if header.startswith("["):
        return header[1:].split("]", 1)[0]
    return header.rsplit(":", 1)[0].rstrip(".") if header.count(":") == 1 else header.rstrip(".")


def is_ip(name: str) -> bool:
    """Whether `name` is an IP address (v4 or v6), not a host name."""
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def url_part(url: str, part: str) -> str | None:
    """A part of a URL ("path", "hostname"); None where the URL cannot be split."""
    try:
        return getattr(urlsplit(url), part)
    except ValueError:  # "http://[::1" and the like
        return None


def error_body(code: str, message: str) -> dict[str, Any]:
    """The JSON body of an error answer."""
    return {"error": {"code": code, "message": message}}


class Handler(BaseHTTPRequestHandler):
    """One connection: route, check, answer JSON, log one line a request."""

    server: HTTPServer
    raw_requestline: bytes  # set by the base class as it reads a request
    protocol_version = "HTTP/1.1"
    server_version = f"segue/{__version__}"
    sys_version = ""
    timeout = REQUEST_TIME_S  # seconds a connection may stay silent
    overflow = False  # let in past a connection cap: health, or "busy"

    def handle_one_request(self) -> None:
        """One request, its request line, headers and body due within the server's
        `request_time_s` (`overflow_time_s` past a cap)."""
        self.server.deadlines.arm(self.connection, self.server.overflow_time_s if self.overflow
                                  else self.server.request_time_s)
        try:
            super().handle_one_request()
        finally:
            self.server.deadlines.disarm(self.connection)
        if self.overflow:
            self.close_connection = True

    def do_GET(self) -> None:
        """Every method comes here; `route` answers 405 where it does not belong."""
        started = time.monotonic()
        used = url_part(self.path, "path") != "/v1/health"  # asking whether it is up is no use
        if used:
            self.server.last_active = started
        self.notes: dict[str, Any] = {}
        retry_after = None
        try:
            status, body = self.route()
        except HTTPError as error:
            status, body = error.status, error_body(error.code, error.message)
            retry_after = error.retry_after_s
        except Exception:
            log.exception("fault while answering %s %s", self.command, printable(self.path[:80]))
            status, body = 500, error_body("internal", "an internal error; see the server log")
        if status >= 400:
            self.close_connection = True  # a body may be left unread
        self.send_json(status, body, retry_after)
        if used:
            self.server.last_active = time.monotonic()
        extras = "".join(f" {key}={value}" for key, value in self.notes.items())
        log.info("%s %s %s %d%s %.1f ms", self.client_address[0], self.command,
                 printable(self.path[:80]), status, extras, (time.monotonic() - started) * 1000)

    do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = do_HEAD = do_GET

    def route(self) -> tuple[int, dict[str, Any]]:
        """Check the caller, find the route, answer it: (status, body)."""
        self.check_caller()
        routes: dict[str, tuple[str, Callable[[], dict[str, Any]]]] = {
            "/v1/health": ("GET", self.health), "/v1/models": ("GET", self.models),
            "/v1/continue": ("POST", self.continue_),
            "/v1/fill": ("POST", partial(self.answer, parse_fill_request)),
            "/v1/accompany": ("POST", partial(self.answer, parse_accompany_request))}
        path = url_part(self.path, "path") or self.path
        if path not in routes:
            raise HTTPError(404, "not_found", f"no such address {path[:100]!r}; the API is "
                            "GET /v1/health, GET /v1/models, POST /v1/continue, "
                            "POST /v1/fill, POST /v1/accompany")
        method, answer = routes[path]
        if self.command != method:
            raise HTTPError(405, "method_not_allowed", f"{path} takes {method} only")
        if self.overflow and path != "/v1/health":
            raise HTTPError(503, "busy", "too many connections are open; try again shortly",
                            retry_after_s=1)
        return 200, answer()

    def check_caller(self) -> None:
        """403 unless the request comes from this machine, and not from a web page."""
        hosts = self.headers.get_all("Host") or []
        if len(hosts) != 1:
            raise HTTPError(400, "bad_request", "the request must have one Host header, not "
                            f"{len(hosts)}")
        host = hosts[0]
        if not self.server.allows_host(host_name(host)):
            raise HTTPError(403, "forbidden", f"Host {host[:100]!r} is not this machine")
        origin = self.headers.get("Origin")
        if origin is not None and url_part(origin, "hostname") not in LOCAL_HOSTS:
            raise HTTPError(403, "forbidden", f"requests from web pages ({origin[:100]}) "
                            "are refused")
        if self.headers.get("Sec-Fetch-Site", "none") not in ("none", "same-origin"):
            raise HTTPError(403, "forbidden", "requests from other web sites are refused")

    def health(self) -> dict[str, Any]:
        worker = self.server.worker
        return {"status": "ok", "version": __version__, "model": worker.default_name,
                "device": worker.device, "loaded": worker.loaded(), "queue": worker.queued()}

    def models(self) -> dict[str, Any]:
        worker = self.server.worker
        return {"default": worker.default_name, "models": worker.known_models()}

    def continue_(self) -> dict[str, Any]:
        """POST /v1/continue."""
        return self.answer(parse_request)

    def answer(self, parse: Any) -> dict[str, Any]:
        """A music request (continue, fill, accompany): read and check the request here with
        `parse`; read its music, write the model's answer and render it in the Worker's
        processes."""
        started = time.monotonic()
        worker = self.server.worker
        body = self.read_body()
        self.notes["in"] = f"{len(body)}B"
        try:
            data = json.loads(body.decode("utf-8"), parse_constant=reject_constant)
        except (UnicodeDecodeError, ValueError, RecursionError) as error:
            raise HTTPError(400, "bad_json", f"the body is not valid JSON ({error})"[:300]) \
                from None
        try:
            request = parse(data)
            self.notes.update(form=request.form, bars=request.bars)
            check_music(request)
            model = worker.resolve(request.model)
            written = write_music(worker, request, model)
            answer = answer_music(worker, request, written)
        except SegueError as error:
            raise http_error(error) from None
        except ChildFault as error:
            log.error("fault in a worker process while answering %s:\n%s",
                      self.client_address[0], error)
            raise HTTPError(500, "internal", "an internal error; see the server log") from None
        answer.update(model=model or worker.default_name, bars=written.bars,
                      engine_ms=round(written.engine_ms, 1),
                      elapsed_ms=round((time.monotonic() - started) * 1000, 1))
        return answer

    def read_body(self) -> bytes:
        """The request body, by its Content-Length and at most MAX_BODY bytes, all of it
        within the request's time."""
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            raise HTTPError(411, "length_required", "send the body with a Content-Length")
        lengths = self.headers.get_all("Content-Length") or []
        if not lengths:
            raise HTTPError(411, "length_required", "send the body with a Content-Length")
        text = lengths[0].strip()
        if len(lengths) > 1 or not (text.isascii() and text.isdigit() and len(text) <= 12):
            raise HTTPError(400, "bad_request", "one Content-Length, a whole number in ASCII "
                            "digits, please")
        length = int(text)
        if length > MAX_BODY:
            raise HTTPError(413, "too_large", f"the body is {length} bytes; the limit is "
                            f"{MAX_BODY} bytes")
        try:
            body = self.rfile.read(length)
        except OSError:  # silent past the socket's timeout
            body = b""
        finally:
            self.server.deadlines.disarm(self.connection)
        if len(body) < length:
            raise HTTPError(400, "bad_request", "the body ended before its Content-Length")
        return body

    def send_json(self, status: int, body: dict[str, Any],
                  retry_after_s: float | None = None) -> None:
        """Answer with a JSON body (a client that left is only logged)."""
        data = json.dumps(body, allow_nan=False).encode("utf-8")
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            self.send_header("Cache-Control", "no-store")
            self.send_header("X-Content-Type-Options", "nosniff")
            if retry_after_s is not None:
                self.send_header("Retry-After", str(max(1, math.ceil(retry_after_s))))
            if self.close_connection:
                self.send_header("Connection", "close")
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)
        except OSError as error:  # the client left before its answer
            log.debug("could not answer %s: %s", self.client_address, error)
            self.close_connection = True

    def parse_request(self) -> bool:
        """The base class's parsing, less HTTP/0.9 (a bare `GET /path` line). A request line
        of nothing but control characters, which the base class takes for a blank line and
        leaves unanswered, gets a 400; only a truly blank one is let go without an answer."""
        if not super().parse_request():
            if self.raw_requestline.strip(b"\r\n") and not self.requestline.split():
                self.send_error(400, "Bad request line")
            return False
        if self.request_version == "HTTP/0.9":
            self.send_error(400, "HTTP/0.9 requests are not served")
            return False
        return True

    def send_error(self, code: int, message: str | None = None,
                   explain: str | None = None) -> None:
        """Malformed HTTP found by the base class (bad request line, headers, method,
        version): its standard status (405 for an unknown method, not 501)."""
        status = 405 if code == 501 else code
        self.close_connection = True
        self.request_version = "HTTP/1.1"  # junk is answered with a status line, not as 0.9
        self.send_json(status, error_body("bad_http", message or HTTPStatus(code).phrase))
        log.info("bad HTTP from %s: %d %s", self.client_address[0], status,
                 printable(message))

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s %s", self.client_address[0], printable(format % args))


class OverflowHandler(Handler):
    """A connection let in past a cap: GET /v1/health is answered, the rest get "busy"."""

    overflow = True
    timeout = OVERFLOW_TIME_S


def http_error(error: SegueError) -> HTTPError:
    """The answer to an error a request caused, its message free of server paths."""
    status, code = next((s, c) for kind, s, c in ERRORS if isinstance(error, kind))
    return HTTPError(status, code, without_paths(str(error)),
                     getattr(error, "retry_after_s", None) if status == 503 else None)


def reject_constant(name: str) -> None:
    """json.loads hook: NaN and Infinity are not JSON."""
    raise ValueError(f"{name} is not a number JSON allows")


class Deadlines:
    """Connections that must send their request by a time; a thread stops reading those
    that do not (their read ends, as if the client had stopped), whatever they trickle."""

    def __init__(self) -> None:
        self.due: dict[socket.socket, float] = {}
        self.lock = threading.Lock()
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._loop, name="segue-deadlines", daemon=True)
        self.thread.start()

    def arm(self, connection: socket.socket, seconds: float) -> None:
        with self.lock:
            self.due[connection] = time.monotonic() + seconds

    def disarm(self, connection: socket.socket) -> None:
        with self.lock:
            self.due.pop(connection, None)

    def stop(self) -> None:
        self.stopped.set()

    def _loop(self) -> None:
        while not self.stopped.wait(0.1):
            now = time.monotonic()
            with self.lock:
                late = [c for c, due in self.due.items() if due <= now]
                for connection in late:
                    del self.due[connection]
            for connection in late:
                with contextlib.suppress(OSError):
                    connection.shutdown(socket.SHUT_RD)


class HTTPServer(ThreadingHTTPServer):
    """ThreadingHTTPServer with a Worker, connection caps, deadlines and the Host rule."""

    daemon_threads = True
    request_queue_size = 64
    request_time_s, overflow_time_s = REQUEST_TIME_S, OVERFLOW_TIME_S

    def __init__(self, host: str, port: int, worker: Worker) -> None:
        self.address_family = socket.AF_INET6 if ":" in host else socket.AF_INET
        super().__init__((host, port), Handler)
        self.worker, self.loopback = worker, is_loopback(host)
        self.deadlines = Deadlines()
        self.lock = threading.Lock()
        self.open = self.overflowing = 0
        self.per_address: dict[str, int] = {}
        self.last_active = time.monotonic()  # when a request (not health) came or was answered
        self.names = {socket.gethostname().lower(), f"{socket.gethostname().lower()}.local"}

    def allows_host(self, name: str) -> bool:
        """Local names always; IP addresses and this machine's name when not on loopback."""
        return name in LOCAL_HOSTS or (not self.loopback and (is_ip(name) or name in self.names))

    def process_request(self, request: Any, client_address: Any) -> None:
        """A thread for the connection: a regular one below the caps, an overflow one past
        them (health or "busy"), or, past MAX_OVERFLOW too, "busy" at once."""
        address = client_address[0]
        with self.lock:
            regular: bool | None = self.open < MAX_CONNECTIONS and \
                self.per_address.get(address, 0) < MAX_PER_ADDRESS
            if regular:
                self.open += 1
                self.per_address[address] = self.per_address.get(address, 0) + 1
            elif self.overflowing < MAX_OVERFLOW:
                self.overflowing += 1
            else:
                regular = None
        if regular is None:
            self.refuse(request)
            return
        threading.Thread(target=self.serve_connection, args=(request, client_address, regular),
                         name="segue-http", daemon=True).start()

    def serve_connection(self, request: Any, client_address: Any, regular: bool) -> None:
        try:
            (Handler if regular else OverflowHandler)(request, client_address, self)
        except Exception:
            self.handle_error(request, client_address)
        finally:
            self.shutdown_request(request)
            with self.lock:
                if regular:
                    self.open -= 1
                    left = self.per_address.pop(client_address[0]) - 1
                    if left:
                        self.per_address[client_address[0]] = left
                else:
                    self.overflowing -= 1

    def refuse(self, request: Any) -> None:
        """503 busy at once, from the listening thread (so no lingering)."""
        body = json.dumps(error_body("busy", "too many connections are open")).encode()
        with contextlib.suppress(OSError):
            request.setblocking(False)
            request.send(b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: "
                         b"application/json\r\nRetry-After: 1\r\nConnection: close\r\n"
                         b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
            request.shutdown(socket.SHUT_WR)
        self.close_request(request)

    def shutdown_request(self, request: Any) -> None:
        """Close a connection without losing its answer: what the client still sends (a body
        refused unread) is read and dropped for a moment first, as closing a socket with
        unread data resets it, and the client may not see the answer."""
        with contextlib.suppress(OSError):
            request.shutdown(socket.SHUT_WR)
            request.settimeout(LINGER_S)  # while it keeps sending, up to the request's time
            ends, dropped = time.monotonic() + self.request_time_s, 0
            while time.monotonic() < ends and dropped < MAX_BODY * 4:
                chunk = request.recv(65_536)
                if not chunk:
                    break
                dropped += len(chunk)
        self.close_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.exception("fault on the connection from %s", client_address[0])

    def server_close(self) -> None:
        self.deadlines.stop()
        super().server_close()


class Server:
    """HTTP (and OSC, unless `osc_port` is None) in front of one Worker, each on a thread.

    Port 0 picks a free port; `http_port` and `osc_port` say which. The worker stays its
    creator's to stop.
    """

    def __init__(self, worker: Worker, *, host: str = "127.0.0.1", port: int = 8765,
                 osc_port: int | None = 8766) -> None:
        from bridge.service.osc import OscServer

        self.worker = worker
        self.http = HTTPServer(host, port, worker)
        self.osc = None if osc_port is None else OscServer(worker, host, osc_port)
        self.threads = [threading.Thread(target=s.serve_forever, name=name, daemon=True)
                        for name, s in (("segue-http", self.http), ("segue-osc", self.osc))
                        if s is not None]
        if not is_loopback(host):
            log.warning("listening on %s, not loopback: every machine that can reach it may "
                        "use Segue", host or "all addresses")

    @property
    def http_port(self) -> int:
        return int(self.http.server_address[1])

    @property
    def osc_port(self) -> int | None:
        return None if self.osc is None else int(self.osc.server_address[1])

    def idle_seconds(self) -> float:
        """Seconds since the last request (HTTP or OSC; GET /v1/health does not count) came
        or was answered; 0 while the worker has work queued or running."""
        if self.worker.queued():
            return 0.0
        last = max(s.last_active for s in (self.http, self.osc) if s is not None)
        return time.monotonic() - last

    def start(self) -> Server:
        for thread in self.threads:
            thread.start()
        return self

    def stop(self) -> None:
        """Stop listening, close the sockets, join the threads."""
        for server, thread in zip((self.http, self.osc), self.threads, strict=False):
            if server is not None and thread.is_alive():
                server.shutdown()
        for server in (self.http, self.osc):
            if server is not None:
                server.server_close()
        for thread in self.threads:
            thread.join(5)

    def __enter__(self) -> Server:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
