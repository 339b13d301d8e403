"""Schemathesis hooks for scripts/run-schemathesis (SCHEMATHESIS_HOOKS)."""

from __future__ import annotations

import uuid
from typing import Any

import schemathesis


@schemathesis.hook
def map_headers(ctx: Any, headers: dict[str, Any] | None) -> dict[str, Any] | None:
    """A fresh Idempotency-Key for every request, as a client sends one per new request.

    Generated keys repeat, and a repeated key with the same body replays the first answer
    (app/idempotency.py): the stateful phase then looked up a resource made by an earlier
    request and deleted since, and took the replay for a resource that was never stored.
    Replays have tests of their own (tests/test_idempotency.py)."""
    if headers and "Idempotency-Key" in headers:
        headers["Idempotency-Key"] = str(uuid.uuid4())
    return headers
