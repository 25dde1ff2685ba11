"""The outcomes API over real HTTP against the running services; the webhook has its own tests in test_webhook.py."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from aifinops.stack import Stack
from services.value.files import import_outcomes_file
from services.value.outcomes import OutcomeRejected

pytestmark = pytest.mark.integration

TENANT = {"x-aifinops-tenant": "http-intake"}
TICKETS = {
    "outcome_id": "http-intake-restated",
    "use_case": "support-assistant",
    "outcome_kind": "tickets_resolved",
    "quantity": "12",
    "unit": "tickets",
    "occurred_at": "2026-11-02T23:00:00Z",
}


async def post(stack: Stack, service: str, path: str, **kwargs: Any) -> httpx.Response:
    async with httpx.AsyncClient(timeout=30) as client:
        return await client.post(stack.url(service, path), **kwargs)


async def post_outcomes(stack: Stack, document: Any, tenant: str = "http-intake") -> httpx.Response:
    """Post outcomes signed as the stack's local source, as a sender does."""
    body = json.dumps(document).encode()
    headers = {**stack.webhook_headers(body, tenant), "content-type": "application/json"}
    return await post(stack, "value", "/v1/outcomes", content=body, headers=headers)


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
    response = await post_outcomes(stack, bad)
    assert response.status_code == 422
    assert response.json()["rejections"][0]["field"] == "quantity"
    naive = [{**bad[0], "quantity": "3", "occurred_at": "2026-11-02T00:00:00"}]
    response = await post_outcomes(stack, naive)
    assert response.status_code == 422
    assert response.json()["rejections"][0]["field"] == "occurred_at"


async def test_outcomes_need_signature(stack: Stack) -> None:
    response = await post(stack, "value", "/v1/outcomes", json=[TICKETS], headers=TENANT)
    assert response.status_code == 401
    assert "missing signing headers" in response.json()["error"]

    body = json.dumps([TICKETS]).encode()
    headers = {**stack.webhook_headers(body, "http-intake"), "content-type": "application/json"}
    tampered = body.replace(b'"12"', b'"13"')
    response = await post(stack, "value", "/v1/outcomes", content=tampered, headers=headers)
    assert response.status_code == 401


async def test_outcomes_invalid_tenant(stack: Stack) -> None:
    response = await post_outcomes(stack, [TICKETS], tenant="../other tenant")
    assert response.status_code == 400
    assert "x-aifinops-tenant" in response.json()["error"]


async def test_outcomes_unknown_field(stack: Stack) -> None:
    response = await post_outcomes(stack, [{**TICKETS, "outcome_id": "unknown-field", "qty": 3}])
    assert response.status_code == 422
    assert response.json()["rejections"][0]["field"] == "qty"


async def test_outcomes_implausible_figures(stack: Stack) -> None:
    huge = {**TICKETS, "outcome_id": "huge", "quantity": "5e12"}  # above MAX_QUANTITY, 10^12
    response = await post_outcomes(stack, [huge])
    assert response.status_code == 422
    assert response.json()["rejections"][0]["field"] == "quantity"
    rich = {**TICKETS, "outcome_id": "rich", "value": {"amount": "2000000000000", "currency": "USD"}}
    response = await post_outcomes(stack, [rich])
    assert response.status_code == 422
    assert response.json()["rejections"][0]["field"] == "value.amount"


async def test_outcome_restatement(stack: Stack) -> None:
    first = await post_outcomes(stack, [TICKETS])
    assert first.status_code == 202
    assert (first.json()["accepted"], first.json()["duplicate"]) == (1, 0)

    # The same content again, 12 written as 12.0, is a duplicate and changes nothing.
    again = await post_outcomes(stack, [{**TICKETS, "quantity": "12.0"}])
    assert again.status_code == 202
    assert (again.json()["accepted"], again.json()["duplicate"]) == (0, 1)

    # Other content under the same outcome id is refused, with the new outcome beside it not stored either.
    other = {**TICKETS, "outcome_id": "http-intake-beside-restated"}
    restated = await post_outcomes(stack, [other, {**TICKETS, "quantity": "15"}])
    assert restated.status_code == 409
    assert restated.json()["conflicting_event_ids"] == [first.json()["event_ids"][0]]
    stored_alone = await post_outcomes(stack, [other])
    assert stored_alone.json()["accepted"] == 1


async def test_outcomes_file_not_utf8(stack: Stack, tmp_path: Path) -> None:
    path = tmp_path / "latin1.csv"
    path.write_bytes(
        b"use_case,outcome_kind,quantity,unit,occurred_at\nsupport-caf\xe9,tickets,1,tickets,2026-10-07T23:00:00Z\n"
    )
    with pytest.raises(OutcomeRejected) as error:
        await import_outcomes_file(path, stack.settings(), "http-intake")
    assert error.value.field_path == "(encoding)"
    assert "not UTF-8" in error.value.reason
