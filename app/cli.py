"""The ``salesdesk`` command."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import os
import sys

from app.config import get_settings


def _serve(args: argparse.Namespace) -> None:
    import uvicorn

    if args.no_worker:
        # Read by create_app in this process and in the ones uvicorn starts for --workers.
        os.environ["SALESDESK_RUN_WORKER"] = "false"
        get_settings.cache_clear()
    settings = get_settings()
    if settings.is_embedded_default:
        # The zero-setup default: the database is ours to create and fill.
        _migrate(args)
        if settings.seed_demo:
            _seed(args)
    uvicorn.run(
        "app.main:create_app",
        factory=True,
        host=args.host,
        port=args.port,
        workers=args.workers,
        access_log=False,
        log_config=None,
        proxy_headers=True,
    )


def _migrate(_: argparse.Namespace) -> None:
    from app.migrations import upgrade

    upgrade()
    print("database migrated to head", file=sys.stderr)


async def _with_database(work):  # type: ignore[no-untyped-def]
    from app.db import Database, create_engine

    database = Database(create_engine(get_settings()))
    try:
        return await work(database)
    finally:
        await database.dispose()


def _seed(_: argparse.Namespace) -> None:
    from app.seed import seed_demo

    created = asyncio.run(_with_database(seed_demo))
    print("demo organisation " + ("created" if created else "already present"), file=sys.stderr)


def _create_user(args: argparse.Namespace) -> None:
    from sqlalchemy import select

    from app.models.people import Region, Role, User
    from app.security import hash_password

    password = args.password or getpass.getpass("Password: ")

    async def work(database):  # type: ignore[no-untyped-def]
        async with database.session() as session, session.begin():
            region_id = None
            if args.region:
                region = (
                    await session.scalars(select(Region).where(Region.name == args.region))
                ).first()
                if region is None:
                    region = Region(name=args.region)
                    session.add(region)
                    await session.flush()
                region_id = region.id
            user = User(
                email=args.email.lower(),
                full_name=args.full_name or args.email,
                role=Role(args.role),
                region_id=region_id,
                password_hash=await hash_password(password),
            )
            session.add(user)
        return user

    user = asyncio.run(_with_database(work))
    print(f"created {user.role} {user.email} ({user.id})")


def _openapi(_: argparse.Namespace) -> None:
    from app.main import create_app

    print(json.dumps(create_app().openapi(), indent=2, ensure_ascii=False))


def _worker(_: argparse.Namespace) -> None:
    import signal

    from app.logging import configure_logging
    from app.webhooks.messages import parse_retry_delays
    from app.worker import run_forever

    settings = get_settings()
    configure_logging(settings.log_level, settings.log_json)
    parse_retry_delays(settings.webhook_retry_delays)

    async def work(database):  # type: ignore[no-untyped-def]
        # SIGTERM and Ctrl-C finish the round in progress; SIGKILL loses nothing either,
        # its unanswered attempts are retried when their leases end.
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await run_forever(database, settings, stop)

    asyncio.run(_with_database(work))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="salesdesk", description="Salesdesk CRM back end")
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run the HTTP API")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--workers", type=int, default=1)
    serve.add_argument(
        "--no-worker",
        action="store_true",
        help="deliver no webhooks in this process (run `salesdesk worker` instead)",
    )
    serve.set_defaults(run=_serve)

    commands.add_parser("migrate", help="alembic upgrade head").set_defaults(run=_migrate)
    commands.add_parser("seed-demo", help="create the demo organisation").set_defaults(run=_seed)
    commands.add_parser("openapi", help="print the OpenAPI document").set_defaults(run=_openapi)
    commands.add_parser(
        "worker", help="deliver webhooks and keep house (any number may run at once)"
    ).set_defaults(run=_worker)

    create_user = commands.add_parser("create-user", help="add a user")
    create_user.add_argument("--email", required=True)
    create_user.add_argument(
        "--role", required=True, choices=["director", "regional_manager", "rep"]
    )
    create_user.add_argument("--region", help="region name (created if missing)")
    create_user.add_argument("--full-name")
    create_user.add_argument("--password", help="prompted for when omitted")
    create_user.set_defaults(run=_create_user)

    args = parser.parse_args(argv)
    args.run(args)


if __name__ == "__main__":
    main()
