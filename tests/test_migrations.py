"""The schema the migrations build is the schema the models describe."""

from __future__ import annotations

from pprint import pformat
from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlmodel import SQLModel

import app.models  # noqa: F401  (every table in the metadata, as alembic/env.py has it)
from app.db import Database
from app.migrations import alembic_config


def _diff(connection: Connection) -> list[Any]:
    # The options of alembic/env.py, so this sees what `alembic revision --autogenerate` sees.
    context = MigrationContext.configure(
        connection,
        opts={"compare_type": True, "render_as_batch": connection.dialect.name == "sqlite"},
    )
    return list(compare_metadata(context, SQLModel.metadata))


async def test_models_and_migrations_agree(database: Database) -> None:
    async with database.engine.connect() as connection:
        diff = await connection.run_sync(_diff)
    assert diff == [], "models and migrations differ; add a migration:\n" + pformat(diff)


async def test_database_is_at_the_single_head(database: Database) -> None:
    heads = ScriptDirectory.from_config(alembic_config()).get_heads()
    assert len(heads) == 1, f"the history has branched: {heads}"
    async with database.engine.connect() as connection:
        current = (await connection.execute(text("SELECT version_num FROM alembic_version"))).all()
    assert [row[0] for row in current] == heads
