"""/docs and /redoc from the package's own files, and the OAuth2 password flow their
"Authorize" button uses. Rendering in a real browser with no network beyond this machine
is in tests/test_browser.py."""

from __future__ import annotations

import re

import httpx

from app.db import Database
from app.models.people import Role
from tests.factories import make_user

# Any absolute URL in a page: an asset, a font or a favicon from another host.
_ABSOLUTE_URL = re.compile(r"(?:https?:)?//[a-z0-9.-]+", re.IGNORECASE)


def assets_of(html: str) -> list[str]:
    return re.findall(r'(?:href|src)="([^"]+)"', html)


async def test_the_docs_pages_load_everything_from_this_server(client: httpx.AsyncClient) -> None:
    for page, bundle in (("/docs", "swagger-ui-bundle.js"), ("/redoc", "redoc.standalone.js")):
        answer = await client.get(page)
        assert answer.status_code == 200
        assert answer.headers["content-type"].startswith("text/html")
        assert not _ABSOLUTE_URL.findall(answer.text), page
        # What the bundles would fetch by themselves is kept to this server too.
        policy = answer.headers["content-security-policy"]
        assert "default-src 'self'" in policy and "img-src 'self' data:" in policy
        assert "fonts.googleapis.com" not in answer.text
        assets = assets_of(answer.text)
        assert any(asset.endswith(bundle) for asset in assets)
        for asset in assets:
            served = await client.get(asset)
            assert served.status_code == 200, asset
            assert len(served.content) > 1000, asset
    swagger = (await client.get("/docs")).text
    assert "url: '/openapi.json'" in swagger
    assert "'/docs/oauth2-redirect'" in swagger
    assert (await client.get("/docs/oauth2-redirect")).status_code == 200


async def test_the_pages_follow_the_root_path(database: Database) -> None:
    from app.config import get_settings
    from app.main import create_app

    app = create_app(get_settings(), database)
    transport = httpx.ASGITransport(app=app, root_path="/crm")
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        html = (await client.get("/docs")).text
    assert "url: '/crm/openapi.json'" in html
    assert all(asset.startswith("/crm/docs/assets/") for asset in assets_of(html))


async def test_the_security_scheme_is_the_oauth2_password_flow(client: httpx.AsyncClient) -> None:
    document = (await client.get("/openapi.json")).json()
    schemes = document["components"]["securitySchemes"]
    assert list(schemes) == ["OAuth2PasswordBearer"]
    scheme = schemes["OAuth2PasswordBearer"]
    assert scheme["type"] == "oauth2"
    assert scheme["flows"] == {"password": {"tokenUrl": "/api/v1/auth/token", "scopes": {}}}
    customers = document["paths"]["/api/v1/customers"]["get"]
    assert customers["security"] == [{"OAuth2PasswordBearer": []}]
    assert "security" not in document["paths"]["/api/v1/auth/token"]["post"]


async def test_the_authorize_dialogs_login_is_answered_with_a_token(
    client: httpx.AsyncClient, database: Database
) -> None:
    rep = await make_user(database, Role.REP, password="demo-password-123")
    # What Swagger UI posts for the password flow (no client id or secret given).
    form = {
        "grant_type": "password",
        "username": rep.user.email,
        "password": "demo-password-123",
        "scope": "",
    }
    answer = await client.post("/api/v1/auth/token", data=form)
    assert answer.status_code == 200, answer.text
    token = answer.json()["access_token"]
    me = await client.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {token}"})
    assert me.status_code == 200
    assert me.json()["email"] == rep.user.email
