"""A storm of reports beside ordinary reads: what the reports' lane (``app.lanes``) is for.

    python -m bench.storm [--lanes 0,4] [--rounds 2] [--duration 12]
                          [--report-connections 32] [--read-connections 16] [--reuse]

On ``bench.load``'s database (built as it builds it, or reused with ``--reuse``), the app
serves with one worker while two load generators run at once: the East manager asking for
the performance summary flat out on ``--report-connections`` connections, and the rep
reading customers one by one on ``--read-connections``. Each run starts the app with one
lane size (``SALESDESK_REPORT_CONCURRENCY``; 0 is no bound), alternating the sizes round by
round, and reports both generators' requests a second, p50 and p99, and their errors (a
503 from a report that waited longer than ``SALESDESK_REPORT_WAIT_SECONDS`` counts as one).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

from bench.bulk import log
from bench.load import (
    APP_PORT,
    OUT,
    SETTLE_SECONDS,
    Result,
    find_wrk,
    generator_result,
    latencies,
    prepare_fixture,
    start_generator,
    start_server,
    write_requests,
)
from bench.load import _stop as stop_server


def _run(
    args: argparse.Namespace,
    lane: int,
    files: dict[str, Path],
    tokens: dict[str, str],
    url: str,
    wrk: str | None,
    round_: int,
) -> tuple[Result, Result]:
    """One run at lane size ``lane``: the app started for it, warmed, stormed, stopped."""
    server = start_server("salesdesk", url, APP_PORT, {"SALESDESK_REPORT_CONCURRENCY": str(lane)})
    try:
        # Warm the pool and the caches with both kinds of request first.
        warm = argparse.Namespace(threads=args.threads, duration=3, connections=8)
        for key, user in (("summary", "manager"), ("read_one", "rep")):
            generator_result(start_generator(wrk, APP_PORT, files[key], tokens[user], warm))
        reports = start_generator(
            wrk,
            APP_PORT,
            files["summary"],
            tokens["manager"],
            argparse.Namespace(
                threads=args.threads, duration=args.duration, connections=args.report_connections
            ),
        )
        reads = start_generator(
            wrk,
            APP_PORT,
            files["read_one"],
            tokens["rep"],
            argparse.Namespace(
                threads=args.threads, duration=args.duration, connections=args.read_connections
            ),
        )
        results = (
            Result("summary", f"lane {lane}", round_, generator_result(reports)),
            Result("read_one", f"lane {lane}", round_, generator_result(reads)),
        )
        time.sleep(SETTLE_SECONDS)
    finally:
        stop_server(server)
    for result in results:
        data = result.data
        log(
            f"round {round_} lane {lane:>2} {result.route:<9} {result.rps:7.0f} req/s"
            f"  p50 {data['p50_us'] / 1000:7.1f} ms  p99 {data['p99_us'] / 1000:7.1f} ms"
            f"  errors {result.errors}  load {result.loadavg}"
        )
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lanes", default="0,4", help="lane sizes to compare (0: no bound)")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--duration", type=int, default=12, help="seconds per run")
    parser.add_argument("--report-connections", type=int, default=32)
    parser.add_argument("--read-connections", type=int, default=16)
    parser.add_argument("--threads", type=int, default=1, help="wrk threads per generator")
    parser.add_argument("--database", default="salesdesk_load")
    parser.add_argument("--reuse", action="store_true", help="keep the database of a last run")
    args = parser.parse_args()
    lanes = [int(x) for x in args.lanes.split(",")]

    wrk = find_wrk()
    if wrk is None:
        log("wrk not found: using bench/loadgen.py (Python; it competes for the same CPUs)")
    fixture = prepare_fixture(args.database, reuse=args.reuse)
    files = write_requests(fixture, args.threads)
    log(
        f"reports on {args.report_connections} connections, reads on {args.read_connections},"
        f" {args.duration} s a run, lanes {lanes}, {args.rounds} rounds"
    )
    results: list[Result] = []
    for round_ in range(1, args.rounds + 1):
        for lane in lanes:
            results.extend(_run(args, lane, files, fixture.tokens, fixture.url, wrk, round_))

    print()
    print(
        f"Storm: the summary on {args.report_connections} connections and read-one on "
        f"{args.read_connections} at once, {args.duration} s runs; {os.cpu_count()} CPUs"
    )
    print(f"{'lane':>5}  {'route':<9} {'req/s (runs)':<22} {'p50 ms':>8} {'p99 ms':>8}  errors")
    for lane in lanes:
        for route in ("summary", "read_one"):
            runs = [r for r in results if r.target == f"lane {lane}" and r.route == route]
            rps = ", ".join(f"{r.rps:.0f}" for r in runs)
            p50, p99, errors = latencies(runs)
            print(f"{lane:>5}  {route:<9} {rps:<22} {p50:8.1f} {p99:8.1f}  {errors}")
    print("p50: the median run's; p99: the worst run's; lane 0: no bound.")
    (OUT / "storm-results.json").write_text(
        json.dumps([r.__dict__ for r in results], indent=1, default=str)
    )


if __name__ == "__main__":
    main()
