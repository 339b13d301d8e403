"""The served OpenAPI document is the committed snapshot, and reads well for generators."""

from __future__ import annotations

import json
import re
import typing
from pathlib import Path
from typing import Any

import httpx

from app.db import Database
from app.errors import ProblemCode
from app.models import (
    Complaint,
    Contact,
    Contract,
    Customer,
    Delivery,
    FollowUp,
    Opportunity,
    Product,
    Quote,
    Region,
    User,
    WebhookEndpoint,
)
from app.services import complaints, contract_workflow, opportunities, quotes
from tests.factories import make_org

SNAPSHOT = Path(__file__).resolve().parent.parent / "openapi.json"
APP = SNAPSHOT.parent / "app"


async def test_served_document_matches_the_snapshot(client: httpx.AsyncClient) -> None:
    served = (await client.get("/openapi.json")).json()
    committed = json.loads(SNAPSHOT.read_text())
    assert served == committed, "the API changed: review it, then run `make openapi`"


async def test_every_operation_has_an_id_a_tag_a_summary_and_documented_errors(
    client: httpx.AsyncClient,
) -> None:
    document = (await client.get("/openapi.json")).json()
    seen: set[str] = set()
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            operation_id = operation["operationId"]
            assert operation_id not in seen, f"duplicate operationId {operation_id}"
            seen.add(operation_id)
            assert operation["tags"] and operation["summary"], (method, path)
            if path.startswith("/api/v1/"):
                assert {"401", "429", "503"} <= operation["responses"].keys(), (method, path)
    assert {"customers_list", "customers_create", "customers_assign", "follow_ups_create"} <= seen


def _operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method, path, operation)
        for path, operations in document["paths"].items()
        for method, operation in operations.items()
    ]


def _headers(operation: dict[str, Any]) -> set[str]:
    return {p["name"] for p in operation.get("parameters", []) if p["in"] == "header"}


async def test_one_schema_name_per_model(client: httpx.AsyncClient) -> None:
    """No -Input/-Output twins and no module-qualified names of two classes called alike:
    generators drop or rename those (issue 25)."""
    names = (await client.get("/openapi.json")).json()["components"]["schemas"]
    assert not [name for name in names if re.search(r"-(Input|Output)$|__", name)]


async def test_problem_code_is_the_enum_of_every_code_answered(
    client: httpx.AsyncClient,
) -> None:
    schemas = (await client.get("/openapi.json")).json()["components"]["schemas"]
    problem = schemas["Problem"]
    assert problem["properties"]["code"] == {"$ref": "#/components/schemas/ProblemCode"}
    assert set(schemas["ProblemCode"]["enum"]) == {c.value for c in ProblemCode}
    assert schemas["FieldError"]["required"] == ["loc", "msg", "type"]
    for member in ("reason", "current", "allowed", "existing_id", "correlation_id", "errors"):
        assert member in problem["properties"] and member not in problem["required"]
        assert "null" not in json.dumps(problem["properties"][member]), member


def test_every_code_is_named_through_the_enum() -> None:
    """A code written as a bare string could be one the enum (and so every client) misses."""
    bare = re.compile(r'(problem_response\(\s*\d{3},\s*"|code = \d{3}, ")')
    offenders = [str(f) for f in APP.rglob("*.py") if bare.search(f.read_text())]
    assert offenders == []


async def test_idempotency_key_is_declared_on_every_authenticated_post(
    client: httpx.AsyncClient,
) -> None:
    """The middleware (app/idempotency.py) honours the header on every POST of a caller with
    a valid token, and on nothing else."""
    for method, path, operation in _operations((await client.get("/openapi.json")).json()):
        honoured = method == "post" and bool(operation.get("security"))
        assert ("Idempotency-Key" in _headers(operation)) == honoured, (method, path)


