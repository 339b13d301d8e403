"""Load benchmark: the served app against a minimal Starlette + asyncpg app, on PostgreSQL.

    python -m bench.load [--duration 12] [--connections 32] [--rounds 2] [--profile] [--rate R]

It builds its own database (``salesdesk_load``: the demo organisation plus 10,000 customers,
50,000 follow-ups and 15,000 open opportunities), starts the app and ``bench/minimal_app.py``
with uvicorn (one worker each, same options), and drives them with wrk from a second
process, alternating the two apps run by run. Routes, as the demo rep ``east.rep1`` (the
summary as the East manager): read one customer, list 50 customers, create a follow-up,
move an opportunity one stage, the performance summary. ``--profile`` adds one run per route
under py-spy (not counted) and writes where the time went to ``var/bench/``. ``--rate R``
sends R requests a second instead of each connection's next as soon as its last is answered
(an open loop, through ``bench/loadgen.py``): the latencies at a given load rather than at
saturation. Every route runs against both apps (the minimal app has the least
implementation of each; for the summary, the app's own statement, captured from one request
by ``bench.summary_statements``); the table ends with each route's throughput and CPU
ratios and whether its p99 met 50 ms, beside the minimal app's.

wrk comes from Debian; when it is missing the script installs it if it runs as root with
apt-get, else it falls back to ``bench/loadgen.py`` (Python, slower: it says so).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg

from bench.bulk import (
    Owner,
    access_token,
    bench_env,
    database_url,
    insert_customers,
    log,
    migrate,
    plain_dsn,
    recreate_database,
    reset_opportunities,
)

ROOT = Path(__file__).resolve().parent.parent
SETTLE_SECONDS = 2.0
OUT = ROOT / "var" / "bench"
BIN = Path(sys.executable).parent
APP_PORT, MINIMAL_PORT = 18431, 18432
CUSTOMERS, FOLLOW_UPS_EACH, OPPORTUNITIES = 10_000, 5, 15_000


@dataclass(frozen=True)
class Route:
    key: str
    title: str
    user: str  # "rep" or "manager"
    targets: tuple[str, ...] = ("salesdesk",)


# Every route has its least implementation in bench/minimal_app.py.
BOTH = ("salesdesk", "minimal")
ROUTES = [
    Route("read_one", "read one customer", "rep", BOTH),
    Route("list_50", "list 50 customers", "rep", BOTH),
    Route("create_follow_up", "create a follow-up", "rep", BOTH),
    Route("move_stage", "move an opportunity one stage", "rep", BOTH),
    Route("summary", "performance summary", "manager", BOTH),
]


@dataclass
class Fixture:
    url: str
    tokens: dict[str, str]
    customer_ids: list[uuid.UUID]
    opportunity_ids: list[uuid.UUID]


@dataclass
class Result:
    route: str
    target: str
    round: int
    data: dict[str, Any]
    cpu_seconds: float = 0.0  # the server process's CPU during the run
    loadavg: str = field(default_factory=lambda: Path("/proc/loadavg").read_text().split()[0])

    @property
    def rps(self) -> float:
        return float(self.data["requests"]) / (self.data["duration_us"] / 1e6)

    @property
    def cpu_ms(self) -> float:
        """Server CPU per request: steadier than requests a second on a shared machine."""
        return 1000 * self.cpu_seconds / max(1, int(self.data["requests"]))

    @property
    def errors(self) -> int:
        keys = ("connect_errors", "read_errors", "write_errors", "status_errors", "timeouts")
        return sum(int(self.data[k]) for k in keys)


# Set-up -------------------------------------------------------------------------------


async def _seed(url: str) -> Fixture:
    from app.config import get_settings
    from app.db import Database, create_engine
    from app.seed import seed_demo
    from app.services import department

    database = Database(create_engine(get_settings(), url))
    try:
        await seed_demo(database)
        # A department that has saved its rules once, as a live one has: the settings row
        # exists (without it every request looks for it once more and finds the defaults).
        async with database.session() as session, session.begin():
            await department.update(session, {"dormant_after_days": 180}, None)
    finally:
        await database.dispose()
    conn = await asyncpg.connect(plain_dsn(url))
    try:
        users = {
            row["email"]: row
            for row in await conn.fetch("SELECT id, email, role, region_id FROM users")
        }
        rep = users["east.rep1@example.com"]
        manager = users["east.manager@example.com"]
        reps = [users[e] for e in sorted(users) if users[e]["role"] == "rep"]
        owners = [Owner(r["id"], r["region_id"]) for r in reps]
        await insert_customers(conn, CUSTOMERS, owners, FOLLOW_UPS_EACH)
        customer_ids = [
            r["id"]
            for r in await conn.fetch(
                "SELECT id FROM customers WHERE owner_id = $1 AND deleted_at IS NULL", rep["id"]
            )
        ]
        # Open opportunities of the rep's customers, in the first stage, needs recorded.
        await conn.execute(
            """
            INSERT INTO opportunities (id, version, created_at, updated_at, customer_id, title,
                amount, expected_close_date, needs_summary, stage, owner_id, region_id)
            SELECT gen_random_uuid(), 1, now() - make_interval(mins => n), now(), c.id,
                   'Bench deal ' || n, 1000 + n % 90000, current_date + n % 120,
                   'Two lines, budget approved.', 'lead', c.owner_id, c.region_id
              FROM generate_series(1, $2) AS n
              JOIN LATERAL (SELECT id, owner_id, region_id FROM customers
                             WHERE id = ($1::uuid[])[1 + n % cardinality($1::uuid[])]) c ON true
            """,
            customer_ids,
            OPPORTUNITIES,
        )
        opportunity_ids = [
            r["id"]
            for r in await conn.fetch(
                "SELECT id FROM opportunities WHERE title LIKE 'Bench deal %' ORDER BY title"
            )
        ]
        await conn.execute("VACUUM ANALYZE")
    finally:
        await conn.close()
    tokens = {
        "rep": access_token(rep["id"], rep["role"], rep["region_id"]),
        "manager": access_token(manager["id"], manager["role"], manager["region_id"]),
    }
    random.Random(8).shuffle(customer_ids)
    return Fixture(url, tokens, customer_ids, opportunity_ids)


def prepare_fixture(database: str, *, reuse: bool) -> Fixture:
    """The load database and the ids and tokens the requests use: built, or with ``reuse``
    the last one built (``var/bench/load-fixture.json``)."""
    url = database_url(database)
    OUT.mkdir(parents=True, exist_ok=True)
    fixture_file = OUT / "load-fixture.json"
    if reuse and fixture_file.exists():
        saved = json.loads(fixture_file.read_text())
        log(f"reusing {database}")
        return Fixture(
            url,
            saved["tokens"],
            [uuid.UUID(c) for c in saved["customers"]],
            [uuid.UUID(o) for o in saved["opportunities"]],
        )
    log(f"building {database} on {url.rsplit('@', 1)[-1]}")
    asyncio.run(recreate_database(url))
    migrate(url)
    os.environ["SALESDESK_SECRET_KEY"] = bench_env(url)["SALESDESK_SECRET_KEY"]
    fixture = asyncio.run(_seed(url))
    fixture_file.write_text(
        json.dumps(
            {
                "tokens": fixture.tokens,
                "customers": [str(c) for c in fixture.customer_ids],
                "opportunities": [str(o) for o in fixture.opportunity_ids],
            }
        )
    )
    return fixture


def write_requests(fixture: Fixture, threads: int) -> dict[str, Path]:
    """One request file per route (see requests.lua for the format)."""
    OUT.mkdir(parents=True, exist_ok=True)
    files: dict[str, list[str]] = {
        "read_one": [f"GET\t/api/v1/customers/{c}" for c in fixture.customer_ids],
        "list_50": ["GET\t/api/v1/customers?limit=50"],
        "create_follow_up": [
            "POST\t/api/v1/follow-ups\t"
            + json.dumps(
                {
                    "customer_id": str(c),
                    "kind": "call",
                    "status": "done",
                    "summary": "Called about the delivery schedule.",
                    "outcome": "Wants a visit next month.",
                },
                separators=(",", ":"),
            )
            for c in fixture.customer_ids
        ],
        "summary": ["GET\t/api/v1/performance/summary"],
    }
    # Each wrk thread walks its share of the opportunities one stage forward, then back
    # again with a note (a rep correcting a move), then forward again: every request moves
    # a different opportunity from where the previous one left it.
    moves: list[str] = []
    share = len(fixture.opportunity_ids) // threads
    for t in range(threads):
        chunk = fixture.opportunity_ids[t * share : (t + 1) * share]
        forward = '{"to":"contacted"}'
        back = '{"to":"lead","note":"Moved too early; no call yet."}'
        moves += [f"POST\t/api/v1/opportunities/{o}/transitions\t{forward}" for o in chunk]
        moves += [f"POST\t/api/v1/opportunities/{o}/transitions\t{back}" for o in chunk]
    files["move_stage"] = moves
    paths = {}
    for key, lines in files.items():
        path = OUT / f"requests-{key}.txt"
        path.write_text("\n".join(lines) + "\n")
        paths[key] = path
    return paths


# Servers and the load generator -------------------------------------------------------


def serve(
    name: str, port: int, app_args: list[str], env: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    """``uvicorn <app_args>`` with one worker and the load benchmark's options, its output in
    ``var/bench/<name>.log``, once its ``/healthz`` answers."""
    command = [
        str(BIN / "uvicorn"),
        *("--host", "127.0.0.1", "--port", str(port), "--workers", "1"),
        *("--no-access-log", "--loop", "uvloop", "--http", "httptools"),
        *app_args,
    ]
    log_file = open(OUT / f"{name}.log", "wb")  # noqa: SIM115  (lives as long as the server)
    process = subprocess.Popen(
        command, cwd=ROOT, env=env, stdout=log_file, stderr=subprocess.STDOUT
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1):
                return process
        except OSError:
            if process.poll() is not None:
                break
            time.sleep(0.2)
    process.kill()
    raise SystemExit(f"{name} did not start; see {OUT / f'{name}.log'}")


def start_server(
    target: str, url: str, port: int, settings: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    """``salesdesk`` or ``minimal`` on ``port``; ``settings``: more environment variables."""
    env = {**bench_env(url), **(settings or {})}
    if target == "salesdesk":
        return serve(target, port, ["--factory", "app.main:create_app"], env)
    env["BENCH_MINIMAL_DSN"] = plain_dsn(url)
    return serve(target, port, ["--log-level", "warning", "bench.minimal_app:app"], env)


def capture_summary(fixture: Fixture) -> Path:
    """The app's statements for the East manager's summary (``bench.summary_statements``,
    in a process with the served app's environment), for the minimal app's twin."""
    out = OUT / "summary-statements.pickle"
    subprocess.run(
        [sys.executable, "-m", "bench.summary_statements", str(out), fixture.tokens["manager"]],
        cwd=ROOT,
        env=bench_env(fixture.url),
        check=True,
        stdout=subprocess.DEVNULL,
    )
    return out


def _cpu_seconds(process: subprocess.Popen[bytes]) -> float:
    """User and system CPU the process has used (uvicorn with one worker serves in it)."""
    fields = Path(f"/proc/{process.pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.send_signal(signal.SIGINT)
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def find_wrk() -> str | None:
    """wrk, installed from Debian when missing and we may; None means use loadgen.py."""
    if os.environ.get("BENCH_LOADGEN") == "python":
        return None
    found = shutil.which("wrk")
    if found or os.environ.get("BENCH_NO_INSTALL"):
        return found
    if os.geteuid() == 0 and shutil.which("apt-get"):
        log("wrk is missing: installing it from Debian (apt-get install wrk)")
        quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
        subprocess.run(["apt-get", "update", "-qq"], check=False, **quiet)  # type: ignore[call-overload]
        subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], check=False, **quiet)  # type: ignore[call-overload]
    return shutil.which("wrk")


def start_generator(
    wrk: str | None, port: int, requests: Path, token: str, args: argparse.Namespace
) -> subprocess.Popen[str]:
    """wrk (or bench/loadgen.py) driving ``requests`` at the server on ``port``, running;
    ``generator_result`` waits for it and reads its figures."""
    env = {
        **os.environ,
        "BENCH_REQUESTS": str(requests),
        "BENCH_TOKEN": token,
        "BENCH_THREADS": str(args.threads),
    }
    url = f"http://127.0.0.1:{port}"
    if wrk:
        command = [
            wrk,
            f"-t{args.threads}",
            f"-c{args.connections}",
            f"-d{args.duration}s",
            "--timeout",
            "10s",
            "-s",
            str(ROOT / "bench" / "requests.lua"),
            url,
        ]
    else:
        command = [
            sys.executable,
            "-m",
            "bench.loadgen",
            "--url",
            url,
            "--requests",
            str(requests),
            "--token",
            token,
            "--connections",
            str(args.connections),
            "--threads",
            str(args.threads),
            "--duration",
            str(args.duration),
            *(["--rate", str(args.rate)] if getattr(args, "rate", None) else []),
        ]
    return subprocess.Popen(
        command, env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def generator_result(process: subprocess.Popen[str]) -> dict[str, Any]:
    stdout, stderr = process.communicate()
    for line in stdout.splitlines():
        if line.startswith("BENCH_RESULT "):
            return dict(json.loads(line.removeprefix("BENCH_RESULT ")))
    raise SystemExit(f"the load generator failed:\n{stdout}\n{stderr}")


def _drive(
    wrk: str | None, port: int, requests: Path, token: str, args: argparse.Namespace
) -> dict[str, Any]:
    result = generator_result(start_generator(wrk, port, requests, token, args))
    # When the generator stops, the server still finishes the requests it had in flight (up
    # to one per connection, each up to the p99 late). Let them end before anything else
    # runs: a reset of the opportunities racing the last stage moves left a dozen of them
    # moved, and the next run's first requests on them were answered 409.
    time.sleep(SETTLE_SECONDS)
    return result


# Profiling ----------------------------------------------------------------------------


def _profile_summary(raw: Path, top: int = 30) -> str:
    """Self and inclusive sample shares by function, from py-spy's collapsed stacks."""
    own: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack:
            continue
        count = int(count_text)
        frames = [f.strip() for f in stack.split(";") if f.strip()]
        total += count
        names = [_frame_name(f) for f in frames]
        own[names[-1]] += count
        for name in set(names):
            inclusive[name] += count
    lines = [f"{total} samples", "", "self time:"]
    lines += [f"  {100 * n / total:5.1f}%  {name}" for name, n in own.most_common(top)]
    lines += ["", "inclusive time:"]
    lines += [f"  {100 * n / total:5.1f}%  {name}" for name, n in inclusive.most_common(top * 2)]
    return "\n".join(lines)


def _frame_name(frame: str) -> str:
    # "function (path/to/module.py:123)" → "function (module path, no line)"
    name, _, where = frame.partition(" (")
    path = where.rstrip(")").rsplit(":", 1)[0]
    for marker in ("site-packages/", "/work/main/", "lib/python3.11/"):
        if marker in path:
            path = path.split(marker, 1)[1]
    return f"{name} ({path})"


def _profiled_run(
    py_spy: str,
    process: subprocess.Popen[bytes],
    wrk: str | None,
    route: Route,
    files: dict[str, Path],
    fixture: Fixture,
    args: argparse.Namespace,
) -> None:
    raw = OUT / f"profile-{route.key}.txt"
    spy = subprocess.Popen(
        [
            py_spy,
            "record",
            "--pid",
            str(process.pid),
            "--duration",
            str(max(2, args.duration - 2)),
            "--rate",
            "250",
            "--format",
            "raw",
            "--output",
            str(raw),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    _drive(wrk, APP_PORT, files[route.key], fixture.tokens[route.user], args)
    spy.wait()
    summary = OUT / f"profile-{route.key}-summary.txt"
    summary.write_text(_profile_summary(raw))
    log(f"  profile of {route.title}: {summary}")


# The run ------------------------------------------------------------------------------


def latencies(runs: list[Result]) -> tuple[float, float, int]:
    """The median run's p50 and the worst run's p99, in milliseconds, and the runs' errors."""
    p50 = sorted(r.data["p50_us"] for r in runs)[len(runs) // 2] / 1000
    p99 = max(r.data["p99_us"] for r in runs) / 1000
    return p50, p99, sum(r.errors for r in runs)


def _table(results: list[Result], routes: list[Route], fixed_rate: bool, connections: int) -> str:
    by: dict[tuple[str, str], list[Result]] = collections.defaultdict(list)
    verdicts: list[str] = []  # the p99 goal, route by route (the app's runs)
    for r in results:
        by[(r.route, r.target)].append(r)
    rows = [
        f"{'route':<32} {'app':<10} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'cpu ms':>7}"
        f" {'errors':>7}  runs (req/s)"
    ]
    for route in routes:
        worst: dict[str, float] = {}  # each app's worst p99
        for target in route.targets:
            runs = by.get((route.key, target))
            if not runs:
                continue
            rps = sum(r.rps for r in runs) / len(runs)
            p50, p99, errors = latencies(runs)
            cpu = sorted(r.cpu_ms for r in runs)[len(runs) // 2]
            each = ", ".join(f"{r.rps:.0f}" for r in runs)
            rows.append(
                f"{route.title:<32} {target:<10} {rps:8.0f} {p50:8.1f} {p99:8.1f} {cpu:7.3f}"
                f" {errors:7d}"
                f"  {each}"
            )
            worst[target] = p99
        if "salesdesk" in worst:
            p99 = worst["salesdesk"]
            floor = f"; minimal {worst['minimal']:.0f}" if "minimal" in worst else ""
            verdicts.append(f"{route.title} {'yes' if p99 < 50 else 'no'} ({p99:.0f}{floor})")
    for route in routes:
        app, minimal = by.get((route.key, "salesdesk")), by.get((route.key, "minimal"))
        if not (app and minimal) or fixed_rate:  # at a fixed rate both serve the same
            continue
        ratio = (sum(r.rps for r in app) / len(app)) / (sum(r.rps for r in minimal) / len(minimal))
        goal = " (goal ≥ 0.60×)" if route.key == "read_one" else ""
        rows.append(f"\n{route.title}: salesdesk / minimal throughput = {ratio:.2f}×{goal}")
        # Per round, the two apps ran one after the other: their CPU ratio is the steadier
        # comparison when the machine's speed drifts over the run.
        cpu = sorted(a.cpu_ms / m.cpu_ms for a, m in zip(app, minimal, strict=False))
        rows.append(
            f"{route.title}: salesdesk / minimal CPU per request = {cpu[len(cpu) // 2]:.2f}×"
            " (median round)"
        )
    if verdicts and not fixed_rate:
        rows.append(f"p99 under 50 ms at {connections} connections: " + ", ".join(verdicts))
        # Little's law: each connection waits for its answer before sending again.
        rows.append(
            f"(closed loop: mean latency = {connections} ÷ req/s, so a mean under 50 ms alone"
            f" needs over {connections * 20} req/s)"
        )
    rows.append(
        "p50: median of the runs' medians; p99: the worst run's p99; cpu: the server"
        " process's CPU per request, median run."
    )
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=int, default=12, help="seconds per run")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=2, help="runs per route and app")
    parser.add_argument("--routes", default=",".join(r.key for r in ROUTES))
    parser.add_argument("--database", default="salesdesk_load")
    parser.add_argument("--reuse", action="store_true", help="keep the database of a last run")
    parser.add_argument("--profile", action="store_true", help="one extra run each under py-spy")
    parser.add_argument(
        "--rate",
        type=float,
        default=None,
        help="a fixed rate, requests a second (open loop, bench/loadgen.py); default: closed loop",
    )
    args = parser.parse_args()
    routes = [r for r in ROUTES if r.key in args.routes.split(",")]

    wrk = None if args.rate else find_wrk()
    if wrk is None and not args.rate:
        log(
            "wrk not found: using bench/loadgen.py (Python; lower ceilings, compare like with like)"
        )
    fixture = prepare_fixture(args.database, reuse=args.reuse)
    files = write_requests(fixture, args.threads)
    log(
        f"{len(fixture.customer_ids)} customers and {len(fixture.opportunity_ids)} "
        f"opportunities in the rep's scope; {args.connections} connections, {args.threads} "
        f"threads, {args.duration} s a run, {args.rounds} rounds"
    )

    ports = {"salesdesk": APP_PORT, "minimal": MINIMAL_PORT}
    # The summary's twin needs the app's statement: captured (an app started in a process of
    # its own) only when the summary is among the routes.
    twin = {}
    if any(route.key == "summary" for route in routes):
        twin["BENCH_MINIMAL_SUMMARY"] = str(capture_summary(fixture))
    servers = {
        "salesdesk": start_server("salesdesk", fixture.url, APP_PORT),
        "minimal": start_server("minimal", fixture.url, MINIMAL_PORT, twin),
    }
    results: list[Result] = []
    try:
        # Warm both (connection pools, caches) before anything counts.
        warm = argparse.Namespace(**{**vars(args), "duration": 3})
        for route in routes:
            for target in route.targets:
                asyncio.run(reset_opportunities(fixture.url, fixture.opportunity_ids))
                _drive(wrk, ports[target], files[route.key], fixture.tokens[route.user], warm)
        for round_ in range(1, args.rounds + 1):
            for route in routes:
                for target in route.targets:
                    # Every run starts from the same data, vacuumed (see reset_opportunities).
                    asyncio.run(reset_opportunities(fixture.url, fixture.opportunity_ids))
                    cpu_before = _cpu_seconds(servers[target])
                    data = _drive(
                        wrk, ports[target], files[route.key], fixture.tokens[route.user], args
                    )
                    cpu = _cpu_seconds(servers[target]) - cpu_before
                    result = Result(route.key, target, round_, data, cpu)
                    results.append(result)
                    log(
                        f"round {round_} {route.title:<30} {target:<9} {result.rps:7.0f} req/s"
                        f"  p50 {data['p50_us'] / 1000:6.1f} ms  p99 {data['p99_us'] / 1000:6.1f}"
                        f" ms  cpu {result.cpu_ms:.3f} ms/req  errors {result.errors}"
                        f"  load {result.loadavg}"
                    )
        if args.profile:
            py_spy = shutil.which("py-spy") or os.environ.get("PY_SPY")
            if not py_spy:
                log("--profile needs py-spy (pip install py-spy) on PATH or in $PY_SPY")
            else:
                for route in routes:
                    asyncio.run(reset_opportunities(fixture.url, fixture.opportunity_ids))
                    _profiled_run(py_spy, servers["salesdesk"], wrk, route, files, fixture, args)
    finally:
        for process in servers.values():
            _stop(process)

    generator = "wrk" if wrk else "bench/loadgen.py"
    if args.rate:
        generator += f" at a fixed {args.rate:g} requests a second (open loop)"
    print()
    print(
        f"Load: {args.connections} connections, {args.threads} threads, {args.duration} s runs, "
        f"{generator}; {os.cpu_count()} CPUs; load average at the end "
        f"{Path('/proc/loadavg').read_text().split()[0]}"
    )
    print(_table(results, routes, fixed_rate=bool(args.rate), connections=args.connections))
    (OUT / "load-results.json").write_text(
        json.dumps([r.__dict__ for r in results], indent=1, default=str)
    )


if __name__ == "__main__":
    main()
