"""A real HTTP receiver on loopback for the webhook tests.

It answers every POST, checks its signature with the ``standardwebhooks`` library against
the secret registered for the path, and remembers what came. It can be stopped and started
again on the same port, which is how the tests make "the receiver is down".
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from standardwebhooks import Webhook, WebhookVerificationError


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    verified: bool
    payload: dict[str, Any] | None
    status: int = 200

    @property
    def message_id(self) -> str:
        return self.headers["webhook-id"]


@dataclass
class Receiver:
    secrets: dict[str, str] = field(default_factory=dict)
    """Path → the secret its deliveries must be signed with."""
    answer: Callable[[Received], int] = lambda _: 200
    """The status to answer a (verified) request with."""
    port: int = 0
    received: list[Received] = field(default_factory=list)
    _server: asyncio.Server | None = None

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    def ids(self, path: str | None = None) -> Counter[str]:
        """How many times each webhook-id arrived (at ``path``), verified ones only."""
        return Counter(r.message_id for r in self.received if r.verified and path in (None, r.path))

    @property
    def unverified(self) -> list[Received]:
        return [r for r in self.received if not r.verified]

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            _method, path, _version = lines[0].split(" ", 2)
            headers = {}
            for line in lines[1:]:
                if ":" in line:
                    name, value = line.split(":", 1)
                    headers[name.strip().lower()] = value.strip()
            body = await reader.readexactly(int(headers.get("content-length", "0")))
            item = Received(path=path, headers=headers, body=body, verified=False, payload=None)
            secret = self.secrets.get(path)
            if secret is not None:
                try:
                    item.payload = Webhook(secret).verify(body, headers)
                    item.verified = True
                except (WebhookVerificationError, ValueError):
                    pass
            item.status = self.answer(item) if item.verified else 400
            self.received.append(item)
            reply = json.dumps({"received": item.verified}).encode()
            writer.write(
                f"HTTP/1.1 {item.status} X\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(reply)}\r\nConnection: close\r\n\r\n".encode()
                + reply
            )
            await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, ValueError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()


async def wait_for(condition: Callable[[], Any], seconds: float, step: float = 0.1) -> None:
    """Poll ``condition`` (sync or async) until it is true; fail after ``seconds``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while True:
        result = condition()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return
        if loop.time() > deadline:
            raise AssertionError(f"condition not met within {seconds} s")
        await asyncio.sleep(step)
