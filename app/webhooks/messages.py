"""What a webhook message is: its body and signature, where it may be sent, when retried.

Shared by the delivery worker and the webhook service.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import socket
from collections.abc import Sequence
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from pydantic import TypeAdapter
from standardwebhooks import Webhook

_TIMESTAMP = TypeAdapter(datetime)


def parse_retry_delays(raw: str) -> list[float]:
    """``SALESDESK_WEBHOOK_RETRY_DELAYS`` as seconds; a bad value stops start-up."""
    try:
        delays = [float(part) for part in raw.split(",") if part.strip()]
    except ValueError:
        delays = [-1.0]
    if any(not 0 <= d <= 30 * 86400 for d in delays):  # also refuses nan and inf
        raise ValueError(
            f"SALESDESK_WEBHOOK_RETRY_DELAYS must be comma-separated seconds, not {raw!r}"
        )
    return delays


def subscribed(patterns: Sequence[str], event_type: str) -> bool:
    return "*" in patterns or event_type in patterns


def message_body(event_type: str, timestamp: datetime, data: Any) -> str:
    """The JSON body of a message, as the Standard Webhooks specification shapes it."""
    return json.dumps(
        {
            "type": event_type,
            "timestamp": _TIMESTAMP.dump_python(timestamp, mode="json"),
            "data": data,
        },
        separators=(",", ":"),
        ensure_ascii=False,
    )


def signature(secrets: Sequence[str], message_id: str, at: datetime, body: str) -> str:
    """The ``webhook-signature`` header: one ``v1,<base64>`` per secret, space-separated."""
    return " ".join(Webhook(secret).sign(message_id, at, body) for secret in secrets)


def is_public_address(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


def private_host_reason(host: str) -> str | None:
    """Why ``host`` is not a public internet host, judged from the name alone (no DNS)."""
    name = host.lower().rstrip(".")
    if name == "localhost" or name.endswith(".localhost"):
        return "it names the local machine"
    try:
        public = is_public_address(name)
    except ValueError:
        return None
    return None if public else "it is a loopback, private or reserved address"


async def check_resolved_host(url: str) -> str | None:
    """Why sending to ``url`` is refused when private addresses are not allowed; a name that
    resolves to one (or a URL changed behind our back) is caught here, at send time."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    reason = private_host_reason(host)
    if reason:
        return f"Refused: {reason}."
    port = parts.port or (443 if parts.scheme == "https" else 80)
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    if any(not is_public_address(str(info[4][0])) for info in infos):
        return "Refused: the host resolves to a loopback, private or reserved address."
    return None
