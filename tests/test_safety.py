"""Issue 19's findings, each answered as specified with nothing left running after it: bounded
work (limits before parsing, the most recent bars only, deadlines that stop the work), text
that is never a path, a 4xx for every bad input, connection limits, OSC replies per sender,
log lines that cannot be forged, and a stop that leaves nothing behind."""

from __future__ import annotations

import concurrent.futures
import json
import logging
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest
from server_helpers import (
    OscClient,
    call,
    check_bars,
    check_events,
    exchange,
    raw_exchange,
    running_server,
    wait_idle,
)

from bridge.service.server import Server

HEAD = "X:1\nM:4/4\nL:1/8\nK:C\n"
ONE_BAR = {"abc": "X:1\nM:4/4\nL:1/8\nK:G\nGABc d2B2|\n", "bars": 1, "seed": 1}


@pytest.fixture(scope="module")
def server(model_path: Path) -> Iterator[Server]:
    with running_server(model_path, max_wait_s=120) as running:
        yield running


def post(server: Server, body: Any, **options: Any) -> tuple[int, dict[str, Any]]:
    return call(server.http_port, "POST", "/v1/continue", body, **options)


def events_of(count: int, duration: str, *, pitches: int = 1, staves: int = 1,
              voices: int = 1, meter: str = "4/4") -> dict[str, Any]:
    """An events document: `count` events of `duration` in each (staff, voice), tied."""
    step = Fraction(duration)
    return {"time_signature": meter, "key": 0, "staves": [
        [{"onset": str(i * step), "duration": duration, "voice": voice, "tie": True,
          "pitches": list(range(40 + voice * 12, 40 + voice * 12 + pitches))}
         for voice in range(voices) for i in range(count)] for _ in range(staves)]}


def musicxml_parts(parts: int, measures: int = 2) -> str:
    """A MusicXML document of `parts` parts of `measures` bars each, written by hand."""
    bar = ("<measure number=\"{n}\">{attributes}<note><pitch><step>C</step><octave>4</octave>"
           "</pitch><duration>4</duration><type>whole</type></note></measure>")
    attributes = ("<attributes><divisions>1</divisions><key><fifths>0</fifths></key><time>"
                  "<beats>4</beats><beat-type>4</beat-type></time><clef><sign>G</sign>"
                  "<line>2</line></clef></attributes>")
    listed = "".join(f"<score-part id=\"P{i}\"><part-name>Voice {i}</part-name></score-part>"
                     for i in range(1, parts + 1))
    body = "".join(f"<part id=\"P{i}\">" + "".join(
        bar.format(n=n, attributes=attributes if n == 1 else "") for n in range(1, measures + 1))
        + "</part>" for i in range(1, parts + 1))
    return (f"<?xml version=\"1.0\"?><score-partwise version=\"3.1\"><part-list>{listed}"
            f"</part-list>{body}</score-partwise>")


