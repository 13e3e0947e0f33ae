"""Segue's HTTP API (`/v1`), and `Server`, which runs it and the OSC server beside one Worker.

    GET  /v1/health     {"status": "ok", "version", "model", "device", "loaded", "queue"}
    GET  /v1/models     {"default": name, "models": [{"name", "architecture", ...}]}
    POST /v1/continue   {"events" | "musicxml" | "abc": ..., "bars", "temperature", ...}
    POST /v1/fill       the same music and sampling fields, and "gap": [first, last]
    POST /v1/accompany  the same music and sampling fields, and "add": "bass"|"voice"|"chords"

The standard library's ThreadingHTTPServer is enough for a loopback service: one thread per
connection (at most MAX_CONNECTIONS), requests read and answered there, the model's work
queued to the Worker. Safety: it listens on 127.0.0.1 unless told otherwise; a request whose
Host is not this machine (DNS rebinding) or that comes from a web page (an Origin that is not
local, or Sec-Fetch-Site cross-site) gets 403; bodies are capped at MAX_BODY; nothing in a
request can name a file. Errors are `{"error": {"code", "message"}}`: 4xx for bad input, 503
"busy" when the queue is full, 5xx only for faults of ours.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import logging
import socket
import threading
import time
from functools import partial
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

from bridge.api import (
    BadMusic,
    BadRequest,
    parse_accompany_request,
    parse_fill_request,
    parse_request,
    read_prompt,
    render,
    run_request,
)
from bridge.worker import Busy, ModelUnavailable, UnknownModel, Worker
from engine import __version__
from engine.errors import SegueError

log = logging.getLogger("segue.server")
MAX_BODY = 2 * 1024 * 1024
MAX_CONNECTIONS = 64
LOCAL_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
# Errors a request can cause: (class, HTTP status, code). A SegueError from the engine is
# about the music it was given.
ERRORS = ((BadRequest, 400, "bad_request"), (UnknownModel, 400, "unknown_model"),
          (BadMusic, 422, "bad_music"), (Busy, 503, "busy"),
          (ModelUnavailable, 500, "model_unavailable"), (SegueError, 422, "bad_music"))


class HTTPError(Exception):
    """An answer that is an error: status, code and message."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


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


def error_body(code: str, message: str) -> dict[str, Any]:
    """The JSON body of an error answer."""
    return {"error": {"code": code, "message": message}}


