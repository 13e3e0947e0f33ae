"""Property: no request, however malformed, gets a 5xx or stops the server (HTTP and OSC).

A few hundred generated requests: JSON of every shape, request objects with fields of the
wrong kinds, events documents with odd values, raw bytes, junk HTTP, junk OSC. Answers are
4xx JSON errors (or, for the rare generated request that is valid, a correct continuation);
afterwards a good request still succeeds.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st
from pythonosc.osc_message_builder import build_msg
from server_helpers import PROMPT, OscClient, call, check_bars, check_events, running_server

from bridge.service.server import Server

FIELDS = ["events", "musicxml", "abc", "part", "measures", "bars", "temperature", "top_p",
          "top_k", "seed", "variations", "model"]
FUZZ = settings(max_examples=70, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                max_size=4),
    max_leaves=10)
odd = st.sampled_from([None, True, "x", "", -1, 1.5, 1e300, [], {}, [60], "1/0"])
fractions = st.one_of(st.sampled_from(["0/1", "1/8", "1/4", "3/8", "1/2", "1/1", "1/12", "7/4"]),
                      st.builds("{}/{}".format, st.integers(-5, 5000), st.integers(0, 2000)),
                      st.integers(-3, 300), odd)
an_event = st.fixed_dictionaries(
    {"onset": fractions, "duration": fractions},
    optional={"pitches": st.lists(st.integers(-5, 200), max_size=4) | odd,
              "tie": st.booleans() | odd, "voice": st.integers(-2, 6) | odd})
events_documents = st.fixed_dictionaries(
    {"staves": st.lists(st.lists(an_event, max_size=5), max_size=3)},
    optional={"time_signature": st.sampled_from(["3/4", "4/4", "6/8", "5/7", "0/4", "x"]),
              "key": st.integers(-9, 9) | odd,
              "mode": st.sampled_from(["major", "minor", "dorian"])})


@pytest.fixture(scope="module")
def server(model_path: Path) -> Iterator[Server]:
    with running_server(model_path, max_wait_s=300) as running:
        yield running


def check_answer(status: int, answer: dict[str, Any], bars: int | None = None) -> None:
    """A 4xx error explained, or (for a request that happened to be valid) a good answer."""
    event(f"HTTP {status} {answer.get('error', {}).get('code', 'ok')}")
    if status == 200:
        assert bars is not None, answer  # only requests that set bars may be valid
        if "events" in answer:
            check_events(answer, bars, answer["events"]["time_signature"])
        check_bars(answer["abc"], bars)
        return
    assert 400 <= status < 500, answer
    assert set(answer) == {"error"} and answer["error"]["code"]
    assert isinstance(answer["error"]["message"], str) and answer["error"]["message"]


@FUZZ
@given(body=json_values)
def test_any_json_body(server: Server, body: Any) -> None:
    check_answer(*call(server.http_port, "POST", "/v1/continue", body))


@FUZZ
@given(body=st.dictionaries(st.sampled_from(FIELDS) | st.text(max_size=10), json_values,
                            max_size=6))
def test_request_objects_with_fields_of_any_kind(server: Server, body: dict[str, Any]) -> None:
    check_answer(*call(server.http_port, "POST", "/v1/continue", body))


@FUZZ
@given(events=events_documents, seed=st.integers(0, 2**31))
def test_events_documents_with_odd_values(server: Server, events: Any, seed: int) -> None:
    body = {"events": events, "bars": 1, "seed": seed}
    check_answer(*call(server.http_port, "POST", "/v1/continue", body), bars=1)


good_fractions = st.sampled_from(["0/1", "1/12", "1/8", "1/6", "1/4", "3/8", "1/2", "3/4",
                                  "1/1", "5/4", "7/8"])
odd_but_valid_events = st.fixed_dictionaries({
    "time_signature": st.sampled_from(["2/4", "3/4", "4/4", "6/8", "3/8", "5/4"]),
    "key": st.integers(-7, 7),
    "staves": st.lists(st.lists(st.fixed_dictionaries(
        {"onset": good_fractions, "duration": good_fractions.filter(lambda f: f != "0/1"),
         "pitches": st.lists(st.integers(21, 108), max_size=4),
         "tie": st.booleans(), "voice": st.integers(0, 3)}), min_size=1, max_size=6),
        min_size=1, max_size=2)})


@settings(FUZZ, max_examples=12)
@given(events=odd_but_valid_events, seed=st.integers(0, 2**31))
def test_odd_but_valid_events_are_continued(server: Server, events: Any, seed: int) -> None:
    """Overlaps, gaps, triplets, chords, ties and voices: read, continued, bar-exact."""
    status, answer = call(server.http_port, "POST", "/v1/continue",
                          {"events": events, "bars": 1, "seed": seed})
    assert status == 200, answer
    check_events(answer, 1, answer["events"]["time_signature"])
    check_bars(answer["abc"], 1)


@FUZZ
@given(data=st.binary(max_size=300),
       content_type=st.sampled_from(["application/json", "text/plain", "x/y"]))
def test_raw_bodies(server: Server, data: bytes, content_type: str) -> None:
    check_answer(*call(server.http_port, "POST", "/v1/continue", raw=data,
                       headers={"Content-Type": content_type}))


@FUZZ
@given(request=st.binary(max_size=200) | st.builds(
    lambda method, path, headers: f"{method} {path} HTTP/1.1\r\n{headers}\r\n\r\n".encode(),
    st.sampled_from(["GET", "POST", "PUT", "X"]) | st.text(max_size=5),
    st.sampled_from(["/v1/health", "/v1/continue", "/"]) | st.text(max_size=20),
    st.text(max_size=60)))
@example(request=b"\x1e\nGET / HTTP/1.1\r\n\r\n")  # a line that http.server takes for blank
@example(request=b"\r\n\r\n")
def test_junk_http(server: Server, request: bytes) -> None:
    with socket.create_connection(("127.0.0.1", server.http_port), timeout=60) as sock:
        sock.sendall(request)
        sock.shutdown(socket.SHUT_WR)
        answer = b""
        while chunk := sock.recv(65_536):
            answer += chunk
    if not request.split(b"\n", 1)[0].strip(b"\r"):
        return  # no request line at all: a server may close without a word
    assert answer, f"no answer to {request[:200]!r}"  # a dropped connection is no answer
    head, _, body = answer.partition(b"\r\n\r\n")
    assert int(head.split()[1]) < 500, answer[:200]
    assert not body or isinstance(json.loads(body), dict), answer[:200]


@FUZZ
@given(message=st.binary(max_size=200) | st.builds(
    lambda address, args: build_msg(address, args).dgram,
    st.sampled_from(["/segue/continue", "/segue/set/bars", "/segue/set/temperature",
                     "/segue/set/seed", "/segue/set/model", "/segue/get/top_p",
                     "/segue/reply_port", "/segue/ping", "/segue"])
    | st.from_regex(r"/[a-z/]{0,20}", fullmatch=True),
    st.lists(st.integers(-2**31, 2**31 - 1) | st.floats(width=32, allow_nan=False)
             | st.text(max_size=30) | st.booleans() | st.none(), max_size=3)))
def test_junk_osc(server: Server, message: bytes) -> None:
    client = OscClient(server.osc_port, timeout=60)
    try:
        client.send_raw(message)
        client.send("/segue/reply_port", 0)  # undo a reply port the junk may have named
        client.send("/segue/ping")
        while (reply := client.receive())[0] != "/segue/ping":
            assert reply[0].startswith("/segue/"), reply
    finally:
        client.close()


def test_still_serving_after_the_fuzz(server: Server) -> None:
    status, answer = call(server.http_port, "POST", "/v1/continue",
                          {"abc": PROMPT, "bars": 2, "seed": 1})
    assert status == 200
    check_bars(answer["abc"], 2)
