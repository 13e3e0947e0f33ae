"""The OSC API over real UDP sockets: python-osc, and Debian liblo-tools as a foreign client."""

from __future__ import annotations

import contextlib
import math
import os
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pythonosc.dispatcher import Dispatcher
from pythonosc.osc_bundle_builder import IMMEDIATELY, OscBundleBuilder
from pythonosc.osc_message_builder import build_msg
from pythonosc.osc_server import BlockingOSCUDPServer
from pythonosc.udp_client import SimpleUDPClient
from server_helpers import PROMPT, OscClient, check_bars, running_server

from bridge.service.osc import OscServer
from bridge.service.server import Server
from engine import __version__


@pytest.fixture(scope="module")
def server(model_path: Path) -> Iterator[Server]:
    with running_server(model_path, max_wait_s=300) as running:
        yield running


@pytest.fixture
def client(server: Server) -> Iterator[OscClient]:
    osc = OscClient(server.osc_port, timeout=120)
    yield osc
    osc.close()


@contextlib.contextmanager
def own_osc_server(server: Server) -> Iterator[OscServer]:
    """Another OSC server on the same worker, so reply ports set here touch no other test."""
    osc = OscServer(server.worker, "127.0.0.1", 0)
    thread = threading.Thread(target=osc.serve_forever, daemon=True)
    thread.start()
    try:
        yield osc
    finally:
        osc.shutdown()
        osc.server_close()
        thread.join()


def test_ping(client: OscClient, server: Server) -> None:
    assert client.ask("/segue/ping") == ("/segue/ping", ["ok", __version__,
                                                         server.worker.default_name])


@pytest.mark.parametrize(("name", "value", "expected"), [
    ("temperature", 0.7, 0.7), ("temperature", 1, 1.0), ("top_p", 0.9, 0.9),
    ("top_k", 40, 40), ("top_k", 40.0, 40), ("drafts", 4, 4), ("drafts", 4.0, 4),
    ("bars", 3, 3), ("bars", 3.0, 3),
    ("seed", 42, 42), ("seed", 2**40, 2**40), ("seed", -1, -1), ("seed", None, -1),
    ("model", "", None), ("model", None, None),
])
def test_settings_round_trip(client: OscClient, server: Server, name: str, value: Any,
                             expected: Any) -> None:
    client.send(f"/segue/set/{name}", value)
    address, [answer] = client.ask(f"/segue/get/{name}")
    assert address == f"/segue/get/{name}"
    if expected is None:  # the default model, by name
        expected = server.worker.default_name
    if isinstance(expected, float):
        assert math.isclose(answer, expected, rel_tol=1e-6)  # OSC floats are 32-bit
    else:
        assert answer == expected
    client.send(f"/segue/set/{name}", {"temperature": 1.0, "top_p": 0.95, "top_k": 0,
                                       "drafts": None, "bars": 8, "seed": None,
                                       "model": None}[name])


def test_models_are_listed_and_named_only(client: OscClient, server: Server) -> None:
    names = [m["name"] for m in server.worker.known_models()]
    assert names[0] == server.worker.default_name
    assert client.ask("/segue/get/models") == ("/segue/get/models", names)
    client.send("/segue/set/model", server.worker.default_name)
    assert client.ask("/segue/get/model")[1] == [server.worker.default_name]


