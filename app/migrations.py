"""Running alembic from code (``salesdesk migrate``, start-up on the embedded default, tests)."""

from __future__ import annotations

from pathlib import Path

from alembic.config import Config

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
