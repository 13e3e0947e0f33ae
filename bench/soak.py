"""The soak: thousands of hostile, malformed and valid requests against a real `segue serve`.

    python bench/soak.py                                 # the shipped model, 10,000 requests
    python bench/soak.py --requests 2000 --concurrency 8 --model PATH
    python bench/soak.py --minutes 4                     # as many as 4 minutes allow

`segue serve` runs as a child process on a free loopback port (HTTP only). The requests come
from the suite's generator (tests/hostile.py): malformed ABC, events and MusicXML, fields of
odd kinds, the inputs issue 19 reproduced, and raw HTTP junk, with a valid 1- or 2-bar request
every `--valid-every`, from `--concurrency` clients at once, and /v1/health after every
batch. It prints the answers counted by status and code, the requests that got no answer,
p50/p99 latency of the valid requests, and the resident memory of the server's processes
(the server and its model and reader processes) after the warm-up and every 1,000 requests.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from hostile import Request, batch, issue_inputs, musicxml_document  # noqa: E402
from server_helpers import exchange, raw_exchange  # noqa: E402

RAW = [  # HTTP junk: each must get a 4xx (or 505) or a plain close, never a 500
    b"POST /v1/continue HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: \xb2\r\n\r\n{}",
    b"POST /v1/continue HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 100\r\n\r\n{}",
    b"GET /v1/health HTTP/1.1\r\nHost: 127.0.0.1\r\nHost: 127.0.0.1\r\n\r\n",
    b"GET /v1/health HTTP/2.0\r\nHost: 127.0.0.1\r\n\r\n",
    b"\x16\x03\x01\x02\x00 hello there\r\n\r\n",
    b"GET /v1/\x1b[2J HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
    b"POST /v1/continue HTTP/1.1\r\nHost: evil.example\r\nContent-Length: 2\r\n\r\n{}",
]


def tree_rss_mb(pid: int) -> dict[str, float]:
    """Resident memory (MB) of the server's process and of each of its children."""
    result = {}
    children = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True,
                              text=True).stdout.split()
    for each in [str(pid), *children]:
        try:
            status = Path(f"/proc/{each}/status").read_text()
        except OSError:
            continue
        rss = next(int(line.split()[1]) for line in status.splitlines()
                   if line.startswith("VmRSS"))
        result[f"{'server' if each == str(pid) else 'child'} {each}"] = rss / 1024
    return result


def start_server(model: str | None, log: Path) -> tuple[subprocess.Popen, int]:
    """`segue serve` on a free port, logging to `log`: (the process, its HTTP port)."""
    command = [sys.executable, "-m", "bridge", "serve", "--port", "0", "--no-osc"]
    command += ["--model", model] if model else []
    with open(log, "w") as stderr:
        process = subprocess.Popen(command, stderr=stderr, cwd=ROOT,
                                   env=os.environ | {"PYTHONPATH": str(ROOT)})
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline and process.poll() is None:
        banner = [line for line in log.read_text().splitlines() if "Ctrl-C" in line]
        if banner:
            return process, int(banner[0].split("HTTP http://127.0.0.1:")[1].split("/")[0])
        time.sleep(0.2)
    process.kill()
    raise SystemExit(f"segue serve did not start; see {log}")


def send(port: int, request: Request | bytes) -> tuple[str, float]:
    """One request: ("<status> <code>", seconds); "no answer" if none came."""
    started = time.perf_counter()
    try:
        if isinstance(request, bytes):
            answer = raw_exchange(port, request, timeout=120)
            status = answer.split(b" ", 2)[1].decode() if answer else "closed"
            return f"{status} raw", time.perf_counter() - started
        status, _, body = exchange(port, "POST", "/v1/continue", request.body, timeout=600)
    except (OSError, ValueError, IndexError) as error:
        return f"no answer ({type(error).__name__})", time.perf_counter() - started
    code = body.get("error", {}).get("code", "ok")
    return f"{status} {code}", time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=None, help="name or checkpoint folder (default: "
                        "the shipped default model)")
    parser.add_argument("--requests", type=int, default=10_000)
    parser.add_argument("--minutes", type=float, default=None,
                        help="stop sending after this long (whole batches; default: no limit)")
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--valid-every", type=int, default=5)
    parser.add_argument("--batch", type=int, default=50, help="requests between health checks")
    parser.add_argument("--seed", type=int, default=19)
    parser.add_argument("--json", metavar="FILE", help="also write the figures here")
    parser.add_argument("--log", metavar="FILE", default="soak-server.log",
                        help="the server's log (default soak-server.log)")
    args = parser.parse_args()

    rng, document, hostile = random.Random(args.seed), musicxml_document(), issue_inputs()
    process, port = start_server(args.model, Path(args.log))
    counts: Counter[str] = Counter()
    valid_s: list[float] = []
    memory: list[tuple[int, dict[str, float]]] = []
    health_fail = 0
    started = time.monotonic()
    try:
        with concurrent.futures.ThreadPoolExecutor(args.concurrency) as pool:
            sent = 0
            stop_at = started + (args.minutes * 60 if args.minutes else float("inf"))
            while sent < args.requests and time.monotonic() < stop_at:
                size = min(args.batch, args.requests - sent)
                requests: list[Request | bytes] = list(batch(rng, document, size,
                                                             args.valid_every))
                for index in range(0, size, 10):  # one in ten: issue 19's or raw junk
                    requests[index] = rng.choice(hostile) if rng.random() < 0.5 \
                        else rng.choice(RAW)
                for request, (outcome, seconds) in zip(
                        requests, pool.map(lambda r: send(port, r), requests), strict=True):
                    counts[outcome] += 1
                    if isinstance(request, Request) and request.valid:
                        valid_s.append(seconds)
                        counts["valid: " + outcome] += 1
                health, _, _ = exchange(port, "GET", "/v1/health", timeout=30)
                health_fail += health != 200
                if sent == 0 or (sent + size) // 1000 > sent // 1000:
                    memory.append((sent + size, tree_rss_mb(process.pid)))
                    print(f"{sent + size} requests, {time.monotonic() - started:.0f} s, "
                          f"memory {sum(memory[-1][1].values()):.0f} MB", flush=True)
                sent += size
            if memory and memory[-1][0] != sent:  # and at the end
                memory.append((sent, tree_rss_mb(process.pid)))
    finally:
        process.terminate()
        process.wait(60)
    report = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.system()}",
        "requests": sent, "seconds": round(time.monotonic() - started),
        "counts": dict(sorted(counts.items())), "health_failures": health_fail,
        "valid_p50_ms": round(statistics.median(valid_s) * 1000),
        "valid_p99_ms": round(statistics.quantiles(valid_s, n=100)[98] * 1000),
        "memory_mb": [{"after": n, "total": round(sum(m.values())),
                       "processes": {k: round(v) for k, v in m.items()}} for n, m in memory],
    }
    print(json.dumps(report, indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1) + "\n")


if __name__ == "__main__":
    main()