BAD_MESSAGES: list[tuple[str, list[Any]]] = [
    ("/segue/set/temperature", ["hot"]),
    ("/segue/set/temperature", [-1.0]),
    ("/segue/set/temperature", [True]),
    ("/segue/set/temperature", []),
    ("/segue/set/temperature", [1.0, 2.0]),
    ("/segue/set/top_p", [2.0]),
    ("/segue/set/top_k", [-3]),
    ("/segue/set/drafts", [0]),
    ("/segue/set/drafts", [17]),
    ("/segue/set/drafts", [1.5]),
    ("/segue/set/bars", [2.5]),
    ("/segue/set/bars", [0]),
    ("/segue/set/bars", [65]),
    ("/segue/set/seed", ["x"]),
    ("/segue/set/seed", [-7]),
    ("/segue/set/model", ["/etc/passwd"]),
    ("/segue/set/model", ["no-such-model"]),
    ("/segue/set/model", [7]),
    ("/segue/set/volume", [1.0]),
    ("/segue/get/volume", []),
    ("/segue/continue", []),
    ("/segue/continue", [42]),
    ("/segue/continue", [PROMPT, "four"]),
    ("/segue/continue", [PROMPT, 99]),
    ("/segue/continue", [PROMPT, 2, 3, 4]),
    ("/segue/continue", [PROMPT, 2, "port"]),
    ("/segue/continue", [PROMPT, 2, 70000]),
    ("/segue/continue", ["hello, world"]),
    ("/segue/continue", ["X:1\nK:C\nqqqq ####"]),  # refused by the engine, after queueing
    ("/segue/reply_port", ["x"]),
    ("/segue/reply_port", [70000]),
    ("/segue/ping", ["ok"]),  # replies sent back to Segue are not requests
    ("/segue/get/bars", [4]),
    ("/segue/nothing", []),
    ("/other/address", [1]),
    ("/segue/*", [PROMPT]),  # an OSC address pattern would reach every handler at once
    ("/segue/set/*", [3]),
    ("/segue/get/{bars,seed}", []),
]


@pytest.mark.parametrize(("address", "args"), BAD_MESSAGES,
                         ids=[f"{a} {args!r}"[:60] for a, args in BAD_MESSAGES])
def test_bad_messages_get_an_error(client: OscClient, address: str, args: list[Any]) -> None:
    reply, [about, message] = client.ask(address, *args)
    assert reply == "/segue/error" and about == address and len(message) > 10
    assert client.ask("/segue/ping")[1][0] == "ok"


@pytest.mark.parametrize("data", [
    b"", b"\x00", os.urandom(7), os.urandom(64), os.urandom(1500), b"/segue/ping",
    b"/segue/ping\x00if\x00\x00", b"#bundle\x00\x00\x00", b"\xff" * 9000,
], ids=["empty", "zero", "7 bytes", "64 bytes", "1500 bytes", "unpadded", "no comma",
        "short bundle", "9000 bytes"])
def test_random_bytes_get_an_error(client: OscClient, data: bytes) -> None:
    client.send_raw(data)
    reply, [_, message] = client.receive()
    assert reply == "/segue/error" and message
    assert client.ask("/segue/ping")[1][0] == "ok"


def test_bundles_are_answered_message_by_message(client: OscClient) -> None:
    bundle = OscBundleBuilder(IMMEDIATELY)
    bundle.add_content(build_msg("/segue/ping"))
    bundle.add_content(build_msg("/segue/set/bars", 4))
    bundle.add_content(build_msg("/segue/get/bars"))
    client.send_raw(bundle.build().dgram)
    assert client.receive()[0] == "/segue/ping"
    assert client.receive() == ("/segue/get/bars", [4])
    client.send("/segue/set/bars", 8)


def test_continue_answers_abc_and_notes(client: OscClient) -> None:
    client.send("/segue/set/seed", 4)
    address, [abc] = client.ask("/segue/continue", PROMPT, 2)
    client.send("/segue/set/seed", -1)
    assert address == "/segue/continue/abc" and "M:3/4" in abc and "K:Eb" in abc
    check_bars(abc, 2)
    address, notes = client.receive()
    assert address == "/segue/continue/notes" and len(notes) % 3 == 0
    assert all(isinstance(x, float) for x in notes)
    triples = [notes[i:i + 3] for i in range(0, len(notes), 3)]
    assert [t[1] for t in triples] == sorted(t[1] for t in triples)
    for pitch, onset, duration in triples:
        assert pitch.is_integer() and 0 <= pitch <= 127
        assert onset >= 0 and duration > 0
        assert onset + duration <= 2 * 3 + 1e-6  # 2 bars of 3 beats


def test_continue_uses_the_settings(client: OscClient) -> None:
    client.send("/segue/set/bars", 1)
    client.send("/segue/set/seed", 9)
    client.send("/segue/set/temperature", 0.8)
    first = client.ask("/segue/continue", PROMPT)[1][0]
    client.receive()
    check_bars(first, 1)
    again = client.ask("/segue/continue", PROMPT)[1][0]
    client.receive()
    assert again == first  # the same seed and settings: the same music
    for name, value in (("bars", 8), ("seed", -1), ("temperature", 1.0)):
        client.send(f"/segue/set/{name}", value)


