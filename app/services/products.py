"""The product catalogue: managed by the director, read by everyone (active ones)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Select, select, true
from sqlalchemy.ext.asyncio import AsyncSession

from app import events
from app.errors import Conflict
from app.models.pipeline import Product, ProductCreate, ProductRead, ProductUpdate
from app.pagination import paginate
from app.permissions import Actor
from app.services.common import apply_changes, ensure_version, get_visible, matches_text

PRODUCT_SORTS = {"created_at": Product.created_at, "name": Product.name, "sku": Product.sku}


def _visible(actor: Actor) -> Any:
    return true() if actor.is_director else Product.is_active.is_(True)


async def list_products(
    session: AsyncSession,
    actor: Actor,
    *,
    q: str | None,
    is_active: bool | None,
    sort: str,
    cursor: str | None,
    limit: int,
) -> tuple[Sequence[Product], str | None]:
    stmt: Select[Any] = select(Product).where(_visible(actor))
    if is_active is not None:
        stmt = stmt.where(Product.is_active.is_(is_active))
    if q:
        stmt = stmt.where(matches_text(q, Product.name, Product.sku))
    return await paginate(
        session,
        stmt,
        sort=sort,
        sortable=PRODUCT_SORTS,
        id_column=Product.id,
        cursor=cursor,
        limit=limit,
    )


async def get_product(session: AsyncSession, actor: Actor, product_id: uuid.UUID) -> Product:
    return await get_visible(session, Product, product_id, _visible(actor), name="product")


async def create_product(session: AsyncSession, data: ProductCreate) -> Product:
    taken = (await session.scalars(select(Product.id).where(Product.sku == data.sku))).first()
    if taken is not None:
        raise Conflict(
            f"SKU {data.sku} exists already.", reason="duplicate_sku", existing_id=str(taken)
        )
    product = Product(**data.model_dump())
    session.add(product)
    await session.flush()
    events.record(session, "product.created", product, ProductRead.model_validate(product))
    return product


async def update_product(
    session: AsyncSession,
    actor: Actor,
    product_id: uuid.UUID,
    data: ProductUpdate,
    expected: int | None,
) -> Product:
    product = await get_product(session, actor, product_id)
    ensure_version(product, expected)
    apply_changes(product, data)
    await session.flush()
    events.record(session, "product.updated", product, ProductRead.model_validate(product))
    return product