# --- bounded work: limits before parsing ----------------------------------------------------
REFUSED_ABC = [
    ("C1000000 (7 minutes before)", HEAD + "C1000000|", 422, "at most 64 units"),
    ("CDEF|C4000| (80 s before)", HEAD + "CDEF|C4000|", 422, "at most 64 units"),
    ("M:1000000/1 (7.6 GB before)", "X:1\nM:1000000/1\nL:1/8\nK:C\nCDEF|", 422, "M:1000000/1"),
    ("10,000 bars", HEAD + "CDEF GABc|" * 10_000, 413, "bars"),
    ("150,000 bars", HEAD + "C|" * 150_000, 413, "bars"),
    ("200,000 notes, no bar line", HEAD + "C" * 200_000, 413, "bar 1"),
    ("M:1/1000", "X:1\nM:1/1000\nL:1/8\nK:C\nC|", 422, "M:1/1000"),
    ("M:1/3", "X:1\nM:1/3\nL:1/8\nK:C\nC|", 422, "M:1/3"),
    ("M:5/7", "X:1\nM:5/7\nL:1/8\nK:C\nC|", 422, "M:5/7"),
    ("inline [M:5/7]", HEAD + "CDEF GABc|[M:5/7]CDE|", 422, "M:5/7"),
    ("L:-1/8", "X:1\nM:4/4\nL:-1/8\nK:C\nCDEF GABc|", 422, "L:-1/8"),
    ("Q:1/4=0", "X:1\nM:4/4\nL:1/8\nQ:1/4=0\nK:C\nCDEF GABc|", 422, "Q:1/4=0"),
    ("a chord of 20 notes", HEAD + "[CDEFGABcdefgabc'd'e'f'g'a'b']8|", 413, "chord"),
    ("17 voices", HEAD + "".join(f"V:{v}\nC8|\n" for v in range(17)), 413, "voices"),
    ("notes in the head (30 s before)", "X:1\nM:3/4\nLC4000:1/8\nK:Eb\nE2G2B2|e4 d2|", 422,
     "at most 64 units"),
]


@pytest.mark.parametrize(("abc", "status", "words"), [case[1:] for case in REFUSED_ABC],
                         ids=[case[0] for case in REFUSED_ABC])
def test_hostile_abc_is_refused_before_parsing(server: Server, abc: str, status: int,
                                               words: str) -> None:
    answer_status, answer = post(server, {"abc": abc, "bars": 1})
    code = "too_large" if status == 413 else "bad_music"
    assert (answer_status, answer["error"]["code"]) == (status, code), answer
    assert words in answer["error"]["message"]
    wait_idle(server)


@pytest.mark.parametrize(("path", "field"), [("/v1/fill", {"gap": [1, 1]}),
                                              ("/v1/accompany", {"add": "bass"})])
def test_fill_and_accompany_check_the_limits_before_parsing(server: Server, path: str,
                                                            field: dict[str, Any]) -> None:
    for _, abc, status, words in (REFUSED_ABC[0], REFUSED_ABC[3], REFUSED_ABC[8]):
        answer_status, answer = call(server.http_port, "POST", path, {"abc": abc, **field})
        code = "too_large" if status == 413 else "bad_music"
        assert (answer_status, answer["error"]["code"]) == (status, code), (abc[:40], answer)
        assert words in answer["error"]["message"]
    wait_idle(server)


STOPS_OFF_THE_GRID = [HEAD + "CDEF GABc|C2 (5CDE", HEAD + "A2F D2F|A2d f2(9:2:9d|",
                      HEAD + "GABc d2B2|c2A2 B2 C///2|"]


@pytest.mark.parametrize("abc", STOPS_OFF_THE_GRID)
def test_music_that_stops_where_no_note_completes_the_bar_is_refused(server: Server,
                                                                     abc: str) -> None:
    """A last bar that stops inside a tuplet, or after a note shorter than any the grammar
    writes, cannot be completed: refused in words (the soak found it as a 500 from sampling)."""
    answer_status, answer = post(server, {"abc": abc, "bars": 1, "seed": 1})
    assert (answer_status, answer["error"]["code"]) == (422, "bad_music"), answer
    assert "into its last bar, where no note can complete the bar" in answer["error"]["message"]
    wait_idle(server)


REFUSED_EVENTS = [
    ("5,000 events of 1/1023 (9.5 minutes before)", events_of(5_000, "1/1023"), 400,
     "1/1023"),
    ("200 tied 128-note chords (150 s before)", events_of(200, "1/4", pitches=128), 413,
     "pitches"),
    ("64 parts (15.8 s before)", events_of(8, "1/4", staves=16, voices=4), 413, "voices"),
    ("20,001 events", events_of(20_001, "1/16"), 413, "events"),
    ("300 events in one bar", events_of(300, "1/384"), 413, "events in bar 1"),
]


