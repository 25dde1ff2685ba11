"""The ingest webhook over real HTTP against the running service: signing, replay window, limits and duplicates."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from aifinops.stack import LOCAL_WEBHOOK_SOURCE, Stack
from services.ingest.signing import SIGNATURE_HEADER, TIMESTAMP_HEADER, signed_headers
from services.ingest.tables import IngestUsageEvent
from shared.db import Database
from tests.conftest import EXAMPLES

pytestmark = pytest.mark.integration

TENANT = "webhook-tests"
ANTHROPIC_PATH = "/v1/usage/anthropic-usage-report"
ANTHROPIC = (EXAMPLES / "data" / "anthropic_usage_webhook_2026-11.json").read_bytes()
_TABLE = IngestUsageEvent.__table__  # type: ignore[attr-defined]


async def post(stack: Stack, path: str, body: bytes, headers: dict[str, str]) -> httpx.Response:
    async with httpx.AsyncClient(timeout=30) as client:
        return await client.post(stack.url("ingest", path), content=body, headers=headers)


async def post_signed(stack: Stack, path: str, body: bytes, tenant: str = TENANT, **extra: str) -> httpx.Response:
    return await post(stack, path, body, stack.webhook_headers(body, tenant) | extra)


async def stored_rows(stack: Stack, tenant: str) -> list[Any]:
    database = Database(stack.settings().database_url_for("ingest"))
    try:
        async with database.engine.connect() as connection:
            result = await connection.execute(select(_TABLE).where(_TABLE.c.tenant == tenant))
            return list(result)
    finally:
        await database.dispose()


async def test_three_deliveries_record_once(stack: Stack) -> None:
    tenant = f"{TENANT}-thrice"
    first = await post_signed(stack, ANTHROPIC_PATH, ANTHROPIC, tenant)
    assert first.status_code == 202
    assert first.json()["accepted"] == 2
    assert len(first.json()["event_ids"]) == 2
    for _ in range(2):
        again = await post_signed(stack, ANTHROPIC_PATH, ANTHROPIC, tenant)
        assert again.status_code == 202
        assert again.json()["accepted"] == 0
        assert again.json()["duplicate"] == 2
    rows = await stored_rows(stack, tenant)
    assert sorted(row.event_id for row in rows) == sorted(first.json()["event_ids"])
    assert {row.channel for row in rows} == {"webhook"}
    assert all(row.received_at is not None for row in rows)
    # The provider's own result is kept with each event, so any cost can be traced to it.
    starts = sorted(json.loads(row.raw)["starting_at"] for row in rows)
    assert starts == ["2026-11-02T00:00:00Z", "2026-11-03T00:00:00Z"]


async def test_concurrent_deliveries_record_once(stack: Stack) -> None:
    tenant = f"{TENANT}-concurrent"
    responses = await asyncio.gather(*(post_signed(stack, ANTHROPIC_PATH, ANTHROPIC, tenant) for _ in range(12)))
    assert {response.status_code for response in responses} == {202}
    # 12 deliveries of 2 events: exactly 2 are accepted, whichever requests win, and 22 are duplicates.
    assert sum(response.json()["accepted"] for response in responses) == 2
    assert sum(response.json()["duplicate"] for response in responses) == 22
    assert len(await stored_rows(stack, tenant)) == 2


async def test_unsigned_request_is_rejected(stack: Stack) -> None:
    response = await post(stack, ANTHROPIC_PATH, ANTHROPIC, {"x-aifinops-tenant": TENANT})
    assert response.status_code == 401
    assert "x-aifinops-signature" in response.json()["error"]


async def test_wrong_signature_is_rejected(stack: Stack) -> None:
    headers = stack.webhook_headers(ANTHROPIC, TENANT)
    headers[SIGNATURE_HEADER] = "sha256=" + "0" * 64
    response = await post(stack, ANTHROPIC_PATH, ANTHROPIC, headers)
    assert response.status_code == 401
    assert "does not match" in response.json()["error"]


async def test_body_changed_after_signing_is_rejected(stack: Stack) -> None:
    headers = stack.webhook_headers(ANTHROPIC, TENANT)
    tampered = ANTHROPIC.replace(b"1250000", b"1", 1)
    response = await post(stack, ANTHROPIC_PATH, tampered, headers)
    assert response.status_code == 401


async def test_replay_outside_window_is_rejected(stack: Stack) -> None:
    captured = signed_headers(
        LOCAL_WEBHOOK_SOURCE, stack.config.webhook_secret.encode(), ANTHROPIC, now=time.time() - 301
    )
    response = await post(stack, ANTHROPIC_PATH, ANTHROPIC, captured | {"x-aifinops-tenant": TENANT})
    assert response.status_code == 401
    assert "at most 300 s" in response.json()["error"]
    assert int(captured[TIMESTAMP_HEADER]) < time.time() - 300


async def test_oversized_body_is_rejected(stack: Stack) -> None:
    body = b" " * (1024 * 1024 + 1)  # the test stack allows 1 MiB
    response = await post_signed(stack, ANTHROPIC_PATH, body)
    assert response.status_code == 413


async def test_malformed_json_is_rejected(stack: Stack) -> None:
    response = await post_signed(stack, ANTHROPIC_PATH, b'{"data": [')
    assert response.status_code == 400
    assert "not valid JSON" in response.json()["error"]


async def test_schema_error_names_the_field(stack: Stack) -> None:
    page = json.loads(ANTHROPIC)
    page["data"][1]["results"][0]["output_tokens"] = -5
    response = await post_signed(stack, ANTHROPIC_PATH, json.dumps(page).encode())
    assert response.status_code == 422
    body = response.json()
    assert body["accepted"] == 0
    assert body["rejections"] == [
        {"row": 2, "field": "data[1].results[0].output_tokens", "reason": "must not be negative, got -5"}
    ]


async def test_restatement_is_a_conflict(stack: Stack) -> None:
    tenant = f"{TENANT}-restated"
    assert (await post_signed(stack, ANTHROPIC_PATH, ANTHROPIC, tenant)).status_code == 202
    page = json.loads(ANTHROPIC)
    page["data"][0]["results"][0]["output_tokens"] += 1000
    response = await post_signed(stack, ANTHROPIC_PATH, json.dumps(page).encode(), tenant)
    assert response.status_code == 409
    assert response.json()["conflicting"] == 1
    assert response.json()["rejections"][0]["field"] == "(event identity)"
    assert len(await stored_rows(stack, tenant)) == 2  # nothing of the second payload was stored


async def test_invalid_tenant_is_rejected(stack: Stack) -> None:
    response = await post_signed(stack, ANTHROPIC_PATH, ANTHROPIC, "x" * 600)
    assert response.status_code == 400
    assert "invalid tenant" in response.json()["error"]


async def test_unknown_format(stack: Stack) -> None:
    response = await post_signed(stack, "/v1/usage/carrier-pigeon", b"{}")
    assert response.status_code == 404
    assert "anthropic-usage-report" in response.json()["known_formats"]


async def test_cloudevent_on_openmeter_path(stack: Stack) -> None:
    tenant = f"{TENANT}-cloudevents"
    event = {
        "specversion": "1.0",
        "type": "com.example.gpu.job",
        "id": "job-42",
        "source": "//gpu-cluster/test",
        "time": "2026-11-06T12:00:00Z",
        "data": {
            "provider": "in-house",
            "quantities": {"gpu_seconds": "7200"},
            "pricing_basis": "provider_billed",
            "cost": {"amount": "4.00", "currency": "USD"},
        },
    }
    body = json.dumps(event).encode()
    content_type = {"content-type": "application/cloudevents+json"}
    first = await post_signed(stack, "/api/v1/events", body, tenant, **content_type)
    assert first.status_code == 202
    assert first.json()["accepted"] == 1
    again = await post_signed(stack, "/api/v1/events", body, tenant, **content_type)
    assert again.json()["duplicate"] == 1


async def test_cloudevent_without_id_is_rejected(stack: Stack) -> None:
    event = {"specversion": "1.0", "type": "t", "id": "", "source": "//s", "time": "2026-11-06T12:00:00Z", "data": {}}
    response = await post_signed(stack, "/api/v1/events", json.dumps([event]).encode())
    assert response.status_code == 422
    assert response.json()["rejections"][0]["field"] == "[0].id"
