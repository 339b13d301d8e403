"""Request rate limits (per user and per client IP) and the login throttle.

Both count in this process's memory: with several worker processes (``serve --workers N``,
or several hosts) each keeps its own counts, so the effective limit is N times the setting.
That is the price of needing no shared store; the limits exist to stop runaway clients and
password guessing, for which an order of magnitude is enough.

The client IP is the ASGI ``client`` address. Behind a reverse proxy that is the proxy's
address unless the server is told to trust its ``X-Forwarded-For`` (uvicorn's
``--forwarded-allow-ips`` / ``FORWARDED_ALLOW_IPS``; ``salesdesk serve`` turns proxy headers on).
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from starlette._utils import get_route_path
from starlette.types import ASGIApp, Scope

from app.config import Settings
from app.errors import RateLimited, problem_response
from app.security import bearer_token, decode_access_token

Clock = Callable[[], float]
Headers = tuple[tuple[bytes, bytes], ...]

# Probes and scrapers must keep working while a client is being throttled.
EXEMPT_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})

_UNITS = {"second": 1, "minute": 60, "hour": 3600, "day": 86400}
_RATE = re.compile(r"^\s*([1-9][0-9]*)\s*/\s*(second|minute|hour|day)s?\s*$")
# Float noise must not turn the last allowed request of a burst into a refusal.
_EPSILON = 1e-9
# How often stale keys are dropped, in seconds of the limiter's clock.
_SWEEP_EVERY = 60.0


@dataclass(frozen=True)
class Rate:
    """``limit`` requests per ``period`` seconds."""

    limit: int
    period: float

    @property
    def interval(self) -> float:
        """Seconds to earn back one request."""
        return self.period / self.limit

    @classmethod
    def parse(cls, text: str) -> Rate:
        """``"600/minute"`` → Rate(600, 60). Units: second, minute, hour, day."""
        match = _RATE.match(text)
        if match is None:
            raise ValueError(f"not a rate like '600/minute': {text!r}")
        return cls(int(match.group(1)), float(_UNITS[match.group(2)]))


def retry_after(seconds: float) -> int:
    """Whole seconds to wait, rounded up so a client that waits that long is let through."""
    return max(1, math.ceil(seconds - _EPSILON))


class RateLimiter:
    """A token bucket per key, kept as one timestamp (the generic cell rate algorithm).

    Each key may make ``rate.limit`` requests at once, then one every ``period / limit``
    seconds; an idle key earns its burst back. A key's stored time is when its bucket is
    next full, so a key whose time has passed is dropped: memory follows the active keys.
    """

    def __init__(self, clock: Clock = time.monotonic) -> None:
        self.clock = clock
        self._full_at: dict[str, float] = {}
        self._next_sweep = 0.0

    def hit(self, keys: Sequence[tuple[str, Rate]]) -> tuple[float, list[float]]:
        """Count one request against every key and return 0, or, when any key is over its
        rate, count nothing and return the seconds until every key would allow it; with,
        for each key, the seconds until its bucket is full again after this call."""
        now = self.clock()
        self._sweep(now)
        wait = 0.0
        held: list[float] = []
        for key, rate in keys:
            until_full = max(self._full_at.get(key, now) - now, 0.0)
            held.append(until_full)
            over = until_full + rate.interval - rate.period
            if over > _EPSILON:
                wait = max(wait, over)
        if wait > 0:
            return wait, held
        counted = []
        for (key, rate), until_full in zip(keys, held, strict=True):
            until_full += rate.interval
            self._full_at[key] = now + until_full
            counted.append(until_full)
        return 0.0, counted

    def _sweep(self, now: float) -> None:
        if now < self._next_sweep:
            return
        self._full_at = {key: at for key, at in self._full_at.items() if at > now}
        self._next_sweep = now + _SWEEP_EVERY


class LoginThrottle:
    """Failed logins per email and per client IP over a sliding window of
    ``window_seconds``; a key with its maximum of failures in the window is refused (429)
    until the oldest of them leaves it, even with the right password, so guessing stops.

    Unknown emails are counted exactly like known ones, so the throttle says nothing about
    which accounts exist. An attempt counts as a failure from the moment it starts (and is
    taken back if it succeeds): concurrent guesses cannot all slip in before the first of
    them has failed.
    """

    def __init__(
        self,
        max_failures: int,
        max_failures_per_ip: int,
        window_seconds: float,
        clock: Clock = time.monotonic,
    ) -> None:
        self.max_failures = max_failures
        self.max_failures_per_ip = max_failures_per_ip
        self.window = float(window_seconds)
        self.clock = clock
        self._failures: dict[str, list[float]] = {}
        self._next_sweep = 0.0

    def begin(self, email: str, client_ip: str) -> LoginAttempt:
        """Start an attempt, or raise ``RateLimited`` when the email or the IP is locked."""
        now = self.clock()
        self._sweep(now)
        keys = (
            ("email:" + email.strip().lower(), self.max_failures),
            ("ip:" + client_ip, self.max_failures_per_ip),
        )
        wait = 0.0
        for key, limit in keys:
            recent = self._recent(key, now)
            if len(recent) >= limit:
                wait = max(wait, recent[-limit] + self.window - now)
        if wait > 0:
            seconds = retry_after(wait)
            raise RateLimited(
                f"Too many failed logins; try again in {seconds} seconds.", retry_after=seconds
            )
        for key, _ in keys:
            self._failures.setdefault(key, []).append(now)
        return LoginAttempt(self, keys[0][0], keys[1][0], now)

    def _recent(self, key: str, now: float) -> list[float]:
        times = self._failures.get(key)
        if not times:
            return []
        cutoff = now - self.window
        if times[0] <= cutoff:
            times[:] = [t for t in times if t > cutoff]
        return times

    def _forget(self, key: str, at: float | None) -> None:
        """Drop one failure at ``at`` from the key, or all of them when ``at`` is None."""
        times = self._failures.get(key)
        if times is None:
            return
        if at is None:
            times.clear()
        elif at in times:
            times.remove(at)
        if not times:
            del self._failures[key]

    def _sweep(self, now: float) -> None:
        if now < self._next_sweep:
            return
        cutoff = now - self.window
        self._failures = {k: ts for k, ts in self._failures.items() if ts and ts[-1] > cutoff}
        self._next_sweep = now + _SWEEP_EVERY


@dataclass
class LoginAttempt:
    """One login in progress, counted as failed unless told otherwise."""

    throttle: LoginThrottle
    email_key: str
    ip_key: str
    at: float

    def succeeded(self) -> None:
        """The right password: the email starts afresh; the IP's other failures stand, or
        an attacker could clear them by logging in to an account of their own."""
        self.throttle._forget(self.email_key, None)
        self.throttle._forget(self.ip_key, self.at)

    def abandoned(self) -> None:
        """The attempt failed for a reason other than the credentials (the database was
        unavailable, say): it was no guess, so it is not counted."""
        self.throttle._forget(self.email_key, self.at)
        self.throttle._forget(self.ip_key, self.at)


@dataclass
class RateLimits:
    """One application's limits and their counters (see the module's note on processes)."""

    settings: Settings
    enabled: bool
    per_user: Rate
    per_ip: Rate
    requests: RateLimiter
    logins: LoginThrottle
    # The RateLimit-Policy values, written once: the IP's policy, then the IP's and the user's.
    _policies: tuple[bytes, bytes] = field(init=False)

    def __post_init__(self) -> None:
        ip = _quota_policy(_POLICY_NAMES[0], self.per_ip)
        user = _quota_policy(_POLICY_NAMES[1], self.per_user)
        self._policies = (ip.encode("latin-1"), f"{ip}, {user}".encode("latin-1"))

    @classmethod
    def from_settings(cls, settings: Settings, clock: Clock = time.monotonic) -> RateLimits:
        return cls(
            settings=settings,
            enabled=settings.rate_limits_on,
            per_user=Rate.parse(settings.rate_limit_per_user),
            per_ip=Rate.parse(settings.rate_limit_per_ip),
            requests=RateLimiter(clock),
            logins=LoginThrottle(
                settings.login_max_failures,
                settings.login_max_failures_per_ip,
                settings.login_lockout_seconds,
                clock,
            ),
        )

    def check(self, scope: Scope, authorization: str | None) -> tuple[ASGIApp | None, Headers]:
        """Count the request: the 429 (with ``Retry-After``) for a client over its rate, else
        None; and the ``RateLimit-Policy`` and ``RateLimit`` headers for the answer (none
        when the request is not limited). Per client IP for every request, and also per user
        for requests with a valid bearer token. The token is only decoded here, not looked
        up: a revoked user's requests are still refused later."""
        if not self.enabled or _exempt(scope):
            return None, ()
        keys = [("ip:" + client_ip(scope), self.per_ip)]
        user = self._user(authorization)
        if user is not None:
            keys.append(("user:" + user, self.per_user))
        wait, until_full = self.requests.hit(keys)
        policies = self._policies[len(keys) - 1]
        states = ", ".join(
            _service_limit(name, rate, seconds)
            for name, (_, rate), seconds in zip(_POLICY_NAMES, keys, until_full, strict=False)
        )
        headers = ((_RATELIMIT_POLICY, policies), (_RATELIMIT, states.encode("latin-1")))
        if wait <= 0:
            return None, headers
        seconds = retry_after(wait)
        error = RateLimited(f"Too many requests; retry in {seconds} seconds.", retry_after=seconds)
        return problem_response(error.status, error.code, error.detail, error.headers), headers

    def _user(self, authorization: str | None) -> str | None:
        token = bearer_token(authorization)
        if not token:
            return None
        claims = decode_access_token(self.settings.signing_key(), token)
        return str(claims.user_id) if claims else None

    def use_clock(self, clock: Clock) -> None:
        """Count time with ``clock`` (tests advance a fake one instead of sleeping)."""
        self.requests.clock = clock
        self.logins.clock = clock