async def test_errors_are_the_ones_each_operation_can_answer(client: httpx.AsyncClient) -> None:
    for method, path, operation in _operations((await client.get("/openapi.json")).json()):
        statuses = operation["responses"].keys()
        assert ("412" in statuses) == ("If-Match" in _headers(operation)), (method, path)
        if method == "get":
            assert not {"409", "412", "413"} & statuses, (method, path)
            assert "If-Match" not in _headers(operation), (method, path)
        if "404" in statuses:  # a record named by its id: in the path, the body or a filter
            ids = [p for p in operation.get("parameters", []) if "uuid" in json.dumps(p)]
            assert "{" in path or "requestBody" in operation or ids, (method, path)
        if path.startswith("/api/v1/") and "{" in path:
            assert "404" in statuses, (method, path)


async def test_an_offered_move_is_of_the_resources_state_type(client: httpx.AsyncClient) -> None:
    document = (await client.get("/openapi.json")).json()
    schemas = document["components"]["schemas"]
    for things, state in (
        ("opportunities", "Stage"),
        ("quotes", "QuoteStatus"),
        ("contracts", "ContractStatus"),
        ("complaints", "ComplaintStatus"),
    ):
        [path] = [
            p
            for p in document["paths"]
            if re.fullmatch(f"/api/v1/{things}/{{\\w+}}/transitions", p)
        ]
        answer = document["paths"][path]["get"]["responses"]["200"]["content"]
        option = answer["application/json"]["schema"]["items"]["$ref"].rsplit("/", 1)[1]
        assert schemas[option]["properties"]["to"] == {"$ref": f"#/components/schemas/{state}"}
        body = document["paths"][path]["post"]["requestBody"]["content"]["application/json"]
        transition = schemas[body["schema"]["$ref"].rsplit("/", 1)[1]]
        assert transition["properties"]["to"] == schemas[option]["properties"]["to"]
        # What a move needs is named among the transition body's own fields.
        items = schemas[option]["properties"]["needs"]["items"]
        needs = items.get("enum") or [items["const"]]
        assert set(needs) == set(transition["properties"]) - {"to"}


def test_every_move_needs_only_fields_its_option_can_name() -> None:
    for workflow in (
        opportunities.WORKFLOW,
        quotes.WORKFLOW,
        contract_workflow.WORKFLOW,
        complaints.WORKFLOW,
    ):
        assert workflow.option is not None
        [literal] = typing.get_args(workflow.option.model_fields["needs"].annotation)
        named = set(typing.get_args(literal))
        for moves in workflow.table.values():
            for rule in moves.values():
                assert set(rule.needs) <= named, (workflow.entity_type, rule.needs)


async def test_money_is_a_decimal_string_in_requests_and_answers(
    client: httpx.AsyncClient, database: Database
) -> None:
    org = await make_org(database)
    schemas = (await client.get("/openapi.json")).json()["components"]["schemas"]
    for schema, field in (("TargetCreate", "value"), ("TargetRead", "value")):
        money = schemas[schema]["properties"][field]
        assert money["type"] == "string" and re.fullmatch(money["pattern"], "12500.00")
    # As documented, a JSON number is refused (a float has lost the exact amount already).
    for value in (12500, 12500.5, "12,500.00", "1e3", "-1.00", "1.005"):
        refused = await client.post(
            "/api/v1/targets",
            json={"period": "2026", "scope": "company", "metric": "signed_revenue", "value": value},
            headers=org.director.headers,
        )
        assert refused.status_code == 422, (value, refused.text)
        assert refused.json()["errors"][0]["loc"] == ["body", "value"]
    listed = await client.get("/api/v1/targets", headers=org.director.headers)
    assert listed.json()["items"] == []


