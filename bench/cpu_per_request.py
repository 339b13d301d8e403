"""CPU per request of the routes the load benchmark drives, measured in process.

    python -m bench.cpu_per_request [--routes read_one,list_50] [--n 2000] [--rounds 3]
                                    [--profile] [--top 40] [--reload]

The app is built as deployed (``app.main.create_app`` with its lifespan, rate limiting on
with the limits raised, the JSON access log written to ``var/bench/cpu.log``), without
uvicorn: requests go one after another through ``httpx.AsyncClient`` over
``httpx.ASGITransport``, so routing, middleware, auth, SQL, ORM and serialisation all count,
while the network, the HTTP parser and PostgreSQL's own CPU (another process) do not. The
figure is ``time.process_time()`` per request: this process's CPU, whatever else runs on the
machine, so it is far steadier than wrk's requests a second on a shared machine.

The database is ``salesdesk_cpu`` (``--database``), built like ``bench.load``'s (the demo
organisation, its saved settings, 10,000 more customers with follow-ups, 15,000 open
opportunities of ``east.rep1``), once: later runs reuse it (``--reload`` builds it again).
Requests, as in ``bench/requests.lua``: ``east.rep1`` reads its customers one by one, lists
50, records a done follow-up on each customer in turn and moves each opportunity from
``lead`` to ``contacted`` (the moved ones are put back to ``lead``, and the tables the writes
churn vacuumed, before each route starts and whenever every one has moved:
``bench.bulk.reset_opportunities``); the East manager asks for the performance summary.
``--routes follow_ups_50``, not among the defaults, lists the rep's 50 newest follow-ups.

Each route gets ``--warmup`` requests, then ``--rounds`` rounds of ``--n``; the table gives
the median round and the best, and the last round's user, system and wall milliseconds.
``client`` is the same client against an ASGI app that answers a fixed small JSON at once:
what httpx itself costs per request, included in every other figure. CPU time still grows
when other processes crowd the machine (caches, frequency): compare runs made one after
the other, alternating the versions compared, rather than figures from different hours.
``--unfreeze`` undoes the app's start-up ``gc.freeze()`` and ``--gc-threshold`` sets the
collector's thresholds, to measure what either is worth. ``--profile`` runs one more round
per route under cProfile and prints the ``--top`` entries by cumulative time (``--sort
tottime`` for own time), and keeps the profile in ``var/bench/cpu-<route>.prof``.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import io
import json
import logging
import os
import pstats
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from bench.bulk import (
    bench_env,
    database_exists,
    database_url,
    log,
    migrate,
    reset_opportunities,
)

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "var" / "bench"
ROUTES = ("read_one", "list_50", "create_follow_up", "move_stage", "summary")
# Not in the load benchmark, measured on request: the rep's follow-ups, newest first.
OTHER_ROUTES = ("follow_ups_50",)


@dataclass
class Fixture:
    tokens: dict[str, str]
    customer_ids: list[str]
    opportunity_ids: list[str]


def _prepare(url: str, reload: bool) -> Fixture:
    """The database and the ids the requests use; built once, like bench.load's."""
    saved = OUT / f"cpu-fixture-{url.rsplit('/', 1)[-1]}.json"
    if not reload and saved.exists() and asyncio.run(database_exists(url)):
        data = json.loads(saved.read_text())
        log(f"reusing {url.rsplit('/', 1)[-1]}")
        return Fixture(data["tokens"], data["customers"], data["opportunities"])
    from bench.bulk import recreate_database
    from bench.load import _seed

    log(f"building {url.rsplit('/', 1)[-1]} (a few minutes)")
    asyncio.run(recreate_database(url))
    migrate(url)
    built = asyncio.run(_seed(url))
    fixture = Fixture(
        built.tokens,
        [str(c) for c in built.customer_ids],
        [str(o) for o in built.opportunity_ids],
    )
    OUT.mkdir(parents=True, exist_ok=True)
    saved.write_text(
        json.dumps(
            {
                "tokens": fixture.tokens,
                "customers": fixture.customer_ids,
                "opportunities": fixture.opportunity_ids,
            }
        )
    )
    return fixture


Request = tuple[str, str, dict[str, Any] | None]


def _requests(route: str, fixture: Fixture) -> Callable[[int], Request]:
    """The i-th request of a route (method, path, JSON body)."""
    customers, opportunities = fixture.customer_ids, fixture.opportunity_ids
    if route == "read_one":
        return lambda i: ("GET", f"/api/v1/customers/{customers[i % len(customers)]}", None)
    if route == "list_50":
        return lambda _i: ("GET", "/api/v1/customers?limit=50", None)
    if route == "create_follow_up":
        return lambda i: (
            "POST",
            "/api/v1/follow-ups",
            {
                "customer_id": customers[i % len(customers)],
                "kind": "call",
                "status": "done",
                "summary": "Called about the delivery schedule.",
                "outcome": "Wants a visit next month.",
            },
        )
    if route == "move_stage":
        return lambda i: (
            "POST",
            f"/api/v1/opportunities/{opportunities[i % len(opportunities)]}/transitions",
            {"to": "contacted"},
        )
    if route == "summary":
        return lambda _i: ("GET", "/api/v1/performance/summary", None)
    if route == "follow_ups_50":
        return lambda _i: ("GET", "/api/v1/follow-ups?limit=50", None)
    raise SystemExit(f"unknown route {route!r}; routes: {', '.join(ROUTES + OTHER_ROUTES)}")


