"""Helpers shared by the MuseScore tests (real MuseScore 3, and the Qt 6 check): a free port
and a recording proxy between the plug-in and a real `segue serve`."""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Recorder(ThreadingHTTPServer):
    """A proxy between the plug-in and the server that keeps each request and answer (after
    `edit`, if a test sets one to change the server's answers)."""

    def __init__(self, target: str) -> None:
        super().__init__(("127.0.0.1", 0), ProxyHandler)
        self.target = target
        self.edit: Callable[[dict[str, Any]], None] | None = None
        self.exchanges: list[tuple[dict[str, Any], dict[str, Any]]] = []


class ProxyHandler(BaseHTTPRequestHandler):
    server: Recorder

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        headers = {name: value for name, value in self.headers.items()   # as MuseScore sent them
                   if name.lower() not in ("host", "content-length", "connection")}
        request = urllib.request.Request(self.server.target + self.path, data=body,
                                         headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=300) as answer:
                status, data = answer.status, answer.read()
        except urllib.error.HTTPError as error:
            status, data = error.code, error.read()
        if self.server.edit:
            answer = json.loads(data)
            self.server.edit(answer)
            data = json.dumps(answer).encode()
        self.server.exchanges.append((json.loads(body), json.loads(data)))
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: Any) -> None:
        pass




@contextlib.contextmanager
def recording(target: str) -> Iterator[Recorder]:
    """A Recorder in front of the server at `target`, serving on its own thread."""
    proxy = Recorder(target)
    thread = threading.Thread(target=proxy.serve_forever, daemon=True)
    thread.start()
    try:
        yield proxy
    finally:
        proxy.shutdown()
        proxy.server_close()
