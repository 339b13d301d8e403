"""Process settings, read from the environment (prefix ``SALESDESK_``) and ``.env``."""

from __future__ import annotations

import re
import secrets
from functools import lru_cache
from pathlib import Path

from pydantic import AliasChoices, Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

EMBEDDED_DATABASE_URL = "sqlite+aiosqlite:///./var/salesdesk.db"
VAR_DIR = Path("var")
MIN_KEY_BYTES = 32
# What SALESDESK_CORS_ORIGINS means when it is unset on the embedded default: the web app's
# development server on this machine, on whatever port it picked.
LOCAL_DEVELOPMENT_ORIGINS = "http://localhost:*,http://127.0.0.1:*"
# An origin as a browser sends it (scheme, host, optional port; no path), or one with ":*"
# for any port.
_ORIGIN = re.compile(r"^https?://(\[[0-9a-f:.]+\]|[a-z0-9.-]+)(:[0-9]{1,5}|:\*)?$")
# "<count>/<second|minute|hour|day>", as in SALESDESK_RATE_LIMIT_PER_USER=600/minute.
_RATE = r"^\s*[1-9][0-9]*\s*/\s*(second|minute|hour|day)s?\s*$"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="SALESDESK_", env_file=".env", extra="ignore", populate_by_name=True
    )

    database_url: str = Field(
        default=EMBEDDED_DATABASE_URL,
        validation_alias=AliasChoices("SALESDESK_DATABASE_URL", "DATABASE_URL"),
    )
    secret_key: str | None = None
    access_token_minutes: int = Field(default=15, ge=1, le=24 * 60)
    refresh_token_days: int = Field(default=30, ge=1, le=365)
    log_level: str = "INFO"
    log_json: bool = True
    # FastAPI's native OpenTelemetry (spans, metrics and logs to the global providers). Off,
    # each request skips asking whether a provider is configured.
    otel_enabled: bool = False
    # ISO 4217: every amount of money is in this currency (answered by /auth/me and /settings).
    currency: str = Field(default="CNY", pattern=r"^[A-Z]{3}$")
    time_zone: str = "Asia/Shanghai"
    seed_demo: bool = True
    # 20 connections kept open, none opened beyond them: the old 10 + 10 overflow capped a
    # process at the same 20, but under steady load closed and reopened the overflow ones
    # continually, the main source of the long tail (bench/README.md, third pass).
    db_pool_size: int = Field(default=20, ge=1)
    db_max_overflow: int = Field(default=0, ge=0)
    # How many reports (/api/v1/performance/*) a process runs at once, and how long one
    # waits for its turn before a 503 (app.lanes); 0: no bound.
    report_concurrency: int = Field(default=4, ge=0)
    report_wait_seconds: float = Field(default=10.0, gt=0, le=300)
    # A pooled connection idle this long is pinged before use (one round trip); one used a
    # moment ago is not (see app.db._ping_when_idle). 0 pings on every checkout.
    db_ping_idle_seconds: float = Field(default=2.0, ge=0)
    # The longest any one statement of the app may run on PostgreSQL (waiting for a lock
    # included) before PostgreSQL cancels it and the request is answered 503; 0: no limit.
    db_statement_timeout_seconds: float = Field(default=30.0, ge=0, le=24 * 3600)
    # PostgreSQL's JIT compiler for this app's connections (off: see app.db.create_engine).
    db_jit: bool = False
    # Remember callers and settings between requests, forgetting them when PostgreSQL announces
    # a change (app.callers); SQLite never remembers.
    remember_callers: bool = True
    idempotency_ttl_hours: int = Field(default=24, ge=1)
    webhook_retry_delays: str = "5,300,1800,7200,18000,36000,36000"
    webhook_allow_private_urls: bool = False
    webhook_timeout_seconds: float = Field(default=10.0, gt=0, le=120)
    webhook_poll_seconds: float = Field(default=1.0, gt=0, le=60)
    run_worker: bool = True
    # The origins whose web pages may call the API (CORS), comma-separated; None: those of
    # LOCAL_DEVELOPMENT_ORIGINS on the embedded default, none elsewhere (``cors_allowed``).
    cors_origins: str | None = None
    # None: on unless the database is the embedded SQLite one (see ``rate_limits_on``).
    rate_limit_enabled: bool | None = None
    rate_limit_per_user: str = Field(default="600/minute", pattern=_RATE)
    rate_limit_per_ip: str = Field(default="1200/minute", pattern=_RATE)
    login_max_failures: int = Field(default=5, ge=1)
    login_max_failures_per_ip: int = Field(default=20, ge=1)
    login_lockout_seconds: int = Field(default=300, ge=1, le=24 * 3600)

    @field_validator("database_url")
    @classmethod
    def _normalise_url(cls, value: str) -> str:
        # Heroku-style and plain libpq URLs are honoured: they name the async driver we ship.
        for prefix in ("postgres://", "postgresql://"):
            if value.startswith(prefix):
                return "postgresql+asyncpg://" + value[len(prefix) :]
        return value

    @field_validator("secret_key")
    @classmethod
    def _strong_enough(cls, value: str | None) -> str | None:
        if not value:
            return None  # left empty in .env: as if unset
        if len(value.encode()) < MIN_KEY_BYTES:
            # RFC 7518 3.2: an HS256 key must have at least as many bits as the hash (256).
            raise ValueError(
                f"SALESDESK_SECRET_KEY must be at least {MIN_KEY_BYTES} bytes; make one with "
                "python3 -c 'import secrets; print(secrets.token_urlsafe(48))'"
            )
        return value

    @field_validator("cors_origins")
    @classmethod
    def _origins(cls, value: str | None) -> str | None:
        if value is None:
            return None
        origins = [part.strip().lower() for part in value.split(",") if part.strip()]
        for origin in origins:
            if origin != "*" and not _ORIGIN.match(origin):
                raise ValueError(
                    f"SALESDESK_CORS_ORIGINS: {origin!r} is not an origin like "
                    "'https://crm.example.com', 'http://localhost:5173' or "
                    "'http://localhost:*' (scheme, host and port only, no path), nor '*'"
                )
        return ",".join(origins)

    @property
    def cors_allowed(self) -> tuple[str, ...]:
        """The origins allowed to call the API from a browser (none: no CORS at all)."""
        value = self.cors_origins
        if value is None:
            value = LOCAL_DEVELOPMENT_ORIGINS if self.is_embedded_default else ""
        return tuple(origin for origin in value.split(",") if origin)

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @property
    def is_embedded_default(self) -> bool:
        return self.database_url == EMBEDDED_DATABASE_URL

    @property
    def rate_limits_on(self) -> bool:
        """Whether requests are rate limited: as set, else on everywhere but SQLite (a
        single-user or development install, where limits would only get in the way)."""
        if self.rate_limit_enabled is not None:
            return self.rate_limit_enabled
        return not self.is_sqlite

    def signing_key(self) -> str:
        """The JWT signing key: configured, or generated once and kept in ./var on SQLite."""
        if self.secret_key:
            return self.secret_key
        if not self.is_sqlite:
            raise RuntimeError("SALESDESK_SECRET_KEY is required with a non-embedded database")
        key_file = VAR_DIR / "secret_key"
        if not key_file.exists():
            VAR_DIR.mkdir(parents=True, exist_ok=True)
            key_file.write_text(secrets.token_urlsafe(48))
            key_file.chmod(0o600)
        self.secret_key = key_file.read_text().strip()
        return self.secret_key


@lru_cache
def get_settings() -> Settings:
    return Settings()
