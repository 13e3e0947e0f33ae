"""The HTTP API over real sockets, with the real Engine and a real checkpoint."""

from __future__ import annotations

import concurrent.futures
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from server_helpers import (
    EVENTS,
    PROMPT,
    OscClient,
    call,
    check_bars,
    check_events,
    hold_engine,
    nothing,
    running_server,
)

from bridge.service.server import Server
from engine.abc.music import parse_musicxml

ABC_4_4 = "X:1\nM:4/4\nL:1/8\nK:G\nGABc d2B2|c2A2 B2G2|\n"
ABC_6_8 = "X:1\nM:6/8\nL:1/8\nK:D\nA2F D2F|A2d f2d|\n"


@pytest.fixture(scope="module")
def server(model_path: Path, tmp_path_factory: pytest.TempPathFactory):
    """`segue serve` in-process on free ports; models "alt" and "alt2" findable by name."""
    home = tmp_path_factory.mktemp("segue-home")
    (home / "models").mkdir()
    for name in ("alt", "alt2"):
        (home / "models" / name).symlink_to(model_path, target_is_directory=True)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SEGUE_HOME", str(home))
        with running_server(model_path, max_wait_s=300) as running:
            yield running


def post(server: Server, body: Any, **options: Any) -> tuple[int, dict[str, Any]]:
    return call(server.http_port, "POST", "/v1/continue", body, **options)


def musicxml_document() -> str:
    """One of music21's own MusicXML scores (a Bach chorale, four parts) as text."""
    from music21 import corpus
    from music21.musicxml.m21ToXml import GeneralObjectExporter

    return GeneralObjectExporter(corpus.parse("bach/bwv66.6")).parse().decode("utf-8")


def test_health_and_models(server: Server, model_path: Path) -> None:
    status, health = call(server.http_port, "GET", "/v1/health")
    assert status == 200
    assert health["status"] == "ok" and health["model"] == model_path.name
    assert health["device"] == "cpu" and health["version"]
    status, models = call(server.http_port, "GET", "/v1/models")
    assert status == 200 and models["default"] == model_path.name
    names = [m["name"] for m in models["models"]]
    assert names[0] == model_path.name and {"alt", "alt2"} <= set(names)
    assert models["models"][0]["default"] and models["models"][0]["architecture"]
    assert "path" not in models["models"][0]  # nothing about the disk goes out


def test_continue_abc(server: Server) -> None:
    request = {"abc": ABC_4_4, "bars": 2, "seed": 5, "temperature": 0.9, "top_k": 20}
    status, answer = post(server, request)
    assert status == 200, answer
    assert set(answer) == {"abc", "model", "bars", "elapsed_ms", "engine_ms"}
    check_bars(answer["abc"], 2)
    assert "M:4/4" in answer["abc"] and "K:G" in answer["abc"]
    assert answer["elapsed_ms"] >= answer["engine_ms"] > 0
    assert post(server, request)[1]["abc"] == answer["abc"]  # same seed, same music


def test_continue_with_drafts(server: Server, model_path: Path) -> None:
    """Drafts over HTTP: the answer of 3 drafts, with the same seed, is the engine's."""
    from engine.models.continuation import Engine, Sampling

    status, answer = post(server, {"abc": ABC_4_4, "bars": 2, "seed": 5, "drafts": 3})
    assert status == 200, answer
    engine = Engine.load(str(model_path), device="cpu")
    [direct] = engine.continue_abc(ABC_4_4, bars=2, sampling=Sampling(seed=5, drafts=3))
    assert answer["abc"] == direct.abc


def test_continue_events(server: Server) -> None:
    status, answer = post(server, {"events": EVENTS, "bars": 2, "seed": 3})
    assert status == 200, answer
    events = answer["events"]
    assert events["time_signature"] == "3/4" and events["key"] == -3
    assert len(events["staves"]) == 2  # each staff continued in its own staff
    check_events(answer, 2, "3/4")
    check_bars(answer["abc"], 2)


