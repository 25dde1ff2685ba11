"""Risk findings and the ITSM ticket loop through the running services, the broker, the database and the stand-in.

Usage goes in through the real import path. The events other services publish (variance, seats, value,
savings) are built from real figures and sent to their Kafka topics. The tests then stop the ITSM stand-in,
raise more findings, start it again, and check that every ticket arrives once; move findings with the CLI,
from ServiceNow and through the signed inbound webhook; and make a resolved finding recur.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from aifinops.itsm_demo import RISK_SAMPLE_FILE, check_tickets, standin_state
from aifinops.stack import Stack
from services.ingest.batch import import_file
from services.risk.findings import FINDINGS, TICKETS
from services.risk.itsm.signing import SIGNATURE_HEADER, sign
from services.risk.lifecycle import list_findings
from shared.db import Database
from shared.events import (
    CostVarianceDetected,
    EventEnvelope,
    Evidence,
    Money,
    RecommendationKind,
    SavingsRecommended,
    SeatEntitlementReported,
)
from shared.kafka import EventPublisher, OutgoingEvent
from shared.topics import Topic
from tests.conftest import EXAMPLES, ROOT

pytestmark = pytest.mark.integration

TENANT = "risk-loop"


async def findings(stack: Stack, kind: str | None = None) -> list[dict[str, Any]]:
    database = Database(stack.settings().database_url_for("risk"))
    try:
        found = await list_findings(database, TENANT, kind=kind)
        async with database.engine.connect() as connection:
            facts = {
                row.finding_id: json.loads(row.facts_json)
                for row in await connection.execute(select(FINDINGS).where(FINDINGS.c.tenant == TENANT))
            }
    finally:
        await database.dispose()
    return [item | {"facts": facts[item["finding_id"]]} for item in found]


async def one(stack: Stack, kind: str) -> dict[str, Any]:
    [found] = await findings(stack, kind)
    return found


async def publish(stack: Stack, *events: tuple[Topic, EventEnvelope, str]) -> None:
    publisher = EventPublisher(stack.bootstrap_servers, client_id="aifinops-test")
    await publisher.start()
    try:
        await publisher.publish([OutgoingEvent.of(topic, event, key=key) for topic, event, key in events])
    finally:
        await publisher.stop()


async def wait_for(check: Any, timeout_s: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        value = await check()
        if value or time.monotonic() > deadline:
            return value
        await asyncio.sleep(0.3)


def cli(stack: Stack, *arguments: str) -> subprocess.CompletedProcess[str]:
    env = stack.environment() | stack.ops_client_environment()
    return subprocess.run(
        [sys.executable, "-m", "aifinops.cli", "findings", *arguments, "--tenant", TENANT],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )


@pytest.fixture(scope="module")
async def research(stack: Stack) -> Stack:
    """The synthetic research usage imported for this module's tenant, with every ticket sent."""
    result = await import_file(EXAMPLES / "data" / RISK_SAMPLE_FILE, settings=stack.settings(), tenant=TENANT)
    assert result.summary.accepted == 35  # 30 research days and 5 growth-experiment days
    await stack.wait_until_drained()
    await stack.wait_until_tickets_sent()
    return stack


async def test_research_usage_findings(research: Stack) -> None:
    anomaly = await one(research, "spend_anomaly")
    forecast = await one(research, "budget_forecast")
    unowned = await one(research, "shadow_ai_unowned")

    # Worked out in tests/unit/test_risk_anomalies.py: median 3.825, MAD 0.35, z = 38.175 / 0.51891 = 73.57.
    assert (anomaly["facts"]["day"], anomaly["facts"]["robust_z"]) == ("2026-11-10", "73.57")
    # 79.20 USD by 2026-11-12 00:00 UTC: 79.20 × 30 / 11 = 216.00 USD, 144.00 % of the 150.00 budget.
    assert forecast["facts"]["projected_spend"] == "216.00 USD"
    # proj_growth_experiments: 5 days × (2,000,000 × 0.15 + 200,000 × 0.60) / 1,000,000 = 5 × 0.42 = 2.10 USD.
    assert unowned["facts"]["owner_key"] == "project_id=proj_growth_experiments"
    assert unowned["facts"]["spend"] == "2.10 USD"
    assert await findings(research, "policy_violation") == []  # gpt-4o is approved for public data


async def test_each_finding_gets_one_ticket_per_system(research: Stack) -> None:
    check = await check_tickets(research, TENANT)

    assert check.findings_needing_tickets == 3  # the anomaly, the forecast and the unowned spend
    assert check.missing == []
    assert (check.duplicate_incidents, check.duplicate_issues) == (0, 0)