@pytest.mark.parametrize(("events", "status", "words"), [case[1:] for case in REFUSED_EVENTS],
                         ids=[case[0] for case in REFUSED_EVENTS])
def test_hostile_events_are_refused_before_parsing(server: Server, events: dict[str, Any],
                                                   status: int, words: str) -> None:
    answer_status, answer = post(server, {"events": events, "bars": 1})
    code = {400: "bad_request", 413: "too_large"}[status]
    assert (answer_status, answer["error"]["code"]) == (status, code), answer
    assert words in answer["error"]["message"]
    wait_idle(server)


def test_hostile_musicxml_is_refused_before_parsing(server: Server) -> None:
    document = musicxml_parts(100)  # 21.7 s before
    status, answer = post(server, {"musicxml": document, "bars": 1})
    assert (status, answer["error"]["code"]) == (413, "too_large"), answer
    assert "parts" in answer["error"]["message"]
    for bad in (document.replace("<divisions>1<", "<divisions>99999999<"),
                document.replace("<beat-type>4<", "<beat-type>7<")):
        status, answer = post(server, {"musicxml": bad, "part": 1, "bars": 1})
        assert (status, answer["error"]["code"]) == (422, "bad_music"), answer
    wait_idle(server)


# --- bounded work: only the most recent bars are read -------------------------------------
def test_long_music_is_read_from_its_recent_bars(server: Server) -> None:
    """Long prompts within the limits are answered, their last bars read: a 4,000-bar tune
    whose meter and key change near its end, 5,000 events, one part of a 100-part score."""
    tune = HEAD + "CDEF GABc|" * 3_950 + "\nM:3/4\nK:D\n" + "DEF ABc|" * 40 + "\n"
    status, answer = post(server, {"abc": tune, "bars": 2, "seed": 3})
    assert status == 200, answer
    assert "M:3/4" in answer["abc"] and "K:D" in answer["abc"]  # what holds at the end
    check_bars(answer["abc"], 2)

    status, answer = post(server, {"events": events_of(5_000, "1/16"), "bars": 1, "seed": 4})
    assert status == 200, answer
    check_events(answer, 1, "4/4")

    status, answer = post(server, {"musicxml": musicxml_parts(100, 40), "part": 100,
                                   "measures": [1, 30], "bars": 1, "seed": 5})
    assert status == 200, answer
    check_bars(answer["abc"], 1)
    wait_idle(server)


def test_a_cut_keeps_what_is_in_force(server: Server) -> None:
    """A MusicXML cut keeps the key and meter set in bars it leaves out."""
    from engine.abc.music import parse_musicxml
    from engine.abc.recent import recent_musicxml

    document = musicxml_parts(1, 60).replace(
        "<fifths>0</fifths>", "<fifths>3</fifths>").replace("<beats>4<", "<beats>3<").replace(
        "<duration>4</duration><type>whole</type>", "<duration>3</duration><type>half</type>"
        "<dot/>")
    cut = recent_musicxml(document, measures=(50, 60))
    score = parse_musicxml(cut)
    measures = score.parts[0].getElementsByClass("Measure")
    assert [m.number for m in measures] == list(range(50, 61))
    assert measures[0].keySignature.sharps == 3 and measures[0].timeSignature.ratioString == "3/4"


# --- bounded work: deadlines ------------------------------------------------------------------
def test_a_job_past_its_deadline_is_stopped_and_the_model_restarted(model_path: Path) -> None:
    with running_server(model_path, deadline_s=3, max_wait_s=60) as short:
        old = short.worker.process.process.pid
        status, headers, answer = exchange(short.http_port, "POST", "/v1/continue", {
            "abc": ONE_BAR["abc"], "bars": 64, "variations": 4, "seed": 1})
        assert (status, answer["error"]["code"]) == (503, "timeout"), answer
        assert int(headers["Retry-After"]) >= 1
        assert short.worker.process.process.pid != old  # killed, and a new one started
        assert call(short.http_port, "GET", "/v1/health")[0] == 200
        status, answer = post(short, ONE_BAR)
        assert status == 200, answer  # the new process answers
        wait_idle(short)


