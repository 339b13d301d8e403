"""The product catalogue."""

from __future__ import annotations

import uuid
from typing import Annotated, Literal

from fastapi import Depends, Response

from app.deps import ActorDep, IfMatchDep, SessionDep, require
from app.models.pipeline import ProductCreate, ProductRead, ProductUpdate
from app.pagination import Page
from app.permissions import Actor, Permission
from app.routers.common import (
    Cursor,
    Limit,
    Search,
    api_router,
    created,
    created_with_headers,
    ok_with_etag,
    with_etag,
)
from app.services import products as service

router = api_router("/products", "products")
Manager = Annotated[Actor, Depends(require(Permission.PRODUCTS_MANAGE))]


class ProductPage(Page[ProductRead]):
    pass


@router.get("", summary="List products (active ones; the director sees all)")
async def products_list(
    session: SessionDep,
    actor: ActorDep,
    q: Search = None,
    is_active: bool | None = None,
    sort: Literal["created_at", "-created_at", "name", "-name", "sku", "-sku"] = "name",
    cursor: Cursor = None,
    limit: Limit = 50,
) -> ProductPage:
    rows, next_cursor = await service.list_products(
        session, actor, q=q, is_active=is_active, sort=sort, cursor=cursor, limit=limit
    )
    return ProductPage(items=[ProductRead.model_validate(p) for p in rows], next_cursor=next_cursor)


@router.post(
    "", status_code=201, summary="Add a product (director)", responses=created_with_headers()
)
async def products_create(
    session: SessionDep, _: Manager, body: ProductCreate, response: Response
) -> ProductRead:
    product = await service.create_product(session, body)
    created(response, f"/api/v1/products/{product.id}", product.version)
    return ProductRead.model_validate(product)


@router.get("/{product_id}", summary="Get a product", responses=ok_with_etag())
async def products_get(
    session: SessionDep, actor: ActorDep, product_id: uuid.UUID, response: Response
) -> ProductRead:
    product = await service.get_product(session, actor, product_id)
    with_etag(response, product.version)
    return ProductRead.model_validate(product)


@router.patch("/{product_id}", summary="Change a product (director)", responses=ok_with_etag())
async def products_update(
    session: SessionDep,
    actor: Manager,
    product_id: uuid.UUID,
    body: ProductUpdate,
    expected: IfMatchDep,
    response: Response,
) -> ProductRead:
    product = await service.update_product(session, actor, product_id, body, expected)
    with_etag(response, product.version)
    return ProductRead.model_validate(product)
