"""The app with two changes the load profile points at outside this benchmark's files, so
their effect can be measured before anyone makes them (``python -m bench.load --whatif``):

- ``gc.freeze()`` once the app is built: the ~230,000 objects of the loaded modules, routes,
  models and metadata move to the permanent generation, and the full collections that ran
  every hundred requests or so no longer walk them all (in app.main's lifespan, say);
- the rate limiter reads the bearer token through ``app.deps.access_claims``, which
  remembers verified tokens, instead of verifying its signature a second time per request
  (or ``app.security.decode_access_token`` keeps that memory itself).
"""

from __future__ import annotations

import gc

from fastapi import FastAPI

from app import deps, ratelimit
from app.main import create_app as create_salesdesk
from app.security import AccessClaims


def _remembered(_key: str, token: str) -> AccessClaims | None:
    return deps.access_claims(token)


def create_app() -> FastAPI:
    ratelimit.decode_access_token = _remembered  # type: ignore[assignment]
    app = create_salesdesk()
    gc.freeze()
    return app