def test_a_fill_past_its_deadline_is_stopped_and_the_model_restarted(model_path: Path) -> None:
    """A fill reads the whole tune and writes in the model's process: its deadline holds."""
    with running_server(model_path, deadline_s=2, max_wait_s=60) as short:
        old = short.worker.process.process.pid
        status, headers, answer = exchange(short.http_port, "POST", "/v1/fill", {
            "abc": HEAD + "CDEF GABc|" * 64, "gap": [1, 64], "variations": 8, "seed": 1})
        assert (status, answer["error"]["code"]) == (503, "timeout"), answer
        assert int(headers["Retry-After"]) >= 1
        assert short.worker.process.process.pid != old  # killed, and a new one started
        status, answer = call(short.http_port, "POST", "/v1/fill", {
            "abc": HEAD + "CDEF GABc|" * 4, "gap": [2, 2], "seed": 1})
        assert status == 200, answer  # the new process answers
        wait_idle(short)


def test_a_read_past_its_deadline_is_stopped(model_path: Path) -> None:
    with running_server(model_path, read_deadline_s=0.1, max_wait_s=60) as short:
        pids = {child.process.pid for child in short.worker.readers.children}
        status, headers, answer = exchange(short.http_port, "POST", "/v1/continue", {
            "events": events_of(32, "1/32", staves=4, voices=4, pitches=4), "bars": 1})
        assert (status, answer["error"]["code"]) == (503, "timeout"), answer
        assert int(headers["Retry-After"]) >= 1
        assert pids != {child.process.pid for child in short.worker.readers.children}
        wait_idle(short)


def heaviest_events() -> dict[str, Any]:
    """About the most reading the limits allow: 16 voices of tuplets, a chord each."""
    staves = []
    for _ in range(4):
        staff = []
        for voice, step in enumerate(("1/12", "1/20", "1/28", "1/36")):
            length = Fraction(step)
            staff += [{"onset": str(i * length), "duration": step, "voice": voice,
                       "tie": i % 3 == 0, "pitches": [40 + voice * 12 + k for k in (0, 4, 7)]}
                      for i in range(int(32 / length))]
        staves.append(staff)
    return {"time_signature": "4/4", "key": 3, "staves": staves}


def test_with_a_hostile_request_running_others_are_answered(server: Server) -> None:
    """The must-show bound: while a hostile request is being read, a 1-bar request is
    answered within 2 s and /v1/health within 100 ms."""
    hostile = heaviest_events()
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        running = pool.submit(post, server, {"events": hostile, "bars": 1})
        while server.worker.readers.working == 0:  # the hostile request is being read
            assert not running.done(), running.result()
            time.sleep(0.005)
        started = time.monotonic()
        assert call(server.http_port, "GET", "/v1/health")[0] == 200
        health_s = time.monotonic() - started
        started = time.monotonic()
        status, answer = post(server, ONE_BAR)
        valid_s = time.monotonic() - started
        assert not running.done(), "the hostile request ended first: it proves nothing"
        assert status == 200, answer
        check_bars(answer["abc"], 1)
        assert health_s < 0.1 and valid_s < 2.0, (health_s, valid_s)
        assert running.result()[0] in (200, 503)  # answered, or stopped by its deadline
    wait_idle(server)


# --- text is never a path ---------------------------------------------------------------------
def secret_tune(tmp_path: Path) -> tuple[str, Path]:
    """The issue's ABC, whose text ends in the path of a real tune in 7/8 and F#: music21's
    `converter.parse` takes the whole text for a path (normalized from the working
    directory, the newline every tune ends with included) and reads that tune instead."""
    from music21.common import cleanpath

    folder = tmp_path / "DIR"
    folder.mkdir()
    secret = folder / "secret.abc\n"
    secret.write_text("X:1\nM:7/8\nL:1/8\nK:F#\nFGAB cde|\n")
    hops = "../" * len(Path.cwd().parts)
    text = f"X:1\nK:C\nC|/{hops}{str(folder).lstrip('/')}/secret.abc\n"
    assert Path(cleanpath(text)) == secret  # the text is the tune's path
    return text, folder


