"""The outcomes API over real HTTP against the running services; the webhook has its own tests in test_webhook.py."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from aifinops.stack import Stack

pytestmark = pytest.mark.integration

TENANT = {"x-aifinops-tenant": "http-intake"}


async def post(stack: Stack, service: str, path: str, **kwargs: Any) -> httpx.Response:
    async with httpx.AsyncClient(timeout=30) as client:
        return await client.post(stack.url(service, path), **kwargs)


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