async def test_outage_loses_and_duplicates_nothing(research: Stack) -> None:
    variance = CostVarianceDetected(
        event_id="variance:risk-loop:openai:2025-10-06",
        occurred_at=datetime(2025, 10, 7, tzinfo=UTC),
        source="allocation",
        tenant=TENANT,
        correlation_id="variance-test",
        provider="openai",
        day="2025-10-06",
        # The dashboard billed 0.5617712500000000 USD; the catalogue prices that day's gpt-5 usage at 0.81584275.
        # Variance 0.5617712500 − 0.81584275 = −0.25407150 USD; −0.2540715 / 0.56177125 = −45.23 %.
        computed_cost=Money(amount=Decimal("0.81584275"), currency="USD"),
        provider_cost=Money(amount=Decimal("0.5617712500000000"), currency="USD"),
        variance=Money(amount=Decimal("-0.2540715000000000"), currency="USD"),
        variance_percent=Decimal("-45.23"),
        tolerance_percent=Decimal("1"),
        likely_cause="cached input billed at a different rate",
    )
    breakdown = json.loads((ROOT / "tests/fixtures/seats/github_copilot_org_billing_details.json").read_text())
    seats = SeatEntitlementReported(
        event_id="entitlement:risk-loop:copilot",
        occurred_at=datetime(2026, 11, 30, tzinfo=UTC),
        source="ingest",
        tenant=TENANT,
        correlation_id="seats-test",
        vendor="github",
        product="github-copilot",
        as_of=datetime(2026, 11, 30, tzinfo=UTC),
        entitled_seats=breakdown["seat_breakdown"]["total"],
        inactive_seats=breakdown["seat_breakdown"]["inactive_this_cycle"],
        seat_price=Money(amount=Decimal("19.00"), currency="USD"),
        evidence=Evidence(format="github-copilot-billing"),
    )
    savings = SavingsRecommended(
        event_id="savings:risk-loop:rec-batch",
        occurred_at=datetime(2026, 11, 30, tzinfo=UTC),
        source="optimizer",
        tenant=TENANT,
        correlation_id="savings-test",
        recommendation_id="rec-batch",
        kind=RecommendationKind.BATCH_TIER,
        scope="team:research use_case:research-assistant model:openai/gpt-4o",
        estimated_monthly_savings=Money(amount=Decimal("39.60"), currency="USD"),
        confidence="medium",
        arithmetic="79.20 USD × 50 % batch discount = 39.60 USD",
        ticket_requested=True,
    )
    before = await standin_state(research)

    research.stop_itsm_standin()
    await publish(
        research,
        (Topic.COST_VARIANCE_DETECTED, variance, "provider:openai"),
        (Topic.SEAT_ENTITLEMENT_REPORTED, seats, "github:github-copilot"),
        (Topic.SAVINGS_RECOMMENDED, savings, "team:research"),
    )
    await research.wait_until_drained()
    waiting = await wait_for(lambda: _pending(research), timeout_s=10)
    await asyncio.sleep(2)  # let the connectors fail a few times
    await research.start_itsm_standin()
    await research.wait_until_tickets_sent()

    assert waiting >= 3  # variance (high), unused seats (medium), requested savings (low but requested)
    after = await standin_state(research)
    assert len(after["incidents"]) == len(before["incidents"]) + waiting
    check = await check_tickets(research, TENANT)
    assert check.missing == []
    assert (check.duplicate_incidents, check.duplicate_issues) == (0, 0)
    unused = await one(research, "licence_unused_seats")
    assert unused["facts"]["monthly_exposure"] == "209.00 USD a month (11 × 19.00)"  # 11 inactive × 19.00
    assert (await one(research, "reconciliation_variance"))["severity"] == "high"  # |−45.23 %| ≥ 20 %


async def _pending(stack: Stack) -> int:
    return (await stack.ticket_backlog())["pending"]


async def test_cli_resolution_closes_tickets(research: Stack) -> None:
    forecast = await one(research, "budget_forecast")

    result = cli(research, "resolve", forecast["finding_id"][:10], "--by", "dana", "--reason", "budget raised to 250")
    assert result.returncode == 0, result.stderr
    await research.wait_until_tickets_sent()

    state = await standin_state(research)
    [incident] = [i for i in state["incidents"] if i["correlation_id"] == f"aifinops:{forecast['finding_id']}"]
    [issue] = [i for i in state["issues"] if f"aifinops-{forecast['finding_id']}" in i["labels"]]
    assert incident["state"] == "6"
    assert (issue["status"], issue["resolution"]) == ("Done", "Done")
    rejected = cli(research, "accept-risk", forecast["finding_id"])
    assert rejected.returncode != 0
    assert "--reason" in rejected.stderr