def test_abc_naming_a_file_is_read_as_music(server: Server, tmp_path: Path) -> None:
    text, folder = secret_tune(tmp_path)
    status, answer = post(server, {"abc": text, "bars": 1, "seed": 1})
    if status == 200:
        assert "M:7/8" not in answer["abc"] and "K:F#" not in answer["abc"]
    else:
        assert (status, answer["error"]["code"]) == (422, "bad_music"), answer
        assert str(folder) not in answer["error"]["message"]  # and no path shown
    wait_idle(server)


def segue(*args: str, stdin: str = "", env: dict[str, str] | None = None,
          timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "bridge", *args], input=stdin, text=True,
                          capture_output=True, timeout=timeout,
                          env=os.environ | {"SEGUE_DEBUG": ""} | (env or {}))


def test_the_cli_reads_standard_input_as_music(model_path: Path, tmp_path: Path) -> None:
    text, _ = secret_tune(tmp_path)
    result = segue("continue", "-", "--bars", "1", "--model", str(model_path), "--device",
                   "cpu", stdin=text)
    assert "M:7/8" not in result.stdout and "K:F#" not in result.stdout
    if result.returncode:
        assert result.returncode == 1 and len(result.stderr.strip().splitlines()) == 1


CLI_REFUSED = [HEAD + "C1000000|", "X:1\nM:1/3\nL:1/8\nK:C\nC|", "X:1\nM:4/4\nL:-1/8\nK:C\nC|",
               "X:1\nM:4/4\nQ:1/4=0\nL:1/8\nK:C\nCDEF GABc|", HEAD + "C" * 5_000]


@pytest.mark.parametrize("abc", CLI_REFUSED, ids=["C1000000", "M:1/3", "L:-1/8", "Q:1/4=0",
                                                  "a bar of 5,000 notes"])
def test_the_cli_refuses_bad_music_in_one_line(model_path: Path, tmp_path: Path,
                                               abc: str) -> None:
    for command in (["continue", "-", "--bars", "1", "--model", str(model_path),
                     "--device", "cpu"], ["convert", "-", str(tmp_path / "out.musicxml")]):
        result = segue(*command, stdin=abc)
        assert result.returncode == 1, result.stderr
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr
        assert "Traceback" not in result.stderr and "internal error" not in result.stderr


# --- a 4xx for every bad input ------------------------------------------------------------------
RAW = [  # header bytes are read as Latin-1: b"\xb2" is "²", a digit to str.isdigit
    ("Content-Length of a Unicode digit", b"Host: 127.0.0.1\r\nContent-Length: \xb2", 400,
     "bad_request"),
    ("Content-Length of a Unicode digit 1", b"Host: 127.0.0.1\r\nContent-Length: \xb9", 400,
     "bad_request"),
    ("two Host headers", b"Host: 127.0.0.1\r\nHost: 127.0.0.1\r\nContent-Length: 2", 400,
     "bad_request"),
    ("HTTP/2.0", b"", 505, "bad_http"),
    ("an Origin that cannot be split", b"Host: 127.0.0.1\r\nOrigin: http://[::1\r\n"
     b"Content-Length: 2", 403, "forbidden"),
    ("a path that cannot be split", b"", 404, "not_found"),
]


@pytest.mark.parametrize(("headers", "status", "code"), [case[1:] for case in RAW],
                         ids=[case[0] for case in RAW])
