"""``/docs`` (Swagger UI) and ``/redoc`` (ReDoc) from files installed with the package, so
they render where no CDN is reachable.

The scripts and styles come from the ``fastapi-offline`` package, which ships both bundles;
the pages are FastAPI's own (``get_swagger_ui_html``, ``get_redoc_html``) pointed at them,
so the app stays a plain ``FastAPI``. Nothing on either page names another host: the
favicon is served here too, and ReDoc's Google Fonts are left out (it falls back to the
system's fonts). A Content-Security-Policy keeps the browser to this server for what the
bundles themselves would fetch.
"""

from __future__ import annotations

from importlib.resources import files

from fastapi import FastAPI, Request
from fastapi.openapi.docs import (
    get_redoc_html,
    get_swagger_ui_html,
    get_swagger_ui_oauth2_redirect_html,
)
from fastapi.staticfiles import StaticFiles
from starlette.responses import HTMLResponse

DOCS = "/docs"
REDOC = "/redoc"
OAUTH2_REDIRECT = "/docs/oauth2-redirect"
ASSETS = "/docs/assets"
_ASSETS_FOLDER = str(files("fastapi_offline") / "static")
# The pages may load only what this server serves: ReDoc's sidebar shows a logo from
# Redocly's CDN whatever its options say, and under this policy the browser does not ask for
# it (ReDoc then leaves the logo out). The pages' own start-up scripts are inline, and ReDoc
# runs its search in a worker it builds from a blob.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; font-src 'self' data:; worker-src 'self' blob:; "
    "connect-src 'self'; frame-ancestors 'self'"
)
# Swagger UI never asks an online validator about the document.
SWAGGER_UI_PARAMETERS = {"validatorUrl": None}


def install(app: FastAPI) -> None:
    """Serve the two documentation pages and their assets on ``app`` (created with
    ``docs_url=None, redoc_url=None``)."""
    app.mount(ASSETS, StaticFiles(directory=_ASSETS_FOLDER), name="docs-assets")

    def root(request: Request) -> str:
        return str(request.scope.get("root_path", ""))

    # Plain Starlette routes, as FastAPI adds its own pages: no dependencies, no transaction.
    async def swagger_ui(request: Request) -> HTMLResponse:
        base = root(request)
        return _local_only(
            get_swagger_ui_html(
                openapi_url=base + str(app.openapi_url),
                title=app.title + " - Swagger UI",
                oauth2_redirect_url=base + OAUTH2_REDIRECT,
                swagger_js_url=f"{base}{ASSETS}/swagger-ui-bundle.js",
                swagger_css_url=f"{base}{ASSETS}/swagger-ui.css",
                swagger_favicon_url=f"{base}{ASSETS}/favicon.png",
                swagger_ui_parameters=SWAGGER_UI_PARAMETERS,
            )
        )

    async def swagger_ui_redirect(_: Request) -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()

    async def redoc(request: Request) -> HTMLResponse:
        base = root(request)
        return _local_only(
            get_redoc_html(
                openapi_url=base + str(app.openapi_url),
                title=app.title + " - ReDoc",
                redoc_js_url=f"{base}{ASSETS}/redoc.standalone.js",
                redoc_favicon_url=f"{base}{ASSETS}/favicon.png",
                with_google_fonts=False,
            )
        )

    app.add_route(DOCS, swagger_ui, include_in_schema=False)
    app.add_route(OAUTH2_REDIRECT, swagger_ui_redirect, include_in_schema=False)
    app.add_route(REDOC, redoc, include_in_schema=False)


def _local_only(page: HTMLResponse) -> HTMLResponse:
    page.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    return page
