"""The frameworks' own cost per request, served as ``bench.load`` serves the apps.

    python -m bench.floors [--duration 10] [--rounds 2] [--connections 32]

Serves ``bench/floor_apps.py``'s Starlette and FastAPI apps (uvicorn, one worker, the load
benchmark's options) one after the other, drives each with wrk as ``bench.load`` does, and
reports requests a second and the server process's CPU per request: the floor under the
minimal app (Starlette) and under Salesdesk (FastAPI), before any database, auth or logging.
"""

from __future__ import annotations

import argparse
import uuid

from bench.bulk import log
from bench.load import OUT, _cpu_seconds, _drive, _stop, find_wrk, serve

PORT = 18433
APPS = {
    "starlette": ("bench.floor_apps:starlette_app", "/items/"),
    "fastapi": ("bench.floor_apps:fastapi_app", "/items/"),
    # Two dependencies on the request and a Response parameter, as Salesdesk's routes have.
    "fastapi+deps": ("bench.floor_apps:fastapi_app", "/items-with-dependencies/"),
    "fastapi+1dep": ("bench.floor_apps:fastapi_app", "/items-with-one-dependency/"),
    "fastapi+deps-no-response": (
        "bench.floor_apps:fastapi_app",
        "/items-with-dependencies-only/",
    ),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    wrk = find_wrk()
    OUT.mkdir(parents=True, exist_ok=True)
    rows = []
    for round_ in range(1, args.rounds + 1):
        for target, (app, path) in APPS.items():
            requests = OUT / f"requests-floor-{target}.txt"
            requests.write_text("".join(f"GET\t{path}{uuid.uuid4()}\n" for _ in range(1000)))
            process = serve(f"floor-{target}", PORT, ["--log-level", "warning", app])
            try:
                warm = argparse.Namespace(**{**vars(args), "duration": 2})
                _drive(wrk, PORT, requests, "-", warm)
                before = _cpu_seconds(process)
                data = _drive(wrk, PORT, requests, "-", args)
                cpu = _cpu_seconds(process) - before
            finally:
                _stop(process)
            rps = data["requests"] / (data["duration_us"] / 1e6)
            cpu_ms = 1000 * cpu / max(1, data["requests"])
            rows.append((target, rps, cpu_ms))
            log(f"round {round_} {target:<10} {rps:7.0f} req/s  cpu {cpu_ms:.3f} ms/req")
    for target in APPS:
        mine = [r for r in rows if r[0] == target]
        rps = sum(r[1] for r in mine) / len(mine)
        cpu = sorted(r[2] for r in mine)[len(mine) // 2]
        print(f"{target:<10} {rps:7.0f} req/s  cpu {cpu:.3f} ms/req (median run)")


if __name__ == "__main__":
    main()
