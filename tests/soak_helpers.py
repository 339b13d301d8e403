"""The machinery of the soak test: a throwaway PostgreSQL, the processes, the load and its tally.

The soak restarts its database, so it never uses the shared server: it makes its own cluster
with ``initdb`` in a temporary folder, on a free port, and removes it at the end.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import random
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

PG_BIN = Path(os.environ.get("SALESDESK_SOAK_PG_BIN", "/usr/lib/postgresql/15/bin"))
SALESDESK = Path(sys.executable).with_name("salesdesk")
API = "/api/v1"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def tail(path: Path, lines: int = 30) -> str:
    if not path.exists():
        return ""
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


class PrivatePostgres:
    """A PostgreSQL cluster of our own, which the test may stop and start at will."""

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="salesdesk-soak-"))
        self.data = self.root / "data"
        self.log = self.root / "postgres.log"
        self.port = free_port()

    @staticmethod
    def available() -> bool:
        return all((PG_BIN / name).exists() for name in ("initdb", "pg_ctl", "postgres"))

    @staticmethod
    def unused_url() -> str:
        """A PostgreSQL URL nothing answers on."""
        return f"postgresql+asyncpg://postgres@127.0.0.1:{free_port()}/nothing"

    def url(self, database: str) -> str:
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/{database}"

    def _run(self, *command: str) -> None:
        argv = [str(PG_BIN / command[0]), *command[1:]]
        # initdb and postgres refuse to run as root: run them as the postgres account.
        if os.geteuid() == 0:
            if shutil.which("runuser"):
                argv = ["runuser", "-u", "postgres", "--", *argv]
            else:
                argv = ["su", "postgres", "-s", "/bin/sh", "-c", shlex.join(argv)]
        subprocess.run(argv, check=True, capture_output=True, timeout=90)

    def init(self) -> None:
        if os.geteuid() == 0:
            shutil.chown(self.root, "postgres")
        self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "-E", "UTF8")

    def start(self) -> None:
        options = (
            f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c max_connections=200"
        )
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-o", options, "-w", "start")

    def stop(self, mode: str = "fast") -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop")

    def destroy(self) -> None:
        if (self.data / "postmaster.pid").exists():
            try:
                self.stop()
            except subprocess.SubprocessError:
                self.stop("immediate")
        if os.environ.get("SALESDESK_SOAK_KEEP") != "1":  # keep the logs to read them
            shutil.rmtree(self.root, ignore_errors=True)

    async def create_database(self, name: str) -> None:
        import asyncpg

        admin = await asyncpg.connect(
            host="127.0.0.1", port=self.port, user="postgres", database="postgres"
        )
        try:
            await admin.execute(f'CREATE DATABASE "{name}"')
        finally:
            await admin.close()


class Processes:
    """``salesdesk`` processes with their output in log files; all stopped by ``stop_all``."""

    def __init__(self, folder: Path, env: dict[str, str]) -> None:
        self.folder = folder
        self.env = env
        self.started: dict[str, subprocess.Popen[bytes]] = {}

    def run(self, *args: str) -> None:
        subprocess.run([str(SALESDESK), *args], env=self.env, check=True, capture_output=True)

    def start(self, name: str, *args: str, **env: str) -> subprocess.Popen[bytes]:
        with (self.folder / f"{name}.log").open("wb") as log:
            process = subprocess.Popen(
                [str(SALESDESK), *args],
                env={**self.env, **env},
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self.started[name] = process
        return process

    def dead(self) -> list[str]:
        return [name for name, p in self.started.items() if p.poll() is not None]

    def logs(self) -> str:
        return "\n".join(
            f"--- {name}\n{tail(self.folder / f'{name}.log')}" for name in self.started
        )

    def about(self, answers: list[str]) -> str:
        """What the processes logged about these answers: every log line naming one of their
        correlation ids, with the lines after it (a traceback), so a failure says why."""
        ids = set(re.findall(r'"correlation_id":"([0-9a-f]+)"', "\n".join(answers)))
        found = []
        for name in self.started:
            path = self.folder / f"{name}.log"
            lines = path.read_text(errors="replace").splitlines() if path.exists() else []
            for index, line in enumerate(lines):
                if any(correlation_id in line for correlation_id in ids):
                    found.append(f"--- {name}\n" + "\n".join(lines[index : index + 60]))
        return "\n".join(found) or "(no log line names their correlation ids)"

    def stop_all(self) -> None:
        for process in self.started.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.started.values():
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)


@dataclass
class Tally:
    """Every answer the load got, and what its creates came to."""

    statuses: Counter[tuple[str, int]] = field(default_factory=Counter)
    connection_errors: Counter[str] = field(default_factory=Counter)
    """Requests no server answered, by what went wrong."""
    server_errors: list[str] = field(default_factory=list)
    """5xx answers other than 503, with their bodies."""
    created: dict[str, dict[str, str]] = field(default_factory=dict)
    """kind → label → id, for every create answered 2xx."""
    unsettled: dict[str, list[str]] = field(default_factory=dict)
    """kind → labels of creates that never got a 2xx (they may exist, but at most once)."""
    stuck_keys: int = 0
    """Creates given up on while their Idempotency-Key was still "in progress" (a claim the
    server could not release during the outage; see app/idempotency.py)."""
    moves: Counter[tuple[str, str]] = field(default_factory=Counter)
    """(opportunity id, stage) → stage moves answered 200."""
    unsure_moves: Counter[tuple[str, str]] = field(default_factory=Counter)
    """(opportunity id, stage) → stage moves that got no answer or a 503 (made or not)."""

    @property
    def requests(self) -> int:
        return sum(self.statuses.values()) + self.connection_errors.total()

    def count(self, status: int) -> int:
        return sum(n for (_, s), n in self.statuses.items() if s == status)

    def summary(self) -> str:
        by_status = Counter[int]()
        for (_, status), n in self.statuses.items():
            by_status[status] += n
        created = {kind: len(items) for kind, items in self.created.items()}
        unsettled = {kind: len(items) for kind, items in self.unsettled.items()}
        unsettled["move"] = self.unsure_moves.total()
        return (
            f"requests={self.requests} statuses={dict(sorted(by_status.items()))} "
            f"connection_errors={dict(self.connection_errors)} created={created} "
            f"moves={self.moves.total()} stuck_idempotency_keys={self.stuck_keys} "
            f"unsettled={unsettled}\nby operation: {dict(sorted(self.statuses.items()))}"
        )


@dataclass
class User:
    email: str
    region: str | None
    token: str = ""

    @property
    def headers(self) -> dict[str, str]:
        return {"authorization": f"Bearer {self.token}"}


class LoadClient:
    """Requests spread round-robin over the servers, each answer tallied."""

    def __init__(self, bases: list[str], tally: Tally) -> None:
        self.http = httpx.AsyncClient(timeout=30)
        self.bases = itertools.cycle(bases)
        self.tally = tally

    async def aclose(self) -> None:
        await self.http.aclose()

    async def call(
        self, op: str, method: str, path: str, user: User, **kwargs: Any
    ) -> httpx.Response | None:
        headers = {**user.headers, **kwargs.pop("headers", {})}
        try:
            response = await self.http.request(
                method, next(self.bases) + path, headers=headers, **kwargs
            )
        except httpx.TransportError as exc:
            # The server could not answer at all; counted apart from the answers.
            self.tally.connection_errors[f"{op}: {type(exc).__name__} {exc}"[:120]] += 1
            return None
        self.tally.statuses[(op, response.status_code)] += 1
        if response.status_code >= 500 and response.status_code != 503:
            self.tally.server_errors.append(f"{op} {response.status_code} {response.text[:300]}")
        return response

    async def create(
        self, kind: str, path: str, body: dict[str, Any], user: User, label: str
    ) -> dict[str, Any] | None:
        """POST with one Idempotency-Key, retried with that same key while the outcome is
        unknown (503, no answer, the key's first use still in progress)."""
        key = str(uuid.uuid4())
        loop = asyncio.get_running_loop()
        give_up = loop.time() + 20
        while True:
            response = await self.call(
                f"create {kind}", "POST", path, user, json=body, headers={"Idempotency-Key": key}
            )
            unknown = response is None or response.status_code == 503
            if response is not None and response.status_code == 409:
                unknown = response.json().get("reason") == "idempotency_key_in_progress"
            if not unknown:
                break
            if loop.time() > give_up:
                self.tally.unsettled.setdefault(kind, []).append(label)
                self.tally.stuck_keys += response is not None and response.status_code == 409
                return None
            await asyncio.sleep(0.3)
        if 200 <= response.status_code < 300:
            created = response.json()
            self.tally.created.setdefault(kind, {})[label] = created["id"]
            return dict(created)
        # E.g. a 409 duplicate name: an earlier try committed but its answer was lost.
        self.tally.unsettled.setdefault(kind, []).append(label)
        return None

    async def move(self, user: User, opp_id: str, choose: Any) -> str | None:
        """Read the opportunity, pick a move with ``choose(stage, options)`` and make it with
        If-Match; the stage it was moved to, or None when refused, stale or unanswered."""
        path = f"{API}/opportunities/{opp_id}"
        read = await self.call("get opportunity", "GET", path, user)
        if read is None or read.status_code != 200:
            return None
        stage = read.json()["stage"]
        options = await self.call("list moves", "GET", f"{path}/transitions", user)
        if options is None or options.status_code != 200:
            return None
        move = choose(stage, [o for o in options.json() if o["blocked_by"] is None])
        if move is None:
            return None
        body: dict[str, Any] = {"to": move["to"]}
        if "note" in move["needs"]:
            body["note"] = "soak"
        if "lost_reason" in move["needs"]:
            body["lost_reason"] = "price"
        answer = await self.call(
            "transition",
            "POST",
            f"{path}/transitions",
            user,
            json=body,
            headers={"If-Match": read.headers["etag"]},
        )
        if answer is not None and answer.status_code == 200:
            self.tally.moves[(opp_id, move["to"])] += 1
            return str(move["to"])
        if answer is None or answer.status_code == 503:
            self.tally.unsure_moves[(opp_id, move["to"])] += 1
        return None


FORWARD = {"lead": "contacted", "contacted": "needs_analysis", "needs_analysis": "proposal"}


def rep_choice(stage: str, options: list[dict[str, Any]]) -> dict[str, Any] | None:
    """A rep walks forward to proposal, then loses the deal or goes back to contacted."""
    by_to = {o["to"]: o for o in options}
    if stage in FORWARD:
        return by_to.get(FORWARD[stage])
    if stage == "proposal":
        return by_to.get(random.choice(["lost", "contacted"]))
    return None


def any_choice(_: str, options: list[dict[str, Any]]) -> dict[str, Any] | None:
    """A manager takes any move open to them (reopening lost deals among them)."""
    return random.choice(options) if options else None


async def rep_load(
    client: LoadClient, user: User, name: str, until: float, pool: list[str]
) -> None:
    loop = asyncio.get_running_loop()
    for n in itertools.count():
        if loop.time() > until:
            return
        label = f"Soak {name}-{n} {uuid.uuid4().hex[:8]}"
        customer = await client.create(
            "customer", f"{API}/customers", {"name": label, "industry": "Soak"}, user, label
        )
        if customer is None:
            continue
        follow_up = {
            "customer_id": customer["id"],
            "kind": "call",
            "status": "done",
            "occurred_at": datetime.now(UTC).isoformat(),
            "summary": label,
        }
        await client.create("follow_up", f"{API}/follow-ups", follow_up, user, label)
        opp = await client.create(
            "opportunity",
            f"{API}/opportunities",
            {"customer_id": customer["id"], "title": label, "needs_summary": "Soak needs."},
            user,
            label,
        )
        if opp is not None:
            pool.append(opp["id"])
            for _ in range(6):
                await client.move(user, opp["id"], rep_choice)
        await client.call("list customers", "GET", f"{API}/customers", user, params={"limit": 20})
        await client.call(
            "list opportunities", "GET", f"{API}/opportunities", user, params={"limit": 20}
        )


async def manager_load(client: LoadClient, user: User, until: float, pool: list[str]) -> None:
    # Managers move their reps' deals while the reps do: the races end in 412 or 409.
    loop = asyncio.get_running_loop()
    while loop.time() < until:
        if pool:
            await client.move(user, random.choice(pool[-10:]), any_choice)
        await client.call("list follow-ups", "GET", f"{API}/follow-ups", user, params={"limit": 20})
        await asyncio.sleep(0.05)


async def director_load(client: LoadClient, user: User, until: float) -> None:
    loop = asyncio.get_running_loop()
    while loop.time() < until:
        for op, path in (
            ("list events", f"{API}/events"),
            ("list customers", f"{API}/customers"),
            ("list opportunities", f"{API}/opportunities"),
        ):
            await client.call(op, "GET", path, user, params={"limit": 50})
        await asyncio.sleep(0.05)


def chain_gap(changes: list[tuple[str, str]], current: str) -> str | None:
    """Why the (from, to) rows, in time order, do not chain from lead to ``current``; None
    when they do. Rows written at the same instant may come in either order, so each next
    row is the first unused one that starts where the last ended."""
    state, left = "lead", list(changes)
    while left:
        follows = next((row for row in left if row[0] == state), None)
        if follows is None:
            return f"no change leaves {state}: {changes}"
        left.remove(follows)
        state = follows[1]
    return None if state == current else f"history ends at {state}, stage is {current}"
