"""The webhook and outcomes APIs over real HTTP against the running services."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from aifinops.stack import Stack
from tests.conftest import EXAMPLES

pytestmark = pytest.mark.integration

TENANT = {"x-aifinops-tenant": "http-intake"}
ANTHROPIC = (EXAMPLES / "data" / "anthropic_usage_webhook_2026-11.json").read_bytes()


async def post(stack: Stack, service: str, path: str, **kwargs: Any) -> httpx.Response:
    async with httpx.AsyncClient(timeout=30) as client:
        return await client.post(stack.url(service, path), **kwargs)


async def test_webhook_accepts_once(stack: Stack) -> None:
    first = await post(stack, "ingest", "/v1/usage/anthropic-usage-report", content=ANTHROPIC, headers=TENANT)
    assert first.status_code == 202
    assert first.json()["accepted"] == 2
    for _ in range(2):
        again = await post(stack, "ingest", "/v1/usage/anthropic-usage-report", content=ANTHROPIC, headers=TENANT)
        assert again.status_code == 202
        assert again.json()["accepted"] == 0
        assert again.json()["duplicate"] == 2


async def test_webhook_rejects_bad_json(stack: Stack) -> None:
    response = await post(stack, "ingest", "/v1/usage/anthropic-usage-report", content=b"{nope", headers=TENANT)
    assert response.status_code == 400
    assert "not valid JSON" in response.json()["error"]


async def test_webhook_names_the_bad_field(stack: Stack) -> None:
    page = json.loads(ANTHROPIC)
    page["data"][1]["results"][0]["output_tokens"] = -5
    response = await post(stack, "ingest", "/v1/usage/anthropic-usage-report", content=json.dumps(page), headers=TENANT)
    assert response.status_code == 422
    body = response.json()
    assert body["accepted"] == 0
    assert body["rejections"] == [
        {"row": 2, "field": "data[1].results[0].output_tokens", "reason": "must not be negative, got -5"}
    ]


async def test_webhook_rejects_oversized_body(stack: Stack) -> None:
    response = await post(
        stack, "ingest", "/v1/usage/anthropic-usage-report", content=b" " * (1024 * 1024 + 1), headers=TENANT
    )
    assert response.status_code == 413


async def test_webhook_unknown_format(stack: Stack) -> None:
    response = await post(stack, "ingest", "/v1/usage/carrier-pigeon", content=b"{}", headers=TENANT)
    assert response.status_code == 404
    assert "anthropic-usage-report" in response.json()["known_formats"]


async def test_outcomes_are_validated(stack: Stack) -> None:
    bad = [
        {
            "use_case": "x",
            "outcome_kind": "tickets",
            "quantity": "-3",
            "unit": "tickets",
            "occurred_at": "2026-11-02T00:00:00Z",
        }
    ]
    response = await post(stack, "value", "/v1/outcomes", json=bad, headers=TENANT)
    assert response.status_code == 422
    assert response.json()["rejections"][0]["field"] == "quantity"
    naive = [{**bad[0], "quantity": "3", "occurred_at": "2026-11-02T00:00:00"}]
    response = await post(stack, "value", "/v1/outcomes", json=naive, headers=TENANT)
    assert response.status_code == 422
    assert response.json()["rejections"][0]["field"] == "occurred_at"