def test_bad_headers_get_a_standard_status(server: Server, headers: bytes, status: int,
                                           code: str) -> None:
    if headers:
        data = b"POST /v1/continue HTTP/1.1\r\n" + headers + b"\r\n\r\n{}"
    elif status == 505:
        data = b"GET /v1/health HTTP/2.0\r\nHost: 127.0.0.1\r\n\r\n"
    else:
        data = b"GET //[::1/v1/health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
    answer = raw_exchange(server.http_port, data)
    head, _, body = answer.partition(b"\r\n\r\n")
    assert int(head.split()[1]) == status, answer[:300]
    assert json.loads(body)["error"]["code"] == code


def test_a_short_body_on_an_open_connection_is_answered_400(server: Server) -> None:
    """The client keeps its connection open and sends less than it announced: the request's
    time runs out, and the answer is 400 (it was a 500)."""
    server.http.request_time_s = 1.0
    try:
        started = time.monotonic()
        answer = raw_exchange(server.http_port, b"POST /v1/continue HTTP/1.1\r\nHost: "
                              b"127.0.0.1\r\nContent-Length: 100\r\n\r\n{}", close_write=False)
        assert time.monotonic() - started < 30
    finally:
        server.http.request_time_s = 10.0
    head, _, body = answer.partition(b"\r\n\r\n")
    assert int(head.split()[1]) == 400, answer[:300]
    assert json.loads(body)["error"]["code"] == "bad_request"


BAD_NUMBERS = [
    ("temperature 1 and 400 zeros", b'{"abc": "X:1\\nK:C\\nC|", "temperature": 1' + b"0" * 400
     + b"}", 400),
    ("top_p of 5,000 digits", b'{"abc": "X:1\\nK:C\\nC|", "top_p": ' + b"9" * 5_000 + b"}",
     400),
    ("temperature 1e400", b'{"abc": "X:1\\nK:C\\nC|", "temperature": 1e400}', 400),
    ("seed -1e400", b'{"abc": "X:1\\nK:C\\nC|", "seed": -1e400}', 400),
    ("bars Infinity", b'{"abc": "X:1\\nK:C\\nC|", "bars": Infinity}', 400),
    ("top_k NaN", b'{"abc": "X:1\\nK:C\\nC|", "top_k": NaN}', 400),
]


@pytest.mark.parametrize(("body", "status"), [case[1:] for case in BAD_NUMBERS],
                         ids=[case[0] for case in BAD_NUMBERS])
def test_numbers_of_any_size_are_refused_plainly(server: Server, body: bytes,
                                                 status: int) -> None:
    answer_status, answer = post(server, None, raw=body)
    assert answer_status == status and answer["error"]["code"] in ("bad_request", "bad_json")
    assert len(answer["error"]["message"]) < 300


