"""Unit economics and savings recommendations end to end, fed exactly as the demo feeds them.

Every figure below is worked out by hand from the sample files (examples/data) and the demo's use case register
and optimizer policy (examples/config).
"""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer

from aifinops.demo import feed_samples, feed_value_and_optimizer_samples, walk_recommendation_lifecycle
from aifinops.report import build_report
from aifinops.stack import Stack
from services.value.queries import read_unit_economics
from shared.db import Database
from shared.events import OutcomeRecorded, SavingsRecommended
from shared.kafka import EventPublisher, OutgoingEvent
from shared.topics import Topic

pytestmark = pytest.mark.integration

TENANT = "value-savings"
D = Decimal


def quiet(*_args: Any, **_kwargs: Any) -> None:
    return None


@pytest.fixture(scope="module")
async def report(stack: Stack) -> dict[str, Any]:
    await feed_samples(stack, TENANT, quiet)
    await feed_value_and_optimizer_samples(stack, TENANT, quiet)
    await stack.wait_until_drained()
    await walk_recommendation_lifecycle(stack, TENANT, quiet)
    await stack.wait_until_drained()
    return (await build_report(stack.settings(), TENANT)).as_json()


def economics(report: dict[str, Any], use_case: str, period: str) -> dict[str, Any]:
    [row] = [row for row in report["unit_economics"] if (row["use_case"], row["period"]) == (use_case, period)]
    return row


async def test_support_assistant_october(report: dict[str, Any]) -> None:
    october = economics(report, "support-assistant", "2026-10")
    # Daily Sonnet cost, for example a Thursday: 900,000 × 3 + 5,100,000 × 0.30 + 200,000 × 6 (1-hour cache
    # writes) + 380,000 × 15, per 1M tokens = 11.13. October has five Thursdays, Fridays and Saturdays and four
    # of each other day: 5 × (11.13 + 10.8021 + 6.9456) + 4 × (6.6177 + 11.3586 + 10.5735 + 11.4579) = 304.4193.
    assert D(october["cost"]) == D("304.4193")
    assert D(october["outcomes"]) == 4620  # 1,040 + 1,010 + 1,065 + 1,025 + 480 tickets from the outcome file
    assert D(october["cost_per_outcome"]) == D("0.065892")  # 304.4193 / 4,620 = 0.0658916...
    assert D(october["value"]) == D("18480.00")  # no value in the file: 4,620 × 4.00 from the register
    assert october["value_source"] == "value_per_outcome"
    assert D(october["roi_percent"]) == D("5970.57")  # (18,480 − 304.4193) / 304.4193 × 100 = 5,970.574...
    assert D(october["payback_months"]) == D("0.66")  # 12,000 / 18,175.5807 = 0.660...
    assert october["owner"] == "support-platform@example.com"
    assert october["previous_cost_per_outcome"] is None


async def test_support_assistant_trend(report: dict[str, Any]) -> None:
    november = economics(report, "support-assistant", "2026-11")
    assert D(november["cost_per_outcome"]) == D("0.100318")  # 33.105 / 330
    assert D(november["roi_percent"]) == D("3887.31")  # (1,320 − 33.105) / 33.105 × 100
    assert D(november["payback_months"]) == D("9.32")  # 12,000 / 1,286.895 = 9.3247...
    assert D(november["previous_cost_per_outcome"]) == D("0.065892")
    assert D(november["cost_per_outcome_change_percent"]) == D("52.25")  # (0.100318 − 0.065892) / 0.065892 × 100
    assert D(november["previous_roi_percent"]) == D("5970.57")


async def test_document_extraction_and_unlinked_spend(report: dict[str, Any]) -> None:
    documents = economics(report, "document-extraction", "2025-10")
    assert D(documents["roi_percent"]) == D("8209.53")  # (170 − 2.04584475) / 2.04584475 × 100 = 8,209.5259...
    assert D(documents["payback_months"]) == D("11.91")  # 2,000 / 167.95415525 = 11.908...
    assert D(documents["baseline_cost_per_outcome"]) == D("1.20")
    [unlinked] = report["value_unlinked"]
    assert (unlinked["use_case"], unlinked["period"]) == ("model-training", "2024-09")
    assert D(unlinked["cost"]) == D("10.5440055584")  # the BrightPathMatrix rows of the FOCUS sample (test_pipeline.py)
    assert unlinked["owner"] == "ml-platform@example.com"
    assert unlinked["cost_events"] == 12


async def test_outcome_published_on_kafka(stack: Stack, report: dict[str, Any]) -> None:
    outcome = OutcomeRecorded(
        event_id="kafka-outcome-leads-1",
        occurred_at="2026-11-15T10:00:00Z",
        source="crm",
        tenant=TENANT,
        correlation_id="crm-export-1",
        use_case="lead-qualification",
        outcome_kind="leads_qualified",
        quantity=D(25),
        unit="leads",
        value={"amount": "250.00", "currency": "USD"},
    )
    publisher = EventPublisher(stack.bootstrap_servers, client_id="test-outcomes")
    await publisher.start()
    try:
        await publisher.publish([OutgoingEvent.of(Topic.OUTCOME_RECORDED, outcome, key="use_case:lead-qualification")])
    finally:
        await publisher.stop()
    await stack.wait_until_drained()
    database = Database(stack.settings().database_url_for("value"))
    try:
        [row] = await read_unit_economics(database, TENANT, "lead-qualification")
    finally:
        await database.dispose()
    assert D(row["outcomes"]) == 25
    assert D(row["value"]) == D("250.00")
    assert D(row["cost"]) == 0
    assert row["roi_percent"] is None  # no cost, so no ROI