class Handler(BaseHTTPRequestHandler):
    """One connection: route, check, answer JSON, log one line a request."""

    server: HTTPServer
    protocol_version = "HTTP/1.1"
    server_version = f"segue/{__version__}"
    sys_version = ""
    timeout = 30  # seconds a connection may stay silent (slow or idle clients)

    def do_GET(self) -> None:
        """Every method comes here; `route` answers 405 where it does not belong."""
        started = time.monotonic()
        used = urlsplit(self.path).path != "/v1/health"  # asking whether it is up is no use
        if used:
            self.server.last_active = started
        self.notes: dict[str, Any] = {}
        try:
            status, body = self.route()
        except HTTPError as error:
            status, body = error.status, error_body(error.code, error.message)
        except Exception:
            log.exception("fault while answering %s %s", self.command, self.path)
            status, body = 500, error_body("internal", "an internal error; see the server log")
        if status >= 400:
            self.close_connection = True  # a body may be left unread
        self.send_json(status, body)
        if used:
            self.server.last_active = time.monotonic()
        extras = "".join(f" {key}={value}" for key, value in self.notes.items())
        log.info("%s %s %s %d%s %.1f ms", self.client_address[0], self.command, self.path[:80],
                 status, extras, (time.monotonic() - started) * 1000)

    do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = do_HEAD = do_GET

    def route(self) -> tuple[int, dict[str, Any]]:
        """Check the caller, find the route, answer it: (status, body)."""
        self.check_caller()
        routes = {"/v1/health": ("GET", self.health), "/v1/models": ("GET", self.models),
                  "/v1/continue": ("POST", self.continue_),
                  "/v1/fill": ("POST", partial(self.answer, parse_fill_request)),
                  "/v1/accompany": ("POST", partial(self.answer, parse_accompany_request))}
        path = urlsplit(self.path).path
        if path not in routes:
            raise HTTPError(404, "not_found", f"no such address {path!r}; the API is "
                            "GET /v1/health, GET /v1/models, POST /v1/continue, "
                            "POST /v1/fill, POST /v1/accompany")
        method, answer = routes[path]
        if self.command != method:
            raise HTTPError(405, "method_not_allowed", f"{path} takes {method} only")
        return 200, answer()

    def check_caller(self) -> None:
        """403 unless the request comes from this machine, and not from a web page."""
        host = self.headers.get("Host")
        if host is None:
            raise HTTPError(400, "bad_request", "the request has no Host header")
        if not self.server.allows_host(host_name(host)):
            raise HTTPError(403, "forbidden", f"Host {host[:100]!r} is not this machine")
        origin = self.headers.get("Origin")
        if origin is not None and urlsplit(origin).hostname not in LOCAL_HOSTS:
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
        """POST /v1/continue: read and check the request, queue it, render the answer."""
        return self.answer(parse_request)

    def answer(self, parse: Any) -> dict[str, Any]:
        """A music request (continue, fill, accompany): read the body, check it with `parse`,
        queue it, render the answer."""
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
            model = worker.resolve(request.model)
            read_prompt(request)
            results, engine_ms = worker.timed_call(partial(run_request, request), model)
        except SegueError as error:
            status, code = next((s, c) for kind, s, c in ERRORS if isinstance(error, kind))
            raise HTTPError(status, code, str(error)) from None
        answer = render(request, results)
        answer.update(model=model or worker.default_name, bars=results[0].bars,
                      engine_ms=round(engine_ms, 1),
                      elapsed_ms=round((time.monotonic() - started) * 1000, 1))
        return answer

    def read_body(self) -> bytes:
        """The request body, by its Content-Length and at most MAX_BODY bytes."""
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            raise HTTPError(411, "length_required", "send the body with a Content-Length")
        lengths = self.headers.get_all("Content-Length") or []
        if not lengths:
            raise HTTPError(411, "length_required", "send the body with a Content-Length")
        if len(lengths) > 1 or not lengths[0].strip().isdigit():
            raise HTTPError(400, "bad_request", "one Content-Length, a whole number, please")
        length = int(lengths[0])
        if length > MAX_BODY:
            raise HTTPError(413, "too_large", f"the body is {length} bytes; the limit is "
                            f"{MAX_BODY} bytes")
        body = self.rfile.read(length)
        if len(body) < length:
            raise HTTPError(400, "bad_request", "the body ended before its Content-Length")
        return body

    def send_json(self, status: int, body: dict[str, Any]) -> None:
        """Answer with a JSON body (a client that left is only logged)."""
        data = json.dumps(body, allow_nan=False).encode("utf-8")
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            self.send_header("Cache-Control", "no-store")
            self.send_header("X-Content-Type-Options", "nosniff")
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
        """Malformed HTTP found by the base class (bad request line, headers, method)."""
        status = 405 if code == 501 else min(code, 499)  # all of them are the client's
        self.close_connection = True
        self.request_version = "HTTP/1.1"  # junk is answered with a status line, not as 0.9
        self.send_json(status, error_body("bad_http", message or HTTPStatus(code).phrase))
        log.info("bad HTTP from %s: %d %s", self.client_address[0], status, message)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s " + format, self.client_address[0], *args)


def reject_constant(name: str) -> None:
    """json.loads hook: NaN and Infinity are not JSON."""
    raise ValueError(f"{name} is not a number JSON allows")


class HTTPServer(ThreadingHTTPServer):
    """ThreadingHTTPServer with a Worker, a connection cap and the Host rule."""

    daemon_threads = True
    request_queue_size = 64

    def __init__(self, host: str, port: int, worker: Worker) -> None:
        self.address_family = socket.AF_INET6 if ":" in host else socket.AF_INET
        super().__init__((host, port), Handler)
        self.worker, self.loopback = worker, is_loopback(host)
        self.last_active = time.monotonic()  # when a request (not health) came or was answered
        self.slots = threading.BoundedSemaphore(MAX_CONNECTIONS)
        self.names = {socket.gethostname().lower(), f"{socket.gethostname().lower()}.local"}

    def allows_host(self, name: str) -> bool:
        """Local names always; IP addresses and this machine's name when not on loopback."""
        return name in LOCAL_HOSTS or (not self.loopback and (is_ip(name) or name in self.names))

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self.slots.acquire(blocking=False):
            body = json.dumps(error_body("busy", "too many connections")).encode()
            with contextlib.suppress(OSError):
                request.sendall(b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: "
                                b"application/json\r\nConnection: close\r\nContent-Length: "
                                + str(len(body)).encode() + b"\r\n\r\n" + body)
            self.shutdown_request(request)
            return
        super().process_request(request, client_address)

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self.slots.release()


class Server:
    """HTTP (and OSC, unless `osc_port` is None) in front of one Worker, each on a thread.

    Port 0 picks a free port; `http_port` and `osc_port` say which. The worker stays its
    creator's to stop.
    """

    def __init__(self, worker: Worker, *, host: str = "127.0.0.1", port: int = 8765,
                 osc_port: int | None = 8766) -> None:
        from bridge.osc import OscServer

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
            if thread.is_alive():
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