def test_error_answers_name_no_server_paths(model_path: Path, tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """A broken model known by name, a document the reader cannot read: no path shown."""
    home = tmp_path / "home"
    (home / "models" / "broken").mkdir(parents=True)
    for name in ("config.json", "model.safetensors"):
        (home / "models" / "broken" / name).write_bytes((model_path / name).read_bytes())
    (home / "models" / "broken" / "tokenizer.json").write_text('{"kind": "char"}')
    monkeypatch.setenv("SEGUE_HOME", str(home))
    with running_server(model_path, max_wait_s=60) as local:
        status, answer = post(local, dict(ONE_BAR, model="broken"))
        assert (status, answer["error"]["code"]) == (500, "model_unavailable"), answer
        assert "corrupt checkpoint" in answer["error"]["message"]
        assert str(home) not in json.dumps(answer) and "/models/" not in json.dumps(answer)
        status, answer = post(local, {"musicxml": str(model_path / "config.json"), "bars": 1})
        assert status == 422 and str(model_path) not in json.dumps(answer)


# --- connections ------------------------------------------------------------------------------
def test_slow_senders_are_cut_off_and_do_not_lock_others_out(server: Server) -> None:
    """64 connections from another address send a byte every half second: each is closed
    when the request's time runs out, however it trickles; meanwhile that address holds at
    most its share of the connections, and health and a continuation from here are served."""
    import socket

    from bridge.service.server import MAX_PER_ADDRESS

    server.http.request_time_s = 3.0
    slow = [socket.create_connection(("127.0.0.1", server.http_port), timeout=30,
                                     source_address=("127.0.0.2", 0)) for _ in range(64)]
    started = time.monotonic()
    try:
        time.sleep(0.3)
        assert server.http.per_address.get("127.0.0.2", 0) <= MAX_PER_ADDRESS
        status, health = call(server.http_port, "GET", "/v1/health", timeout=10)
        assert status == 200 and health["status"] == "ok"
        status, answer = post(server, ONE_BAR, timeout=60)
        assert status == 200, answer
        open_ones = list(slow)
        while open_ones and time.monotonic() - started < 3.0 + 3.0:
            for sock in list(open_ones):
                try:
                    sock.sendall(b"P")  # one byte: the old timeout started again on each
                    sock.setblocking(False)
                    closed = sock.recv(4096) == b""  # answered 503 and closed, or just closed
                except BlockingIOError:
                    closed = False
                except OSError:
                    closed = True
                finally:
                    sock.setblocking(True)
                if closed:
                    open_ones.remove(sock)
            time.sleep(0.5)
        assert not open_ones, f"{len(open_ones)} slow connections still open"
    finally:
        server.http.request_time_s = 10.0
        for sock in slow:
            sock.close()


def test_health_is_answered_at_the_connection_cap(server: Server) -> None:
    """With this address at its cap (idle connections holding every slot), health is still
    answered; a continuation gets 503 busy with Retry-After instead of waiting."""
    import socket

    from bridge.service.server import MAX_PER_ADDRESS

    held = [socket.create_connection(("127.0.0.1", server.http_port), timeout=30)
            for _ in range(MAX_PER_ADDRESS)]
    try:
        deadline = time.monotonic() + 10
        while server.http.per_address.get("127.0.0.1", 0) < MAX_PER_ADDRESS:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        status, health = call(server.http_port, "GET", "/v1/health", timeout=10)
        assert status == 200 and health["status"] == "ok"
        status, headers, answer = exchange(server.http_port, "POST", "/v1/continue", ONE_BAR,
                                           timeout=10)
        assert (status, answer["error"]["code"]) == (503, "busy") and headers["Retry-After"]
    finally:
        for sock in held:
            sock.close()


# --- OSC and logs --------------------------------------------------------------------------------
def test_one_osc_client_cannot_redirect_anothers_replies(server: Server) -> None:
    first, second = OscClient(server.osc_port, timeout=10), OscClient(server.osc_port,
                                                                       timeout=30)
    try:
        first.send("/segue/reply_port", 65)  # once, this silenced every local client
        assert second.ask("/segue/ping")[1][0] == "ok"  # still at its own port
        address, [abc] = second.ask("/segue/continue", ONE_BAR["abc"], 1)
        assert address == "/segue/continue/abc"
        check_bars(abc, 1)
        assert second.receive()[0] == "/segue/continue/notes"
    finally:
        first.send("/segue/reply_port", 0)
        first.close()
        second.close()


def test_a_continue_may_name_its_reply_port(server: Server) -> None:
    listener, sender = OscClient(server.osc_port, timeout=60), OscClient(server.osc_port)
    try:
        sender.send("/segue/continue", ONE_BAR["abc"], 1, listener.port)
        assert listener.receive()[0] == "/segue/continue/abc"
        assert listener.receive()[0] == "/segue/continue/notes"
    finally:
        listener.close()
        sender.close()


def test_hostile_osc_music_is_refused(server: Server) -> None:
    client = OscClient(server.osc_port, timeout=60)
    try:
        for abc in (HEAD + "C1000000|", "X:1\nM:5/7\nK:C\nC|", HEAD + "C|" * 6_000):
            for request, args in (("/segue/continue", (1,)), ("/segue/fill", (1, 1)),
                                  ("/segue/accompany", ("bass",))):
                address, (where, message) = client.ask(request, abc, *args)
                assert (address, where) == ("/segue/error", request)
                assert message and "Traceback" not in message
    finally:
        client.close()
    wait_idle(server)


def test_control_characters_are_escaped_in_log_lines(server: Server,
                                                     caplog: pytest.LogCaptureFixture) -> None:
    client = OscClient(server.osc_port, timeout=30)
    with caplog.at_level(logging.DEBUG, "segue"):
        client.send("/segue/nothing\n2026-01-01 INFO segue.osc: forged")
        assert client.receive()[0] == "/segue/error"
        raw_exchange(server.http_port, b"GET /v1/\x1b[2Jhealth HTTP/1.1\r\nHost: 127.0.0.1"
                     b"\r\n\r\n")
        raw_exchange(server.http_port, b"GET /\x1b[31m HTTP/1.1\x00\r\nHost: 127.0.0.1\r\n\r\n")
    client.close()
    messages = [record.getMessage() for record in caplog.records]
    assert any("forged" in message for message in messages)
    assert any("\\x1b[2J" in message for message in messages)
    for message in messages:
        assert not re.search(r"[\x00-\x1f\x7f]", message), message


def test_the_serve_log_format_escapes_every_message() -> None:
    """`segue serve` formats every line with bridge.logs.Formatter: whatever a message
    holds, one record is one line (a traceback keeps its own lines)."""
    import io

    from bridge.logs import Formatter

    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(Formatter("%(levelname)s %(name)s: %(message)s"))
    logger = logging.getLogger("segue.test-logs")
    logger.addHandler(handler)
    try:
        logger.warning("from %s", "x\nINFO segue.server: forged\x1b[31m\u2028")
    finally:
        logger.removeHandler(handler)
    assert stream.getvalue() == ("WARNING segue.test-logs: from x\\x0aINFO segue.server: "
                                 "forged\\x1b[31m\\u2028\n")


# --- stopping ---------------------------------------------------------------------------------
def test_sigterm_while_the_model_works_stops_cleanly(model_path: Path) -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "bridge", "serve", "--model", str(model_path), "--port", "0",
         "--no-osc", "--device", "cpu"],
        stderr=subprocess.PIPE, text=True, env=os.environ | {"PYTHONUNBUFFERED": "1"})
    try:
        assert process.stderr is not None
        lines = []
        for line in process.stderr:
            lines.append(line)
            if "Ctrl-C" in line:
                break
        port = int(lines[-1].split("HTTP http://127.0.0.1:")[1].split("/")[0])
        children = subprocess.run(["pgrep", "-P", str(process.pid)], capture_output=True,
                                  text=True).stdout.split()
        assert len(children) >= 3  # the model's process and the readers
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            pending = pool.submit(post_port, port, {"abc": ONE_BAR["abc"], "bars": 64,
                                                    "variations": 4})
            time.sleep(1.0)  # the model is working on it
            process.send_signal(signal.SIGTERM)
            rest = process.communicate(timeout=60)[1]
            status = pending.result()[0]
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    log = "".join(lines) + rest
    assert process.returncode == 0, log
    assert "terminate called" not in log and "Traceback" not in log
    assert "segue serve: stopped" in log
    assert status in (200, 503)
    deadline = time.monotonic() + 10  # multiprocessing's resource tracker ends last

    def running(pid: str) -> bool:
        try:
            return "zombie" not in Path(f"/proc/{pid}/status").read_text().lower()
        except OSError:
            return False

    while any(running(pid) for pid in children) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not [pid for pid in children if running(pid)], "children still run"


def post_port(port: int, body: Any) -> tuple[int, dict[str, Any]]:
    try:
        return call(port, "POST", "/v1/continue", body, timeout=60)
    except OSError:  # the server stopped before answering
        return 503, {}
