"""A real browser: headless Chromium (Debian's ``chromium``) driven by Playwright.

- A page served from another origin logs in and lists customers with ``fetch`` through
  CORS, and a page from an origin that is not allowed is refused by the browser.
- ``/docs`` (Swagger UI) and ``/redoc`` render their operations with every request to
  another host aborted, and the "Authorize" dialog logs in with e-mail and password.

The API is a real ``salesdesk serve`` process on the test database; the pages come from
two static servers on ports of their own (so, other origins). Without a Chromium the tests
are skipped, unless ``CI=true`` or ``SALESDESK_REQUIRE_BROWSER=1`` (as ``.ci/run`` sets),
where they fail instead.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode, urlsplit

import httpx
import pytest
from sqlalchemy import select

from app.db import Database
from app.models.customers import Customer
from app.models.people import Role
from tests.factories import make_customer, make_user

if TYPE_CHECKING:  # playwright may be missing: the tests then skip or fail with the reason
    from playwright.async_api import Browser, BrowserContext, Page, Route

SALESDESK = Path(sys.executable).with_name("salesdesk")
PAGES = Path(__file__).with_name("browser_pages")
PASSWORD = "browser-password-1"
# The flags that let Chromium run headless here as root, and keep it from calling home.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
LOCAL_HOSTS = frozenset({"127.0.0.1", "localhost"})


def _browser_required() -> bool:
    return os.environ.get("CI") == "true" or os.environ.get("SALESDESK_REQUIRE_BROWSER") == "1"


def _chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    reason = None
    if found is None:
        reason = "no chromium binary (apt-get install chromium)"
    else:
        try:
            import playwright.async_api  # noqa: F401
        except ImportError:
            reason = "the playwright package is not installed (pip install -e '.[dev]')"
    if reason is None:
        return str(found)
    if _browser_required():
        pytest.fail(f"the browser tests are required here, but {reason}")
    pytest.skip(reason)


@dataclass
class StaticSite:
    """A folder served over HTTP from a port of its own: an origin of its own."""

    server: ThreadingHTTPServer

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"


@pytest.fixture(scope="module")
def sites() -> Iterator[tuple[StaticSite, StaticSite]]:
    """The origin the API allows, and one it does not."""
    handler = functools.partial(_QuietHandler, directory=str(PAGES))
    servers = [ThreadingHTTPServer(("127.0.0.1", 0), handler) for _ in range(2)]
    for server in servers:
        threading.Thread(target=server.serve_forever, daemon=True).start()
    yield StaticSite(servers[0]), StaticSite(servers[1])
    for server in servers:
        server.shutdown()
        server.server_close()


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def api(
    sites: tuple[StaticSite, StaticSite],
    migrated_url: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[str]:
    """``salesdesk serve`` on the test database, allowing the first site's origin only, with
    the rate limits on (their headers are among those a page may read)."""
    port = _free_port()
    log_path = tmp_path_factory.mktemp("browser") / "server.log"
    env = {
        **os.environ,
        "SALESDESK_CORS_ORIGINS": sites[0].origin,
        "SALESDESK_RATE_LIMIT_ENABLED": "true",
        "SALESDESK_SEED_DEMO": "false",
    }
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [str(SALESDESK), "serve", "--port", str(port), "--no-worker"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_until_up(process, base + "/healthz", log_path)
        yield base
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def _wait_until_up(process: subprocess.Popen[bytes], url: str, log: Path) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"the server exited: {log.read_text()[-2000:]}")
        try:
            if httpx.get(url).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"the server did not answer within 30 s: {log.read_text()[-2000:]}")


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Browser]:
    executable = _chromium()
    from playwright.async_api import async_playwright

    # Each launch runs on a fresh temporary profile (user data dir) of Playwright's.
    async with async_playwright() as playwright:
        chromium = await playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        yield chromium
        await chromium.close()


async def _run_page(browser: Browser, url: str) -> tuple[dict[str, Any], list[str]]:
    """Open the customers page at ``url``; its result and the browser's console lines."""
    context = await browser.new_context()
    page = await context.new_page()
    console: list[str] = []
    page.on("console", lambda message: console.append(message.text))
    try:
        await page.goto(url)
        await page.wait_for_function(
            "document.getElementById('result').textContent !== 'pending'", timeout=30_000
        )
        result = json.loads(await page.inner_text("#result"))
    finally:
        await context.close()
    return result, console