async def test_servicenow_agent_change_flows_back(research: Stack) -> None:
    anomaly = await one(research, "spend_anomaly")
    state = await standin_state(research)
    [incident] = [i for i in state["incidents"] if i["correlation_id"] == f"aifinops:{anomaly['finding_id']}"]
    credentials = research.itsm_credentials

    async with httpx.AsyncClient(auth=(credentials["agent"], credentials["agent_password"])) as client:
        response = await client.patch(
            research.itsm_url(f"/api/now/table/incident/{incident['sys_id']}"),
            json={"state": "6", "close_code": "Solved (Permanently)", "close_notes": "retry loop fixed"},
        )
        assert response.status_code == 200

    async def resolved() -> dict[str, Any] | None:
        found = await one(research, "spend_anomaly")
        return found if found["status"] == "resolved" else None

    found = await wait_for(resolved)
    assert found is not None
    assert found["status_changed_by"] == f"servicenow:{credentials['agent']}"
    await research.wait_until_tickets_sent()
    [issue] = [i for i in (await standin_state(research))["issues"] if f"aifinops-{found['finding_id']}" in i["labels"]]
    assert issue["status"] == "Done"  # Jira follows the change made in ServiceNow


async def test_inbound_webhook(research: Stack) -> None:
    unowned = await one(research, "shadow_ai_unowned")
    secret = research.itsm_credentials["webhook_secret"]
    url = research.url("risk", "/v1/itsm/webhook")

    def body(finding_id: str, status: str) -> bytes:
        report = {"tenant": TENANT, "finding_id": finding_id, "status": status, "actor": "ops-bot", "note": "seen"}
        return json.dumps(report).encode()

    async with httpx.AsyncClient(timeout=10) as client:
        good = body(unowned["finding_id"], "acknowledged")
        accepted = await client.post(url, content=good, headers={SIGNATURE_HEADER: sign(secret, good)})
        forged = await client.post(url, content=good, headers={SIGNATURE_HEADER: sign("guess", good)})
        unknown = body("ffffffff-0000", "acknowledged")
        missing = await client.post(url, content=unknown, headers={SIGNATURE_HEADER: sign(secret, unknown)})
        again = await client.post(url, content=good, headers={SIGNATURE_HEADER: sign(secret, good)})

    assert accepted.status_code == 200, accepted.text
    assert accepted.json()["status"] == "acknowledged"
    assert forged.status_code == 401
    assert missing.status_code == 404
    assert again.status_code == 409  # already acknowledged
    found = await one(research, "shadow_ai_unowned")
    assert found["status_changed_by"] == "webhook:ops-bot"


async def test_recurrence_reopens_the_finding(research: Stack, tmp_path: Path) -> None:
    unowned = await one(research, "shadow_ai_unowned")
    assert cli(research, "resolve", unowned["finding_id"], "--by", "dana").returncode == 0
    day = datetime(2026, 11, 12, tzinfo=UTC)
    page = {
        "object": "page",
        "data": [
            {
                "object": "bucket",
                "start_time": int(day.timestamp()),
                "end_time": int((day + timedelta(days=1)).timestamp()),
                "results": [
                    {
                        "object": "organization.usage.completions.result",
                        "input_tokens": 2_000_000,
                        "output_tokens": 200_000,
                        "num_model_requests": 800,
                        "project_id": "proj_growth_experiments",
                        "model": "gpt-4o-mini-2024-07-18",
                    }
                ],
            }
        ],
        "has_more": False,
    }
    path = tmp_path / "growth_2026-11-12.json"
    path.write_text(json.dumps(page))

    await import_file(path, settings=research.settings(), tenant=TENANT, format_name="openai-usage-completions")
    await research.wait_until_drained()
    await research.wait_until_tickets_sent()

    found = await one(research, "shadow_ai_unowned")
    assert found["status"] == "open"
    assert found["reopen_count"] == 1
    assert found["facts"]["spend"] == "2.52 USD"  # 6 days × 0.42
    database = Database(research.settings().database_url_for("risk"))
    try:
        async with database.engine.connect() as connection:
            tickets = (
                await connection.execute(select(TICKETS).where(TICKETS.c.finding_id == found["finding_id"]))
            ).all()
    finally:
        await database.dispose()
    assert sorted((ticket.system, ticket.synced_status) for ticket in tickets) == [
        ("jira", "open"),
        ("servicenow", "open"),
        ("webhook", "open"),
    ]  # the same tickets, reopened: no new ones
