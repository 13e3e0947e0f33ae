"""The soak, bounded in time: issue 19's hostile inputs and generated malformed ABC, events
and MusicXML, valid requests interleaved, four clients at once, /v1/health after each batch.
No answer is a 500, every valid request is continued, and nothing is left running.
bench/soak.py runs the same generator 10,000 times and measures it."""

from __future__ import annotations

import concurrent.futures
import random
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hostile import Request, batch, issue_inputs, musicxml_document
from server_helpers import (
    bar_lines,
    call,
    check_bars,
    check_events,
    running_server,
    wait_idle,
)

from bridge.service.server import Server

BATCHES, SIZE, VALID_EVERY = 8, 12, 4


@pytest.fixture(scope="module")
def server(model_path: Path) -> Iterator[Server]:
    with running_server(model_path, max_wait_s=120) as running:
        yield running


def send(server: Server, request: Request) -> tuple[int, dict[str, Any]]:
    return call(server.http_port, "POST", "/v1/continue", request.body, timeout=300)


def check(request: Request, status: int, answer: dict[str, Any]) -> None:
    """A valid request continued; any other answered with a 4xx, a 503, or (if it was valid
    after all) a continuation of the bars asked for."""
    if request.valid:
        assert status == 200, (request.kind, answer)
        if "events" in answer:
            check_events(answer, request.bars, answer["events"]["time_signature"])
        check_bars(answer["abc"], request.bars)
        return
    if status == 200:  # malformed music that reads after all; one that stops mid-bar is
        counts = set(bar_lines(answer["abc"]).values())  # answered by completing that bar
        assert counts in ({request.bars}, {request.bars + 1}), (request.kind, answer)
        return
    code = answer["error"]["code"]
    assert 400 <= status < 500 or (status == 503 and code in ("busy", "timeout", "crashed")), \
        (request.kind, status, answer)
    assert answer["error"]["message"]


def test_soak(server: Server) -> None:
    rng, document = random.Random(19), musicxml_document()
    hostile = issue_inputs()
    statuses: Counter[int] = Counter()
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        for _ in range(BATCHES):
            requests = batch(rng, document, SIZE, VALID_EVERY) + rng.sample(hostile, 2)
            rng.shuffle(requests)
            for request, (status, answer) in zip(
                    requests, pool.map(lambda r: send(server, r), requests), strict=True):
                statuses[status] += 1
                check(request, status, answer)
            status, health = call(server.http_port, "GET", "/v1/health", timeout=10)
            assert status == 200 and health["status"] == "ok"
    assert 500 not in statuses and statuses[200] >= BATCHES * SIZE // VALID_EVERY
    wait_idle(server)