def savings(report: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(item["kind"], item["scope"]): item for item in report["recommendations"]}


async def test_recommendation_kinds(report: dict[str, Any]) -> None:
    found = savings(report)
    expected = {
        # 0.461814 USD an hour (OpenCost, Tesla T4) × 730 hours; the T4 was at 0% for 24 hours
        ("idle_gpu", "gpu:424773df46e0/GPU-20c56d28-0da5-6d26-a36a-e7af1ce2586e"): "337.12422",
        # 12 Copilot seats paid, 2 assigned: octocat idle + (12 − 2) not assigned = 11 unused × 19.00
        ("unused_seats", "seats:github/github-copilot"): "209.00",
        # After the unused Copilot seats are removed, the later seat report lists octokitten alone, who used
        # Cursor later: Copilot 19.00. octocat now has only a Cursor seat, so the Cursor 40.00 overlap is gone.
        ("overlapping_tools", "seats:coding-assistant overlap"): "19.00",
        ("unused_seats", "seats:cursor/cursor"): "40.00",  # octocat idle 41 days on Cursor
        # 10th percentile of 30 days' Anthropic spend (0 on 11-01, then the Sundays at 6.6177): rank 3 = 6.6177;
        # 6.6177 × 30 = 198.531, down to 198.53; 10% = 19.853
        ("commitment", "provider:anthropic offer:anthropic-annual-example"): "19.853",
        # mean (18 + 22) / 2 = 20%; the bill's 1.624 for i-006flle71l19b488a × (1 − 20 / 70) = 1.16
        ("underused_gpu", "gpu:ip-11111/GPU-abc"): "1.160000",
        ("cheaper_model", "team:document-ai model:openai/gpt-5 tier:standard"): "0.6526742",
        ("batch_tier", "team:document-ai use_case:document-extraction model:openai/gpt-5-mini"): "0.491371",
        ("batch_tier", "team:document-ai use_case:document-extraction model:openai/gpt-5"): "0.407921375",
        ("cheaper_model", "team:document-ai model:openai/gpt-4o tier:standard"): "0.2324244",
        ("prompt_caching", "team:document-ai model:openai/gpt-4o tier:standard"): "0.02709",
        ("prompt_caching", "team:document-ai model:openai/gpt-5-mini tier:standard"): "0.023365575",
        ("prompt_caching", "team:document-ai model:openai/gpt-5 tier:standard"): "0.01823625",
        # the LiteLLM request: 10 × (2.50 − 0.15) + 20 × (10.00 − 0.60), per 1M tokens
        ("cheaper_model", "team:unallocated model:openai/gpt-4o tier:standard"): "0.0002115",
    }
    assert {key: D(item["estimated_monthly_savings"]) for key, item in found.items()} == {
        key: D(value) for key, value in expected.items()
    }
    assert len({kind for kind, _scope in found}) == 8
    assert all(item["arithmetic"] for item in found.values())
    assert all(item["price_row_ids"] for item in found.values())


async def test_lifecycle_in_report(report: dict[str, Any]) -> None:
    found = savings(report)
    dismissed = found[("cheaper_model", "team:document-ai model:openai/gpt-4o tier:standard")]
    assert dismissed["status"] == "dismissed"
    assert dismissed["status_reason"] == "gpt-4o-mini missed invoice fields on the sample set"
    accepted = found[("batch_tier", "team:document-ai use_case:document-extraction model:openai/gpt-5-mini")]
    assert accepted["status"] == "accepted"
    assert accepted["ticket_requested"] is True
    seats = found[("unused_seats", "seats:github/github-copilot")]
    assert seats["status"] == "implemented"
    # 12 entitled × 19.00 before; the later report shows 1 entitled seat: 228 − 19 = 209
    assert D(seats["baseline_monthly_cost"]) == D("228.00")
    assert D(seats["realised_monthly_savings"]) == D("209")


async def test_ticket_request_published(stack: Stack, report: dict[str, Any]) -> None:
    accepted = savings(report)[("batch_tier", "team:document-ai use_case:document-extraction model:openai/gpt-5-mini")]
    consumer = AIOKafkaConsumer(
        str(Topic.SAVINGS_RECOMMENDED), bootstrap_servers=stack.bootstrap_servers, auto_offset_reset="earliest"
    )
    await consumer.start()
    revisions: list[SavingsRecommended] = []
    try:
        for _ in range(20):
            batches = await consumer.getmany(timeout_ms=500)
            records = [record for batch in batches.values() for record in batch]
            revisions += [
                event
                for event in (SavingsRecommended.model_validate_json(record.value) for record in records)
                if event.recommendation_id == accepted["recommendation_id"]
            ]
            if any(event.ticket_requested for event in revisions):
                break
            await asyncio.sleep(0.1)
    finally:
        await consumer.stop()
    requested = [event for event in revisions if event.ticket_requested]
    assert requested, "no revision with ticket_requested reached the savings topic"
    assert requested[-1].status == "accepted"
    assert [event.revision for event in revisions] == sorted({event.revision for event in revisions})