def test_continue_musicxml_selection(server: Server) -> None:
    document = musicxml_document()
    status, answer = post(server, {"musicxml": document, "part": 1, "measures": [1, 2],
                                   "bars": 2, "seed": 11})
    assert status == 200, answer
    check_bars(answer["abc"], 2)
    score = parse_musicxml(answer["musicxml"])
    assert len(score.parts) == 1 and score.parts[0].partName == "Soprano"
    assert len(score.parts[0].getElementsByClass("Measure")) == 2
    status, by_name = post(server, {"musicxml": document, "part": "Soprano",
                                    "measures": "1-2", "bars": 2, "seed": 11})
    assert status == 200 and by_name["abc"] == answer["abc"]


def test_a_selection_outside_the_score_names_the_field(server: Server) -> None:
    """The engine names the parameter; HTTP says it as the field (the CLI as --measures)."""
    document = musicxml_document()
    for body, start in (({"measures": [30, 40]}, "measures 30-40 is outside the score"),
                        ({"part": 9}, "part 9: the score has parts 1 (Soprano)")):
        status, answer = post(server, {"musicxml": document, "bars": 2, **body})
        assert status == 422 and answer["error"]["message"].startswith(start), answer


def test_an_answer_of_rests_alone_comes_back_in_every_form() -> None:
    """The model may answer a bar of rests in every voice (`Z`). The 10,000-request soak had 5
    valid requests answered 422 "no notes" for it; a silent answer is an answer."""
    from bridge.service.api import parse_request, prepare, render

    silent = "X:1\nM:3/4\nL:1/8\nV:1 clef=treble\nV:2 clef=bass\nK:Eb\nV:1\nZ |\nV:2\nZ |]\n"
    for form, music in (("events", EVENTS), ("musicxml", musicxml_document())):
        request = parse_request({form: music, "bars": 1})
        [answer] = render(None, request, [(silent, ["3/4"])], prepare(None, request, True))
        assert answer["abc"] == silent
        if form == "events":
            staves = answer["events"]["staves"]
            assert len(staves) == 2 and all(event["pitches"] == [] for staff in staves
                                            for event in staff), staves
            check_events(answer, 1, "3/4")
        else:
            from music21 import converter

            score = converter.parseData(answer["musicxml"], format="musicxml")
            assert len(score.parts) == 2 and not list(score.recurse().notes)
            assert list(score.recurse().notesAndRests)


def test_variations(server: Server) -> None:
    status, answer = post(server, {"abc": PROMPT, "bars": 1, "seed": 1, "variations": 3})
    assert status == 200, answer
    takes = answer["variations"]
    assert len(takes) == 3 and takes[0]["abc"] == answer["abc"]
    for take in takes:
        check_bars(take["abc"], 1)
    status, events = post(server, {"events": EVENTS, "bars": 1, "seed": 1, "variations": 2})
    assert status == 200 and len(events["variations"]) == 2
    for take in events["variations"]:
        check_events(take, 1, "3/4")


