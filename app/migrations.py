"""Running alembic from code (``salesdesk migrate``, start-up on the embedded default, tests)."""

from __future__ import annotations

from functools import cache
from pathlib import Path

from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, text
from sqlalchemy.ext.asyncio import AsyncConnection

from alembic import command

_ROOT = Path(__file__).resolve().parent.parent


def alembic_config(url: str | None = None) -> Config:
    ini = Path.cwd() / "alembic.ini"
    if not ini.exists():
        ini = _ROOT / "alembic.ini"
    config = Config(str(ini))
    config.attributes["configure_logging"] = False
    if url:
        config.set_main_option("sqlalchemy.url", url)
    return config


def upgrade(url: str | None = None) -> None:
    """``alembic upgrade head``; must be called outside a running event loop."""
    command.upgrade(alembic_config(url), "head")


@cache
def head() -> str:
    """The revision ``upgrade`` leads to: the history's one head, read from the scripts once
    per process (``create_app`` asks at start-up, so a readiness probe reads no files)."""
    revision = ScriptDirectory.from_config(alembic_config()).get_current_head()
    if revision is None:
        raise RuntimeError("the migration history is empty")
    return revision


async def not_at(connection: AsyncConnection, revision: str) -> str | None:
    """Why the database is not migrated to ``revision`` (no migrations applied, or another
    revision), or None when it is."""
    applied = await connection.run_sync(lambda c: inspect(c).has_table("alembic_version"))
    if not applied:
        return "The database is not migrated (no alembic_version): run `salesdesk migrate`."
    rows = await connection.scalars(text("SELECT version_num FROM alembic_version"))
    found = sorted(rows.all())
    if found != [revision]:
        at = ", ".join(found) or "none"
        return (
            f"The database is at migration {at}, not {revision} as this release needs: "
            "run `salesdesk migrate`."
        )
    return None
