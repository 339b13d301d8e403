"""The served OpenAPI document is the committed snapshot, and reads well for generators."""

from __future__ import annotations

import json
from pathlib import Path

import httpx

SNAPSHOT = Path(__file__).resolve().parent.parent / "openapi.json"


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
            if path.startswith("/api/v1/") and path != "/api/v1/auth/token":
                assert {"401", "422"} <= operation["responses"].keys(), (method, path)
    assert {"customers_list", "customers_create", "customers_assign", "follow_ups_create"} <= seen
