"""Passwords and tokens. The only module that knows python-jose, the password hasher and
the password strength estimator."""

from __future__ import annotations

import hashlib
import secrets
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import anyio.to_thread
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from jose import JWTError, jwt
from zxcvbn import zxcvbn

ALGORITHM = "HS256"
_hasher = PasswordHasher()
# Verified against when the user does not exist, so timing does not reveal which emails exist.
_DUMMY_HASH = _hasher.hash("salesdesk-dummy-password")


async def hash_password(password: str) -> str:
    """Argon2id hash, computed in a worker thread: hashing takes tens of milliseconds."""
    return await anyio.to_thread.run_sync(_hasher.hash, password)


def _verify(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


async def verify_password(password_hash: str | None, password: str) -> bool:
    return await anyio.to_thread.run_sync(_verify, password_hash or _DUMMY_HASH, password) and (
        password_hash is not None
    )


# zxcvbn's score from 0 to 4: 3 is "safely unguessable", about 10^10 guesses.
MIN_PASSWORD_SCORE = 3
# zxcvbn's own bound on what it estimates (its cost grows with the length: about 160 ms at
# 128 characters). The first 72 characters' strength is a lower bound of the whole's.
_ESTIMATED_CHARACTERS = 72


def _weakness(password: str, user_inputs: list[str]) -> str | None:
    result = zxcvbn(password[:_ESTIMATED_CHARACTERS], user_inputs=user_inputs)
    if result["score"] >= MIN_PASSWORD_SCORE:
        return None
    feedback = result["feedback"]
    advice = " ".join(filter(None, [feedback["warning"], *feedback["suggestions"]]))
    return f"The password is too easy to guess. {advice}".strip()


async def password_weakness(password: str, user_inputs: list[str]) -> str | None:
    """Why ``password`` is too easy to guess (common passwords, keyboard patterns, dates,
    the words of ``user_inputs`` such as the user's name and email), or None when it is
    strong enough. Estimated in a worker thread: it takes a few milliseconds."""
    return await anyio.to_thread.run_sync(_weakness, password, user_inputs)


@dataclass(frozen=True)
class AccessClaims:
    user_id: uuid.UUID
    role: str
    region_id: uuid.UUID | None
    expires_at: datetime
    login_id: uuid.UUID | None = None
    """The login (refresh-token family) the token was issued to; None in tokens made
    without one."""


def create_access_token(
    key: str,
    user_id: uuid.UUID,
    role: str,
    region_id: uuid.UUID | None,
    minutes: int,
    login_id: uuid.UUID | None = None,
) -> tuple[str, int]:
    """A signed JWT and its lifetime in seconds. ``login_id`` goes in the ``sid`` claim (a
    session id, as OpenID Connect names it), so a request can tell its own login from the
    user's others."""
    now = datetime.now(UTC)
    claims = {
        "sub": str(user_id),
        "role": role,
        "region_id": str(region_id) if region_id else None,
        "type": "access",
        "iat": int(now.timestamp()),
        "exp": int((now + timedelta(minutes=minutes)).timestamp()),
        "jti": secrets.token_hex(8),
    }
    if login_id is not None:
        claims["sid"] = str(login_id)
    return jwt.encode(claims, key, algorithm=ALGORITHM), minutes * 60


# Tokens already verified, with their claims. A client sends the same token with every
# request for its lifetime, and three places read it per request (the rate limiter, the
# Idempotency-Key owner, the caller): checking its HMAC again proves nothing new and cost
# about a tenth of a short request. Keyed by the token, each entry holding the key it was
# verified with (a changed key verifies afresh; a tampered token is another string) and
# honoured only until the token's own expiry. Only valid tokens are kept, at most
# _VERIFIED_MAX (the oldest goes first), so junk tokens cannot grow it.
_VERIFIED: dict[str, tuple[str, int, AccessClaims]] = {}
_VERIFIED_MAX = 4096


def bearer_token(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header value; None for no header,
    another scheme or no token."""
    scheme, _, token = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not token:
        return None
    return token.strip()


def decode_access_token(key: str, token: str) -> AccessClaims | None:
    """The claims of a valid, unexpired access token signed by us with HS256; else None."""
    known = _VERIFIED.get(token)
    if known is not None and known[0] == key:
        # As python-jose decides: valid while ``exp`` (whole seconds) is not in the past.
        return known[2] if known[1] >= int(time.time()) else None
    claims = _verify_access_token(key, token)
    if claims is not None:
        if len(_VERIFIED) >= _VERIFIED_MAX and token not in _VERIFIED:
            del _VERIFIED[next(iter(_VERIFIED))]  # the oldest entry
        _VERIFIED[token] = (key, int(claims.expires_at.timestamp()), claims)
    return claims


def _verify_access_token(key: str, token: str) -> AccessClaims | None:
    try:
        header = jwt.get_unverified_header(token)
        if header.get("alg") != ALGORITHM:
            return None
        claims = jwt.decode(token, key, algorithms=[ALGORITHM])
        if claims.get("type") != "access":
            return None
        region = claims.get("region_id")
        login = claims.get("sid")
        return AccessClaims(
            user_id=uuid.UUID(claims["sub"]),
            role=str(claims["role"]),
            region_id=uuid.UUID(region) if region else None,
            expires_at=datetime.fromtimestamp(int(claims["exp"]), UTC),
            login_id=uuid.UUID(login) if login else None,
        )
    except (JWTError, KeyError, ValueError, TypeError, AttributeError):
        return None


def new_refresh_token() -> str:
    return "rt_" + secrets.token_urlsafe(32)


def token_digest(token: str) -> str:
    """Refresh tokens are stored only as this digest; a database leak yields no usable token."""
    return hashlib.sha256(token.encode()).hexdigest()
