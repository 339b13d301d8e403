"""A small HTTP/1.1 load generator, for machines without wrk.

It reads the same request file as ``requests.lua`` (METHOD <tab> PATH [<tab> body]) and
prints the same ``BENCH_RESULT {json}`` line, so ``bench/load.py`` treats both alike. Each
connection is one keep-alive socket sending its next request when the last one answered
(closed loop, like wrk), and, as wrk's threads do, ``--threads`` groups of connections
each take the next line of their own share of the file in turn. Being Python it costs more
CPU per request than wrk, which on a small machine leaves the server less: compare figures
from one generator only.

``--rate R`` makes it an open loop instead, as wrk2 is: R requests a second in all, each
connection sending on a fixed schedule (its share of R, the connections' schedules evenly
staggered) whether or not its last answer came, and each latency is counted from the time
the request was due, not from when it went out; a server that falls behind shows its
backlog in the latencies (no coordinated omission). wrk has no such mode.

    python -m bench.loadgen --url http://127.0.0.1:8000 --requests FILE --token T [--rate R]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from urllib.parse import urlsplit


def _prepared(path: str, host: str, token: str) -> list[bytes]:
    out = []
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            line = line.rstrip("\n")
            if not line:
                continue
            method, target, *rest = line.split("\t")
            body = rest[0].encode() if rest and rest[0] else b""
            head = [
                f"{method} {target} HTTP/1.1",
                f"Host: {host}",
                f"Authorization: Bearer {token}",
                "Accept: application/json",
                f"Content-Length: {len(body)}",
            ]
            if body:
                head.append("Content-Type: application/json")
            out.append(("\r\n".join(head) + "\r\n\r\n").encode() + body)
    return out


class Share:
    """One group's part of the request file, handed out line by line to its connections."""

    def __init__(self, requests: list[bytes]) -> None:
        self.requests = requests
        self.position = 0

    def next(self) -> bytes:
        request = self.requests[self.position % len(self.requests)]
        self.position += 1
        return request


def _shares(requests: list[bytes], threads: int) -> list[Share]:
    # As requests.lua splits the file among wrk's threads.
    if len(requests) < threads:
        return [Share(requests) for _ in range(threads)]
    size = len(requests) // threads
    return [
        Share(requests[t * size : len(requests) if t == threads - 1 else (t + 1) * size])
        for t in range(threads)
    ]


async def _connection(
    host: str,
    port: int,
    share: Share,
    deadline: float,
    schedule: tuple[float, float] | None,
    latencies: list[float],
    counts: dict[str, int],
) -> None:
    """Closed loop without ``schedule``; with one, (first due time, interval) of a fixed rate."""
    reader, writer = await asyncio.open_connection(host, port)
    due, interval = schedule if schedule else (0.0, 0.0)
    try:
        while True:
            if schedule:
                if due >= deadline:
                    break
                wait = due - time.perf_counter()
                if wait > 0:
                    await asyncio.sleep(wait)
                began, due = due, due + interval
            else:
                began = time.perf_counter()
                if began >= deadline:
                    break
            request = share.next()
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head[9:12])
            length = 0
            for line in head.split(b"\r\n"):
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            if length:
                await reader.readexactly(length)
            latencies.append(time.perf_counter() - began)
            if not 200 <= status < 400:
                counts["status_errors"] += 1
    except (OSError, asyncio.IncompleteReadError):
        counts["read_errors"] += 1
    finally:
        writer.close()


async def main(args: argparse.Namespace) -> None:
    url = urlsplit(args.url)
    host, port = url.hostname or "127.0.0.1", url.port or 80
    requests = _prepared(args.requests, f"{host}:{port}", args.token)
    counts = {"status_errors": 0, "read_errors": 0}
    latencies: list[float] = []
    began = time.perf_counter()
    deadline = began + args.duration
    shares = _shares(requests, args.threads)
    interval = args.connections / args.rate if args.rate else 0.0

    def schedule(i: int) -> tuple[float, float] | None:
        return (began + interval * i / args.connections, interval) if args.rate else None

    await asyncio.gather(
        *(
            _connection(
                host, port, shares[i % args.threads], deadline, schedule(i), latencies, counts
            )
            for i in range(args.connections)
        )
    )
    elapsed = time.perf_counter() - began
    ordered = sorted(latencies) or [0.0]

    def percentile(p: float) -> int:
        return int(ordered[min(len(ordered) - 1, int(len(ordered) * p / 100))] * 1e6)

    print(
        "BENCH_RESULT "
        + json.dumps(
            {
                "requests": len(latencies),
                "duration_us": int(elapsed * 1e6),
                "connect_errors": 0,
                "read_errors": counts["read_errors"],
                "write_errors": 0,
                "status_errors": counts["status_errors"],
                "timeouts": 0,
                "p50_us": percentile(50),
                "p90_us": percentile(90),
                "p99_us": percentile(99),
                "max_us": int(ordered[-1] * 1e6),
                "mean_us": sum(ordered) / len(ordered) * 1e6,
            }
        ),
        flush=True,
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--url", required=True)
    parser.add_argument("--requests", required=True)
    parser.add_argument("--token", required=True)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--duration", type=float, default=12.0)
    parser.add_argument(
        "--rate", type=float, default=None, help="requests a second in all (open loop)"
    )
    arguments = parser.parse_args()
    try:
        from uvloop import run
    except ImportError:
        run = asyncio.run
    run(main(arguments))
