"""The statements the app sends for one performance summary, for the minimal app's twin.

    python -m bench.summary_statements OUT TOKEN

Run by ``bench.load`` in a process of its own, with the served app's environment
(``bench.bulk.bench_env``): it builds the app as deployed, asks it for
``GET /api/v1/performance/summary`` with ``TOKEN`` (the East manager's) twice, and writes
what the second request sent to PostgreSQL on the driver connection (``app.reads.OBSERVERS``:
the figures' one statement; the caller is remembered by then) to ``OUT`` as a pickle of
``[(sql, arguments), …]``. The summary's figures are a report's own SQL: the least any
implementation must do is to send it, so the minimal app sends the app's, as captured.
"""

from __future__ import annotations

import asyncio
import pickle
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx

from app import reads
from app.main import create_app

PATH = "/api/v1/performance/summary"


async def capture(token: str) -> list[tuple[str, list[Any]]]:
    sent: list[tuple[str, list[Any]]] = []

    def observe(sql: str, arguments: Sequence[Any]) -> None:
        sent.append((sql, list(arguments)))

    app = create_app()
    reads.OBSERVERS.append(observe)
    try:
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="http://bench"
            ) as client,
        ):
            for _ in range(2):
                sent.clear()
                answer = await client.get(PATH, headers={"Authorization": f"Bearer {token}"})
                answer.raise_for_status()
    finally:
        reads.OBSERVERS.remove(observe)
    return sent


def main() -> None:
    out, token = Path(sys.argv[1]), sys.argv[2]
    statements = asyncio.run(capture(token))
    if not statements:
        raise SystemExit("the summary sent no statement on the driver connection")
    out.write_bytes(pickle.dumps(statements))


if __name__ == "__main__":
    main()