# The draft's field names (draft-ietf-httpapi-ratelimit-headers): the policies a request
# counts against, and what is left of each.
_RATELIMIT_POLICY = b"ratelimit-policy"
_RATELIMIT = b"ratelimit"
# The keys of RateLimits.check in order: every request counts per IP, a signed-in one per user.
_POLICY_NAMES = ("ip", "user")


def _quota_policy(name: str, rate: Rate) -> str:
    """``"ip";q=1200;w=60``: ``q`` requests per window of ``w`` seconds."""
    return f'"{name}";q={rate.limit};w={math.ceil(rate.period)}'


def _service_limit(name: str, rate: Rate, until_full: float) -> str:
    """``"ip";r=1195;t=1``: ``r`` requests may be made at once now, and ``t`` whole seconds
    pass before one more is earned (no ``t`` when the allowance is whole). In those ``t``
    seconds no more than ``r`` requests are let through, as the draft's effective window
    says; on a 429, the refusing policy's ``t`` is the ``Retry-After``."""
    missing = math.ceil(until_full / rate.interval - _EPSILON)
    if missing <= 0:
        return f'"{name}";r={rate.limit}'
    remaining = max(rate.limit - missing, 0)
    return f'"{name}";r={remaining};t={retry_after(until_full - (missing - 1) * rate.interval)}'


def client_ip(scope: Scope) -> str:
    client = scope.get("client")
    return str(client[0]) if client else "unknown"


def _exempt(scope: Scope) -> bool:
    # The path the router matches (without the root path), as routers.common.ApiRoute reads it.
    return get_route_path(scope) in EXEMPT_PATHS
