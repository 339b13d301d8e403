"""Cross-origin requests from web apps (CORS), for the origins of ``SALESDESK_CORS_ORIGINS``.

Starlette's ``CORSMiddleware`` does the work. It is the outermost layer (``app.main``), so a
preflight is answered before the rate limits and the caller are looked at, and every answer
to an allowed origin, a 401 or a 429 included, carries the headers a browser needs to let
the page read it.
"""

from __future__ import annotations

import re
from typing import Any

from starlette.datastructures import Headers
from starlette.middleware.cors import CORSMiddleware
from starlette.responses import Response

from app.errors import ProblemCode, problem_response

METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")
# What the API reads from a request beyond the headers every browser may send anyway.
REQUEST_HEADERS = (
    "Authorization",
    "Content-Type",
    "If-Match",
    "If-None-Match",
    "Idempotency-Key",
    "X-Request-ID",
)
# What a page may read from an answer beyond the few headers browsers always show it.
EXPOSED_HEADERS = (
    "ETag",
    "Location",
    "Retry-After",
    "Idempotent-Replayed",
    "X-Request-ID",
    "RateLimit-Policy",
    "RateLimit",
)
# How long a browser may reuse a preflight's answer (Chromium caps it at two hours).
MAX_AGE_SECONDS = 3600
_ANY_PORT = ":*"
# The preflight answer's headers that describe the body it no longer has.
_BODY_HEADERS = frozenset({"content-length", "content-type"})


class CORS(CORSMiddleware):
    """``CORSMiddleware`` whose preflights answer 204 No Content (Starlette's answer 200 with
    "OK" as the body), and whose refused preflights are problem documents like every other
    error of the API."""

    def preflight_response(self, request_headers: Headers) -> Response:
        answer = super().preflight_response(request_headers)
        headers = {k: v for k, v in answer.headers.items() if k not in _BODY_HEADERS}
        if answer.status_code < 400:
            return Response(status_code=204, headers=headers)
        # Starlette's body names what was refused: "Disallowed CORS origin, headers".
        refused = bytes(answer.body).decode().removeprefix("Disallowed CORS ")
        return problem_response(
            400,
            ProblemCode.BAD_REQUEST,
            f"This cross-origin request is not allowed (its {refused}); the origins, methods "
            "and headers allowed are set by SALESDESK_CORS_ORIGINS and the API.",
            headers,
        )


def options(origins: tuple[str, ...]) -> dict[str, Any]:
    """``CORS``'s arguments for these origins: exact ones as they are, ``scheme://host:*``
    for that host on any port (or none, the scheme's default), ``*`` for every origin.

    Credentials (cookies) are not allowed: the API reads bearer tokens, which a page sends
    itself, so no other origin can act with a browser's ambient login.
    """
    exact = [origin for origin in origins if not origin.endswith(_ANY_PORT)]
    patterns = [
        re.escape(origin.removesuffix(_ANY_PORT)) + r"(?::[0-9]{1,5})?"
        for origin in origins
        if origin.endswith(_ANY_PORT)
    ]
    return {
        "allow_origins": exact,
        "allow_origin_regex": "|".join(patterns) or None,
        "allow_methods": METHODS,
        "allow_headers": REQUEST_HEADERS,
        "expose_headers": EXPOSED_HEADERS,
        "max_age": MAX_AGE_SECONDS,
    }
