"""Settings that would leave the server unable to authenticate anyone stop it at start-up."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from app.config import MIN_KEY_BYTES, Settings
from app.main import create_app

POSTGRES_URL = "postgresql+asyncpg://salesdesk@db.example:5432/salesdesk"


def settings(**values: Any) -> Settings:
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


def test_a_short_signing_key_is_refused() -> None:
    with pytest.raises(ValidationError, match=f"at least {MIN_KEY_BYTES} bytes"):
        settings(secret_key="x" * (MIN_KEY_BYTES - 1))
    assert settings(secret_key="x" * MIN_KEY_BYTES).signing_key() == "x" * MIN_KEY_BYTES


def test_an_empty_signing_key_counts_as_unset() -> None:
    # .env.example ships the variable empty; on SQLite a key is then generated.
    assert settings(secret_key="").secret_key is None


async def test_postgres_without_a_signing_key_does_not_start() -> None:
    app = create_app(settings(database_url=POSTGRES_URL, secret_key=None, run_worker=False))
    with pytest.raises(RuntimeError, match="SALESDESK_SECRET_KEY is required"):
        async with app.router.lifespan_context(app):
            pytest.fail("the app started without a signing key")
    # Refused before it made a database (it would have been left undisposed).
    assert not hasattr(app.state, "database")


ROOT = Path(__file__).resolve().parent.parent


def test_every_setting_is_in_the_readme_table_and_in_env_example() -> None:
    readme = (ROOT / "README.md").read_text()
    table = readme[readme.index("## Configuration") :].split("\n## ", 1)[0]
    example = (ROOT / ".env.example").read_text()
    for name in Settings.model_fields:
        variable = f"SALESDESK_{name.upper()}"
        assert f"`{variable}`" in table, f"{variable} is missing from the README's table"
        assert f"{variable}=" in example, f"{variable} is missing from .env.example"