async def test_a_page_on_an_allowed_origin_logs_in_and_lists_customers(
    browser: Browser, api: str, sites: tuple[StaticSite, StaticSite], database: Database
) -> None:
    rep = await make_user(database, Role.REP, password=PASSWORD)
    await make_customer(database, rep, "Wuxi Taihu Textiles")
    await make_customer(database, rep, "Suzhou Canal Pumps")
    query = urlencode({"api": api, "email": rep.user.email, "password": PASSWORD})

    result, console = await _run_page(browser, f"{sites[0].origin}/customers.html?{query}")

    assert "error" not in result, (result, console)
    assert result["login"] == 200
    assert result["listed"] == 200
    assert result["names"] == ["Suzhou Canal Pumps", "Wuxi Taihu Textiles"]
    # The headers the API exposes to pages: the request id it was sent, the rate limits.
    assert result["request_id"] == "6c1c1f1e-5d0b-4e6f-9a59-8f0a2d3c4b5a"
    assert result["rate_limit_policy"].startswith('"ip";q=')
    assert '"user";r=' in result["rate_limit"]
    assert result["created"] == 201
    assert result["location"].startswith("/api/v1/customers/")
    assert result["etag"].startswith('"1-')  # the version, and the names' digest
    # An error is readable too: the page sees the problem, not an opaque network failure.
    assert result["refused"] == 401
    assert result["refused_code"] == "unauthorized"

    async with database.session() as session:
        names = set(await session.scalars(select(Customer.name)))
    assert "Made in the browser Ltd" in names


async def test_a_page_on_another_origin_is_refused_by_the_browser(
    browser: Browser, api: str, sites: tuple[StaticSite, StaticSite], database: Database
) -> None:
    rep = await make_user(database, Role.REP, password=PASSWORD)
    query = urlencode({"api": api, "email": rep.user.email, "password": PASSWORD})

    result, console = await _run_page(browser, f"{sites[1].origin}/customers.html?{query}")

    # The browser withholds the answer: fetch fails as if the network had.
    assert result == {"error": "TypeError: Failed to fetch"}
    assert any("blocked by CORS policy" in line for line in console), console


async def _offline_page(browser: Browser) -> tuple[BrowserContext, Page, list[str]]:
    """A page whose every request to a host other than this machine is aborted (and noted)."""
    context = await browser.new_context()
    outside: list[str] = []

    async def only_local(route: Route) -> None:
        if urlsplit(route.request.url).hostname in LOCAL_HOSTS:
            await route.continue_()
        else:
            outside.append(route.request.url)
            await route.abort("internetdisconnected")

    await context.route("**/*", only_local)
    return context, await context.new_page(), outside


async def test_swagger_ui_renders_offline_and_authorizes_with_email_and_password(
    browser: Browser, api: str, database: Database
) -> None:
    rep = await make_user(database, Role.REP, password=PASSWORD)
    await make_customer(database, rep, "Wuxi Taihu Textiles")
    context, page, outside = await _offline_page(browser)
    try:
        await page.goto(api + "/docs")
        operation = page.locator("#operations-customers-customers_list")
        await operation.wait_for(timeout=60_000)
        assert await page.locator(".opblock").count() > 100

        # The "Authorize" dialog's password flow: e-mail and password, no pasted token.
        await page.locator("button.authorize").first.click()
        dialog = page.locator(".dialog-ux")
        await dialog.locator("#oauth_username").fill(rep.user.email)
        await dialog.locator("#oauth_password").fill(PASSWORD)
        await dialog.locator(".auth-btn-wrapper button.authorize").click()
        # Logged in: the dialog offers to log out instead.
        await dialog.locator("button", has_text="Logout").wait_for(timeout=15_000)
        await dialog.locator("button.close-modal").click()

        await operation.locator(".opblock-summary").click()
        await operation.locator("button.try-out__btn").click()
        await operation.locator("button.execute").click()
        status = operation.locator(".live-responses-table .response .response-col_status")
        await status.first.wait_for(timeout=30_000)
        assert (await status.first.inner_text()).strip() == "200"
        body = await operation.locator(".live-responses-table .microlight").first.inner_text()
        assert "Wuxi Taihu Textiles" in body
    finally:
        await context.close()
    assert outside == []


async def test_redoc_renders_offline(browser: Browser, api: str) -> None:
    context, page, outside = await _offline_page(browser)
    try:
        await page.goto(api + "/redoc")
        section = page.locator('[data-section-id="tag/customers/operation/customers_list"]')
        await section.first.wait_for(timeout=90_000)
        assert "customers" in (await section.first.inner_text()).lower()
    finally:
        await context.close()
    assert outside == []