async def _fixed_answer(scope: Any, receive: Any, send: Any) -> None:
    """The cheapest ASGI app: what the client costs per request, for reference."""
    if scope["type"] != "http":
        return
    while (await receive()).get("more_body"):
        pass
    body = b'{"id":"00000000-0000-0000-0000-000000000001","name":"x"}'
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _run(
    client: httpx.AsyncClient, make: Callable[[int], Request], start: int, n: int, token: str
) -> float:
    """CPU seconds for n requests, sequentially; every answer must be a success."""
    headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
    began = time.process_time()
    for i in range(start, start + n):
        method, path, body = make(i)
        response = await client.request(method, path, json=body, headers=headers)
        if response.status_code >= 300:
            raise SystemExit(f"{method} {path}: {response.status_code} {response.text[:300]}")
    return time.process_time() - began


async def _measure(args: argparse.Namespace, url: str, fixture: Fixture) -> None:
    from app.main import create_app

    app = create_app()
    # The access log goes to a file, as when served (bench.load), not to the terminal.
    OUT.mkdir(parents=True, exist_ok=True)
    log_file = (OUT / "cpu.log").open("w")
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.StreamHandler):
            handler.setStream(log_file)
    routes = [r for r in args.routes.split(",") if r]
    results: dict[str, list[float]] = {}
    # The last round's user and system CPU and wall time (system time is the socket calls).
    splits: dict[str, tuple[float, float, float]] = {}
    async with app.router.lifespan_context(app):
        if args.unfreeze:
            gc.unfreeze()  # what the app's start-up gc.freeze() saves, measured
        if args.gc_threshold:
            gc.set_threshold(*(int(x) for x in args.gc_threshold.split(",")))
        transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 40000))
        async with (
            httpx.AsyncClient(transport=transport, base_url="http://bench") as client,
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=_fixed_answer), base_url="http://bench"
            ) as plain,
        ):
            fixed = _requests("read_one", fixture)
            await _run(plain, fixed, 0, args.warmup, "x")
            results["client"] = [
                await _run(plain, fixed, 0, args.n, "x") for _ in range(args.rounds)
            ]
            for route in routes:
                make = _requests(route, fixture)
                token = fixture.tokens["manager" if route == "summary" else "rep"]
                await reset_opportunities(url, fixture.opportunity_ids)  # and vacuums
                position = 0
                await _run(client, make, position, args.warmup, token)
                position += args.warmup
                results[route] = []
                for _ in range(args.rounds):
                    if route == "move_stage" and position + args.n > len(fixture.opportunity_ids):
                        await reset_opportunities(url, fixture.opportunity_ids)
                        position = 0
                    times, wall = os.times(), time.perf_counter()
                    results[route].append(await _run(client, make, position, args.n, token))
                    after = os.times()
                    splits[route] = (
                        after.user - times.user,
                        after.system - times.system,
                        time.perf_counter() - wall,
                    )
                    position += args.n
                log(f"{route}: " + ", ".join(f"{t / args.n * 1000:.3f}" for t in results[route]))
            if args.profile:
                for route in routes:
                    make = _requests(route, fixture)
                    token = fixture.tokens["manager" if route == "summary" else "rep"]
                    if route == "move_stage":
                        await reset_opportunities(url, fixture.opportunity_ids)
                    profiler = cProfile.Profile()
                    profiler.enable()
                    await _run(client, make, 0, args.n, token)
                    profiler.disable()
                    text = io.StringIO()
                    stats = pstats.Stats(profiler, stream=text).sort_stats(args.sort)
                    stats.print_stats(args.top)
                    stats.dump_stats(OUT / f"cpu-{route}.prof")
                    print(f"\n=== {route}: cProfile of {args.n} requests, by {args.sort} ===")
                    print(text.getvalue())
    log_file.close()
    print(
        f"\nCPU ms per request ({args.n} requests a round, {args.rounds} rounds; "
        f"gc frozen objects {gc.get_freeze_count()}, thresholds {gc.get_threshold()})"
    )
    print(f"{'route':<18} {'median':>8} {'best':>8}   last round: user, system, wall")
    for route, times in results.items():
        per = [t / args.n * 1000 for t in times]
        split = " ".join(f"{t / args.n * 1000:7.3f}" for t in splits.get(route, ()))
        print(f"{route:<18} {statistics.median(per):8.3f} {min(per):8.3f}   {split}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--routes", default=",".join(ROUTES))
    parser.add_argument("--n", type=int, default=2000, help="requests per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument("--profile", action="store_true", help="one more round under cProfile")
    parser.add_argument("--top", type=int, default=40)
    parser.add_argument("--sort", default="cumulative", help="cumulative or tottime")
    parser.add_argument(
        "--unfreeze", action="store_true", help="undo the app's gc.freeze() (to compare)"
    )
    parser.add_argument("--gc-threshold", help="gc.set_threshold after start-up, e.g. 700,10,10")
    parser.add_argument("--database", default="salesdesk_cpu")
    parser.add_argument("--reload", action="store_true", help="build the database again")
    args = parser.parse_args()
    url = database_url(args.database)
    # The served app's environment (bench.load): this database, the bench key, limits raised
    # so one user's requests are counted but never refused. No in-process worker: its polls
    # would add CPU that no request causes.
    os.environ.update(bench_env(url))
    os.environ["SALESDESK_RUN_WORKER"] = "false"
    from app.config import get_settings

    get_settings.cache_clear()
    fixture = _prepare(url, args.reload)
    asyncio.run(_measure(args, url, fixture))


if __name__ == "__main__":
    main()