async def test_sort_values_have_readable_member_names(client: httpx.AsyncClient) -> None:
    document = (await client.get("/openapi.json")).json()
    sorts = [
        p["schema"]
        for _, _, operation in _operations(document)
        for p in operation.get("parameters", [])
        if p["name"] == "sort"
    ]
    assert len(sorts) >= 10
    for schema in sorts:
        names = schema["x-enum-varnames"]
        assert len(names) == len(set(names)) == len(schema["enum"])
        for value, name in zip(schema["enum"], names, strict=True):
            descending = value.startswith("-")
            assert name == value.lstrip("-").upper() + ("_DESC" if descending else "")


async def test_update_fields_are_nullable_exactly_where_null_is_accepted(
    client: httpx.AsyncClient,
) -> None:
    """An explicit null for a column that cannot be empty is refused (services.common
    apply_changes), so such a field's schema is optional but not nullable."""
    schemas = (await client.get("/openapi.json")).json()["components"]["schemas"]
    pairs = {
        "RegionUpdate": Region,
        "UserUpdate": User,
        "CustomerUpdate": Customer,
        "ContactUpdate": Contact,
        "FollowUpUpdate": FollowUp,
        "ProductUpdate": Product,
        "OpportunityUpdate": Opportunity,
        "QuoteUpdate": Quote,
        "ContractUpdate": Contract,
        "DeliveryUpdate": Delivery,
        "ComplaintUpdate": Complaint,
        "WebhookUpdate": WebhookEndpoint,
    }
    for name, table in pairs.items():
        columns = table.__table__.c  # type: ignore[attr-defined]
        for field, schema in schemas[name]["properties"].items():
            if field in columns:
                nullable = "null" in json.dumps(schema)
                assert nullable == columns[field].nullable, f"{name}.{field}"
    settings = schemas["SettingsPatch"]["properties"].values()
    assert not [s for s in settings if "null" in json.dumps(s)]


async def test_a_field_documented_not_nullable_refuses_null(
    client: httpx.AsyncClient, database: Database
) -> None:
    org = await make_org(database)
    headers = org.director.headers
    region = f"/api/v1/regions/{org.east.id}"
    # Refused with the body, before a stale If-Match is looked at: null is not in its schema.
    stale = {**headers, "If-Match": '"999"'}
    refused = await client.patch(region, json={"name": None}, headers=stale)
    assert refused.status_code == 422, refused.text
    [error] = refused.json()["errors"]
    assert (error["loc"], error["type"]) == (["body", "name"], "null_not_allowed")
    assert (await client.get(region, headers=headers)).json()["name"] == "East"
    settings = await client.patch("/api/v1/settings", json={"kpi_weights": None}, headers=headers)
    assert settings.status_code == 422


async def test_answers_are_nullable_exactly_where_the_columns_are(
    client: httpx.AsyncClient,
) -> None:
    """A read field is null only where its column can be; and every member of an answer is
    required, as every answer carries it."""
    schemas = (await client.get("/openapi.json")).json()["components"]["schemas"]
    # Filled in by the service where the column is empty.
    computed = {("OpportunityRead", "probability")}
    pairs = {
        "CustomerRead": Customer,
        "ContactRead": Contact,
        "FollowUpRead": FollowUp,
        "ProductRead": Product,
        "OpportunityRead": Opportunity,
        "QuoteRead": Quote,
        "ContractRead": Contract,
        "DeliveryRead": Delivery,
        "ComplaintRead": Complaint,
        "RegionRead": Region,
        "UserRead": User,
        "WebhookRead": WebhookEndpoint,
    }
    for name, table in pairs.items():
        columns = table.__table__.c  # type: ignore[attr-defined]
        schema = schemas[name]
        assert set(schema["required"]) == set(schema["properties"]), name
        for field, member in schema["properties"].items():
            if field in columns and (name, field) not in computed:
                nullable = "null" in json.dumps(member)
                assert nullable == columns[field].nullable, f"{name}.{field}"
    for name in ("SettingsRead", "WebhookDeliveryRead"):
        assert set(schemas[name]["required"]) == set(schemas[name]["properties"]), name