def test_models_by_name_in_a_small_cache(server: Server, model_path: Path, tmp_path: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    def loaded() -> list[str]:
        return call(server.http_port, "GET", "/v1/health")[1]["loaded"]

    monkeypatch.chdir(tmp_path)
    (tmp_path / "alt").mkdir()  # a folder named like a model: the name still means the model
    for name in ("alt", "alt2"):
        status, answer = post(server, {"abc": ABC_4_4, "bars": 1, "model": name})
        assert status == 200 and answer["model"] == name
    assert loaded() == ["alt", "alt2"]  # two models at most: the default made room
    status, answer = post(server, {"abc": ABC_4_4, "bars": 1, "model": model_path.name})
    assert status == 200 and answer["model"] == model_path.name
    assert loaded() == ["alt2", model_path.name]
    for name in ("nope", str(model_path), "../alt", "/etc/passwd"):
        status, answer = post(server, {"abc": ABC_4_4, "model": name})
        assert (status, answer["error"]["code"]) == (400, "unknown_model"), name
    status, answer = post(server, {"abc": ABC_4_4, "model": "segue-open"})  # not made here
    assert (status, answer["error"]["code"]) == (400, "unknown_model")
    assert "make it once with bash scripts/make_segue_open.sh" in answer["error"]["message"]


def test_a_request_reads_the_models_on_disk_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """Naming a model resolves it, finds its folder and its sampling: one look at the disk
    (`list_models`), trusted for CATALOGUE_S seconds, then read again."""
    import engine.models.checkpoint
    from bridge.service import worker as worker_module

    reads: list[float] = []

    def list_models() -> list[dict[str, Any]]:
        reads.append(time.monotonic())
        return [{"name": "alt", "path": "/models/alt", "sampling": {"temperature": 0.9}}]

    monkeypatch.setattr(engine.models.checkpoint, "list_models", list_models)
    worker = worker_module.Worker("segue-gpt2-6m")  # not started: no process runs
    worker.default_name, worker.default_info = "segue-gpt2-6m", {"name": "segue-gpt2-6m"}
    assert worker.resolve("alt") == "alt" and worker.model_path("alt") == "/models/alt"
    assert worker.sampling_defaults("alt") == {"temperature": 0.9}
    assert len(reads) == 1
    monkeypatch.setattr(worker_module, "CATALOGUE_S", 0.0)
    worker.resolve("alt")
    assert len(reads) == 2


BAD_BODIES: list[tuple[str, Any, int, str]] = [
    ("a list", [], 400, "bad_request"),
    ("no music", {"bars": 2}, 400, "bad_request"),
    ("two forms", {"abc": ABC_4_4, "events": EVENTS}, 400, "bad_request"),
    ("unknown field", {"abc": ABC_4_4, "temprature": 1}, 400, "bad_request"),
    ("bars a string", {"abc": ABC_4_4, "bars": "4"}, 400, "bad_request"),
    ("bars a fraction", {"abc": ABC_4_4, "bars": 4.5}, 400, "bad_request"),
    ("bars boolean", {"abc": ABC_4_4, "bars": True}, 400, "bad_request"),
    ("bars 0", {"abc": ABC_4_4, "bars": 0}, 400, "bad_request"),
    ("bars 65", {"abc": ABC_4_4, "bars": 65}, 400, "bad_request"),
    ("temperature text", {"abc": ABC_4_4, "temperature": "hot"}, 400, "bad_request"),
    ("temperature negative", {"abc": ABC_4_4, "temperature": -1}, 400, "bad_request"),
    ("temperature huge", {"abc": ABC_4_4, "temperature": 1e9}, 400, "bad_request"),
    ("top_p 0", {"abc": ABC_4_4, "top_p": 0}, 400, "bad_request"),
    ("top_p 1.5", {"abc": ABC_4_4, "top_p": 1.5}, 400, "bad_request"),
    ("top_k negative", {"abc": ABC_4_4, "top_k": -1}, 400, "bad_request"),
    ("drafts 0", {"abc": ABC_4_4, "drafts": 0}, 400, "bad_request"),
    ("drafts 17", {"abc": ABC_4_4, "drafts": 17}, 400, "bad_request"),
    ("drafts a fraction", {"abc": ABC_4_4, "drafts": 2.5}, 400, "bad_request"),
    ("seed fraction", {"abc": ABC_4_4, "seed": 1.5}, 400, "bad_request"),
    ("seed text", {"abc": ABC_4_4, "seed": "x"}, 400, "bad_request"),
    ("seed too big", {"abc": ABC_4_4, "seed": 2**70}, 400, "bad_request"),
    ("variations 9", {"abc": ABC_4_4, "variations": 9}, 400, "bad_request"),
    ("model a number", {"abc": ABC_4_4, "model": 7}, 400, "bad_request"),
    ("abc a number", {"abc": 42}, 400, "bad_request"),
    ("abc empty", {"abc": "  "}, 400, "bad_request"),
    ("musicxml a list", {"musicxml": ["<x/>"]}, 400, "bad_request"),
    ("part with abc", {"abc": ABC_4_4, "part": 1}, 400, "bad_request"),
    ("measures junk", {"musicxml": "<x/>", "measures": "a-b"}, 400, "bad_request"),
    ("measures backwards", {"musicxml": "<x/>", "measures": [4, 1]}, 400, "bad_request"),
    ("events a string", {"events": "C D E"}, 400, "bad_request"),
    ("events without staves", {"events": {"key": 0}}, 400, "bad_request"),
    ("events bad onset", {"events": {"staves": [[{"onset": "x", "duration": "1/4"}]]}},
     400, "bad_request"),
    ("events bad pitch", {"events": {"staves": [[{"onset": "0", "duration": "1/4",
                                                  "pitches": [300]}]]}}, 400, "bad_request"),
    ("events bad meter", dict(EVENTS, time_signature="5/7"), 400, "bad_request"),
    ("junk ABC", {"abc": "hello, world"}, 422, "bad_music"),
    ("ABC without key", {"abc": "X:1\nM:4/4\nCDEF|"}, 422, "bad_music"),
    ("ABC without notes", {"abc": "X:1\nM:4/4\nK:C\n"}, 422, "bad_music"),
    ("ABC of junk", {"abc": "X:1\nK:C\nqqqq ####"}, 422, "bad_music"),
    ("broken MusicXML", {"musicxml": "<score-partwise><part id="}, 422, "bad_music"),
    ("MusicXML without notes", {"musicxml": "<score-partwise version='3.1'/>"}, 422,
     "bad_music"),
    ("MusicXML entities", {"musicxml": '<!DOCTYPE x [<!ENTITY a "aaaa">]><x>&a;</x>'},
     422, "bad_music"),
    ("a path for MusicXML", {"musicxml": str(Path(__file__).parent / "data")}, 422,
     "bad_music"),
]


@pytest.mark.parametrize(("body", "status", "code"), [case[1:] for case in BAD_BODIES],
                         ids=[case[0] for case in BAD_BODIES])
def test_bad_requests_are_refused_clearly(server: Server, body: Any, status: int,
                                          code: str) -> None:
    answer_status, answer = post(server, body)
    assert (answer_status, answer["error"]["code"]) == (status, code), answer
    assert len(answer["error"]["message"]) > 10
    assert call(server.http_port, "GET", "/v1/health")[0] == 200


def test_a_file_path_is_never_read(server: Server, tmp_path: Path) -> None:
    from music21.musicxml.m21ToXml import GeneralObjectExporter

    from engine.abc.music import parse_abc

    path = tmp_path / "real.musicxml"
    path.write_bytes(GeneralObjectExporter(parse_abc(ABC_4_4)).parse())
    status, answer = post(server, {"musicxml": str(path), "bars": 1})
    assert (status, answer["error"]["code"]) == (422, "bad_music")
    status, answer = post(server, {"abc": str(path), "bars": 1})
    assert (status, answer["error"]["code"]) == (422, "bad_music")


RAW_REQUESTS: list[tuple[str, bytes, int, str]] = [
    ("invalid JSON", b"POST /v1/continue HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 8"
     b"\r\n\r\n{bars: 4", 400, "bad_json"),
    ("not UTF-8", b"POST /v1/continue HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 2"
     b"\r\n\r\n\xff\xfe", 400, "bad_json"),
    ("NaN", b'POST /v1/continue HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 36\r\n\r\n'
     b'{"abc": "X:1\\nK:C\\nC|", "bars": NaN}', 400, "bad_json"),
    ("no length", b"POST /v1/continue HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", 411,
     "length_required"),
    ("chunked", b"POST /v1/continue HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: "
     b"chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n", 411, "length_required"),
    ("huge body", b"POST /v1/continue HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: "
     b"3000000\r\n\r\n", 413, "too_large"),
    ("short body", b"POST /v1/continue HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 100"
     b"\r\n\r\n{}", 400, "bad_request"),
    ("wrong method", b"GET /v1/continue HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", 405,
     "method_not_allowed"),
    ("odd method", b"BREW /v1/health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", 405, "bad_http"),
    ("unknown path", b"GET /v2/health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", 404, "not_found"),
    ("dot dot", b"GET /v1/../../etc/passwd HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", 404,
     "not_found"),
    ("no Host", b"GET /v1/health HTTP/1.1\r\n\r\n", 400, "bad_request"),
    ("garbage line", b"\x16\x03\x01\x02\x00 hello there\r\n\r\n", 400, "bad_http"),
    ("long header", b"GET /v1/health HTTP/1.1\r\nX: " + b"a" * 70_000 + b"\r\n\r\n", 431,
     "bad_http"),
]


@pytest.mark.parametrize(("raw", "status", "code"), [case[1:] for case in RAW_REQUESTS],
                         ids=[case[0] for case in RAW_REQUESTS])
def test_malformed_http_is_refused_clearly(server: Server, raw: bytes, status: int,
                                           code: str) -> None:
    with socket.create_connection(("127.0.0.1", server.http_port), timeout=60) as sock:
        sock.sendall(raw)
        sock.shutdown(socket.SHUT_WR)  # a short body ends here, not at the server's timeout
        answer = b""
        while chunk := sock.recv(65_536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    assert int(head.split()[1]) == status, answer[:300]
    assert json.loads(body)["error"]["code"] == code
    assert call(server.http_port, "GET", "/v1/health")[0] == 200


@pytest.mark.parametrize("headers", [
    {"Origin": "http://evil.example"},
    {"Origin": "null"},
    {"Origin": "http://127.0.0.1.evil.example:8765"},
    {"Host": "evil.example"},
    {"Host": "evil.example:8765"},  # DNS rebinding: a foreign name resolving to 127.0.0.1
    {"Host": "localhost.evil.example"},
    {"Sec-Fetch-Site": "cross-site"},
])
def test_foreign_callers_are_forbidden(server: Server, headers: dict[str, str]) -> None:
    for method, path, body in (("GET", "/v1/health", None),
                               ("POST", "/v1/continue", {"abc": ABC_4_4, "bars": 1})):
        status, answer = call(server.http_port, method, path, body, headers=headers)
        assert (status, answer["error"]["code"]) == (403, "forbidden")


@pytest.mark.parametrize("headers", [
    {"Host": "localhost:8765"}, {"Host": "[::1]:8765"}, {"Host": "127.0.0.1"},
    {"Origin": "http://localhost:3000"}, {"Origin": "http://127.0.0.1"},
    {"Origin": "http://[::1]:8765"},
])
def test_local_callers_are_served(server: Server, headers: dict[str, str]) -> None:
    assert call(server.http_port, "GET", "/v1/health", headers=headers)[0] == 200


def test_other_addresses_warn_and_accept_ip_hosts(server: Server,
                                                  caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, "segue.server"):
        wide = Server(server.worker, host="0.0.0.0", port=0, osc_port=None)
    assert "not loopback" in caplog.text
    with wide:
        assert call(wide.http_port, "GET", "/v1/health",
                    headers={"Host": f"192.0.2.7:{wide.http_port}"})[0] == 200
        assert call(wide.http_port, "GET", "/v1/health",
                    headers={"Host": "evil.example"})[0] == 403


def test_busy_is_answered_quickly(model_path: Path, tmp_path: Path) -> None:
    with running_server(model_path, queue_size=2, max_wait_s=3.0) as busy:
        gate = tmp_path / "gate"
        busy.worker.submit(hold_engine, str(gate))  # the model is taken
        with concurrent.futures.ThreadPoolExecutor(2) as pool:
            waiting = pool.submit(post, busy, {"abc": ABC_4_4, "bars": 1}, timeout=30)
            while busy.worker.jobs.qsize() < 2:
                busy.worker.submit(nothing)
            status, answer = post(busy, {"abc": ABC_4_4, "bars": 1}, timeout=30)
            assert (status, answer["error"]["code"]) == (503, "busy")  # the queue is full
            status, answer = waiting.result()
            assert (status, answer["error"]["code"]) == (503, "busy")  # it waited too long
        osc = OscClient(busy.osc_port, timeout=30)
        address, args = osc.ask("/segue/continue", ABC_4_4, 1)
        assert address == "/segue/error" and args[1].startswith("busy:")
        gate.touch()  # the model is free again once the jobs queued meanwhile are done
        deadline = time.monotonic() + 30
        while busy.worker.queued() and time.monotonic() < deadline:
            time.sleep(0.02)
        status, answer = post(busy, {"abc": ABC_4_4, "bars": 1})
        assert status == 200, answer
        assert osc.ask("/segue/continue", ABC_4_4, 1)[0] == "/segue/continue/abc"
        osc.close()


def test_twenty_http_clients_and_osc_clients_at_once(server: Server) -> None:
    """Each answer has the bars and the meter of its own request, whatever the order."""
    prompts = {"4/4": ABC_4_4, "6/8": ABC_6_8, "3/4": PROMPT}

    def http_client(index: int) -> None:
        bars = 1 + index % 2
        if index % 4 == 3:
            status, answer = post(server, {"events": EVENTS, "bars": bars, "seed": index})
            assert status == 200, answer
            check_events(answer, bars, "3/4")
        else:
            meter = list(prompts)[index % 3]
            status, answer = post(server, {"abc": prompts[meter], "bars": bars, "seed": index})
            assert status == 200, answer
            assert f"M:{meter}" in answer["abc"]
            check_bars(answer["abc"], bars)

    with concurrent.futures.ThreadPoolExecutor(24) as pool:
        jobs = [pool.submit(http_client, i) for i in range(20)]
        jobs += [pool.submit(osc_client_checked, server, i, prompts) for i in range(4)]
        for job in jobs:
            job.result()


def osc_client_checked(server: Server, index: int, prompts: dict[str, str]) -> None:
    """One OSC client: a continuation whose ABC and notes have the bars it asked for."""
    client = OscClient(server.osc_port)
    try:
        bars, meter = 1 + index % 2, list(prompts)[index % 3]
        address, [abc] = client.ask("/segue/continue", prompts[meter], bars)
        assert address == "/segue/continue/abc" and f"M:{meter}" in abc
        check_bars(abc, bars)
        address, notes = client.receive()
        assert address == "/segue/continue/notes" and len(notes) % 3 == 0
    finally:
        client.close()


def test_serve_command_starts_logs_and_stops_on_ctrl_c(model_path: Path) -> None:
    """Started as a script's `cmd &` starts it, with SIGINT ignored, Ctrl-C still stops it."""
    process = subprocess.Popen(
        [sys.executable, "-m", "bridge", "serve", "--model", str(model_path), "--port", "0",
         "--osc-port", "0", "--device", "cpu"],
        stderr=subprocess.PIPE, text=True, env=os.environ | {"PYTHONUNBUFFERED": "1"},
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
    try:
        lines = []
        assert process.stderr is not None
        for line in process.stderr:
            lines.append(line)
            if "Ctrl-C" in line:
                break
        banner = lines[-1]
        port = int(banner.split("HTTP http://127.0.0.1:")[1].split("/")[0])
        osc_port = int(banner.split("OSC udp://127.0.0.1:")[1].split()[0])
        assert call(port, "GET", "/v1/health")[0] == 200
        status, _ = call(port, "POST", "/v1/continue", {"abc": ABC_4_4, "bars": 1})
        assert status == 200
        osc = OscClient(osc_port)
        assert osc.ask("/segue/ping")[1][0] == "ok"
        osc.close()
        process.send_signal(signal.SIGINT)
        rest = process.communicate(timeout=60)[1]
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    log = "".join(lines) + rest
    assert process.returncode == 0, log
    assert "Traceback" not in log and "segue serve: stopped" in log
    assert "POST /v1/continue 200 in=" in log and "form=abc bars=1" in log
    with socket.socket() as sock:  # the port is free again: the socket was closed
        sock.bind(("127.0.0.1", port))
