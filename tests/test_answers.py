"""``app.answers``: which read schemas may be rendered from plain values."""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal

import pytest
from pydantic import BaseModel, Field, field_serializer

from app.answers import check_plain
from app.models.customers import CustomerRead, FollowUpRead
from app.models.types import Money


@pytest.mark.parametrize("schema", [CustomerRead, FollowUpRead])
def test_the_listed_schemas_are_plain(schema: type[BaseModel]) -> None:
    assert check_plain(schema) == tuple(schema.model_fields)


class _WithMoney(BaseModel):
    amount: Money


class _WithOptionalMoney(BaseModel):
    amount: Money | None


class _WithFloat(BaseModel):
    ratio: float


class _WithDecimal(BaseModel):
    amount: Decimal


class _WithAlias(BaseModel):
    when: datetime = Field(serialization_alias="at")


class _WithSerializer(BaseModel):
    id: uuid.UUID

    @field_serializer("id")
    def _hex(self, value: uuid.UUID) -> str:
        return value.hex


class _WithNested(BaseModel):
    inner: _WithFloat


@pytest.mark.parametrize(
    "schema",
    [
        _WithMoney,
        _WithOptionalMoney,
        _WithFloat,
        _WithDecimal,
        _WithAlias,
        _WithSerializer,
        _WithNested,
    ],
)
def test_schemas_orjson_would_render_differently_are_refused(schema: type[BaseModel]) -> None:
    with pytest.raises(TypeError, match=schema.__name__):
        check_plain(schema)
