"""Latency of a continuation over HTTP, and what the server adds to a direct Engine call.

    python bench/server_latency.py                       # the default model, 8 bars, 20 runs
    python bench/server_latency.py --model PATH --runs 40 --bars 4

The server runs in this process on a free loopback port (HTTP only). For each seed the same
8-bar continuation is asked for directly from the Engine and over HTTP, one after the other,
so both see the same machine. The server's overhead is measured per request: the client's
wall time minus the time the worker spent in the model's process for that request
(`engine_ms` of the answer): JSON, HTTP, the queue, and the reader process's music21 work
(reading the prompt; for events, also writing the answer back as events).
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import statistics
import time

PROMPT = "X:1\nM:4/4\nL:1/8\nK:G\nGABc d2B2|c2A2 B2G2|A2F2 G2E2|D2G2 G4|\n"
EVENTS = {"time_signature": "4/4", "key": 1, "staves": [[
    {"onset": f"{i}/8", "duration": "1/8", "pitches": [p]}
    for i, p in enumerate([67, 69, 71, 72, 74, 74, 71, 71, 72, 72, 69, 69, 71, 71, 67, 67])]]}


def percentiles(values: list[float]) -> tuple[float, float]:
    """p50 and p95 (linear interpolation between the closest ranks)."""
    ordered = sorted(values)
    return statistics.median(ordered), statistics.quantiles(ordered, n=20, method="inclusive")[18]


def post(connection: http.client.HTTPConnection, body: dict) -> tuple[float, dict]:
    """One request on a kept-alive connection: (client wall ms, answer)."""
    data = json.dumps(body).encode()
    started = time.perf_counter()
    connection.request("POST", "/v1/continue", body=data,
                       headers={"Content-Type": "application/json"})
    response = connection.getresponse()
    answer = json.loads(response.read())
    elapsed = (time.perf_counter() - started) * 1000
    if response.status != 200:
        raise SystemExit(f"the server answered {response.status}: {answer}")
    return elapsed, answer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=None, help="name or checkpoint folder (default: "
                        "the shipped default model)")
    parser.add_argument("--bars", type=int, default=8)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=2)
    args = parser.parse_args()

    import torch

    from bridge.service.server import Server
    from bridge.service.worker import Worker
    from engine.models.continuation import Engine, Sampling

    worker = Worker(args.model, device="cpu").start()
    engine = Engine.load(args.model, device="cpu")  # the same model, called directly
    info = worker.default_info
    rows: dict[str, list[float]] = {"direct Engine call": [], "HTTP, abc form": [],
                                    "  server overhead (abc)": [], "HTTP, events form": [],
                                    "  server overhead (events)": []}
    with Server(worker, port=0, osc_port=None) as server:
        connection = http.client.HTTPConnection("127.0.0.1", server.http_port, timeout=600)
        for seed in range(-args.warmup, args.runs):
            sampling = Sampling(seed=abs(seed))
            started = time.perf_counter()
            engine.continue_abc(PROMPT, bars=args.bars, sampling=sampling)
            direct = (time.perf_counter() - started) * 1000
            abc_ms, abc = post(connection, {"abc": PROMPT, "bars": args.bars, "seed": abs(seed)})
            events_ms, events = post(connection, {"events": EVENTS, "bars": args.bars,
                                                  "seed": abs(seed)})
            if seed < 0:
                continue  # warm-up
            for name, value in (("direct Engine call", direct), ("HTTP, abc form", abc_ms),
                                ("  server overhead (abc)", abc_ms - abc["engine_ms"]),
                                ("HTTP, events form", events_ms),
                                ("  server overhead (events)", events_ms - events["engine_ms"])):
                rows[name].append(value)
        connection.close()
    worker.stop()

    print(f"Segue server latency: model {info['name']} ({info['architecture']}, "
          f"{info['parameters'] or 0:,} parameters) on {worker.device}; {args.bars} bars, "
          f"{args.runs} runs")
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPU cores, torch "
          f"{torch.__version__} with {torch.get_num_threads()} threads\n")
    print(f"| {'':28} | {'p50 ms':>8} | {'p95 ms':>8} |")
    print(f"|{'-' * 30}|{'-' * 10}:|{'-' * 10}:|")
    for name, values in rows.items():
        p50, p95 = percentiles(values)
        print(f"| {name:28} | {p50:8.1f} | {p95:8.1f} |")


if __name__ == "__main__":
    main()
