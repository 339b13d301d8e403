"""Two apps that do nothing but answer, for ``bench.floors``: what Starlette and FastAPI cost
per request before any of Salesdesk's own work.

Each answers ``GET /items/{item_id}`` (a UUID) with a small JSON object, FastAPI's through a
typed path parameter and a pydantic response model, as every route of the app has.
"""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import Depends, FastAPI, Response
from pydantic import BaseModel
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route


async def _starlette_item(request: Request) -> JSONResponse:
    item_id = uuid.UUID(request.path_params["item_id"])
    return JSONResponse({"id": str(item_id), "name": "An item", "version": 1})


async def _healthz(_: Request) -> JSONResponse:
    return JSONResponse({"status": "ok"})


starlette_app = Starlette(
    routes=[Route("/items/{item_id}", _starlette_item), Route("/healthz", _healthz)]
)


class Item(BaseModel):
    id: uuid.UUID
    name: str
    version: int


fastapi_app = FastAPI(telemetry={"tracing": False, "metrics": False, "logs": False})


@fastapi_app.get("/items/{item_id}")
async def fastapi_item(item_id: uuid.UUID) -> Item:
    return Item(id=item_id, name="An item", version=1)


@fastapi_app.get("/healthz")
async def fastapi_healthz() -> dict[str, str]:
    return {"status": "ok"}


async def _request_value(request: Request) -> str:
    return request.method


async def _first_letter(request: Request) -> str:
    return request.method[0]


@fastapi_app.get("/items-with-dependencies/{item_id}")
async def fastapi_item_with_dependencies(
    item_id: uuid.UUID,
    response: Response,
    first: Annotated[str, Depends(_request_value)],
    second: Annotated[str, Depends(_first_letter)],
) -> Item:
    response.headers["ETag"] = '"1"'
    return Item(id=item_id, name="An item", version=1)


@fastapi_app.get("/items-with-one-dependency/{item_id}")
async def fastapi_item_with_one_dependency(
    item_id: uuid.UUID, response: Response, first: Annotated[str, Depends(_request_value)]
) -> Item:
    response.headers["ETag"] = '"1"'
    return Item(id=item_id, name="An item", version=1)


@fastapi_app.get("/items-with-dependencies-only/{item_id}")
async def fastapi_item_with_dependencies_only(
    item_id: uuid.UUID,
    first: Annotated[str, Depends(_request_value)],
    second: Annotated[str, Depends(_first_letter)],
) -> Item:
    return Item(id=item_id, name="An item", version=1)