def test_reply_port_with_python_osc_client_and_server(server: Server) -> None:
    """python-osc's own client sends; its server receives at the port the client named."""
    replies: list[tuple[str, list[Any]]] = []
    dispatcher = Dispatcher()
    dispatcher.set_default_handler(lambda address, *args: replies.append((address, list(args))))
    receiver = BlockingOSCUDPServer(("127.0.0.1", 0), dispatcher)
    receiver.timeout = 120
    with own_osc_server(server) as osc:
        sender = SimpleUDPClient("127.0.0.1", osc.server_address[1])
        sender.send_message("/segue/reply_port", receiver.server_address[1])
        receiver.handle_request()
        assert replies[-1] == ("/segue/reply_port", [receiver.server_address[1]])
        sender.send_message("/segue/continue", [PROMPT, 1])
        receiver.handle_request()
        receiver.handle_request()
        assert [address for address, _ in replies[-2:]] == ["/segue/continue/abc",
                                                           "/segue/continue/notes"]
        check_bars(replies[-2][1][0], 1)
        back = OscClient(osc.server_address[1])  # 0 sends replies to the sender's port again
        assert back.ask("/segue/reply_port", 0) == ("/segue/reply_port", [0])
        assert back.ask("/segue/ping")[0] == "/segue/ping"
        back.close()
    receiver.server_close()


def test_replies_sent_back_to_segue_do_not_bounce(server: Server) -> None:
    """A reply port naming Segue itself is refused; one naming another Segue server makes
    each reply bounce once (refused as a request, and errors get no answer), not forever."""
    with own_osc_server(server) as first, own_osc_server(server) as second:
        received: list[bytes] = []
        for osc in (first, second):
            osc.receive = lambda data, client, osc=osc, receive=osc.receive: (
                received.append(data), receive(data, client))
        client = OscClient(first.server_address[1])
        address, [_, message] = client.ask("/segue/reply_port", first.server_address[1])
        assert address == "/segue/error" and "own" in message
        client.send("/segue/reply_port", second.server_address[1])
        client.send("/segue/ping")
        client.send("/segue/get/temperature")
        time.sleep(1)  # a bounce would go on, thousands of datagrams a second
        assert len(received) <= 16, received[:20]  # 10: four requests, three bounces
        assert client.ask("/segue/reply_port", 0) == ("/segue/reply_port", [0])
        assert client.ask("/segue/ping")[0] == "/segue/ping"
        client.close()


@pytest.mark.skipif(shutil.which("oscsend") is None, reason="needs Debian liblo-tools")
def test_liblo_tools_as_a_foreign_client(server: Server) -> None:
    """oscsend asks (from a new port each time: the replies go to the port each continue
    names), oscdump listens there."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        dump_port = probe.getsockname()[1]
    dump = subprocess.Popen(["oscdump", "-L", str(dump_port)], stdout=subprocess.PIPE,
                            text=True)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(iter(dump.stdout.readline, "")),
                              daemon=True)
    reader.start()
    try:
        with own_osc_server(server) as osc:
            target = ["127.0.0.1", str(osc.server_address[1])]

            def oscsend(*args: str) -> None:
                subprocess.run(["oscsend", *target, *args], check=True, timeout=30)

            time.sleep(0.3)  # oscdump binds its port
            oscsend("/segue/set/temperature", "f", "0.5")
            deadline = time.monotonic() + 10
            while osc.settings["temperature"] != 0.5 and time.monotonic() < deadline:
                time.sleep(0.01)  # a datagram on its way
            assert osc.settings["temperature"] == 0.5
            oscsend("/segue/continue", "sii", "hello, world", "1", str(dump_port))
            oscsend("/segue/continue", "sii", PROMPT, "1", str(dump_port))
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline and not any("/continue/notes" in line
                                                          for line in lines):
                time.sleep(0.1)
            osc.settings["temperature"] = 1.0
    finally:
        dump.terminate()
        dump.wait(10)
    text = "".join(lines)
    assert '/segue/error ss "/segue/continue"' in text
    assert '/segue/continue/abc s "X:1' in text and "/segue/continue/notes" in text
