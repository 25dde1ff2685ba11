"""The optimizer handler and lifecycle over a real SQLite database, with hand-worked estimates.

The token usage is the OpenAI dashboard export's October 2025 rows for the document-ai team, as allocation
prices them (the integration test checks the same costs end to end).
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from services.optimizer import lifecycle
from services.optimizer.handlers import OptimizerHandler
from services.optimizer.lifecycle import LifecycleError, change_status, list_recommendations, request_ticket
from services.optimizer.policy import CommitmentOffer, OptimizerPolicy, SeatPrices, load_alternatives, load_gpu_prices
from services.optimizer.tables import TABLES
from shared.catalogue import PriceCatalogue
from shared.events import (
    CostStatus,
    Evidence,
    GpuUtilisationReported,
    Money,
    SavingsRecommended,
    SeatActivityReported,
    SeatEntitlementReported,
    UsageDimensions,
)
from tests.unit.factories import at, cost_event, incoming, sqlite_outbox

D = Decimal
CATALOGUE = PriceCatalogue.load()
DOCUMENT_POLICY = OptimizerPolicy(non_interactive_use_cases=frozenset({"document-extraction"}))


async def make(tmp_path: Path, policy: OptimizerPolicy = DOCUMENT_POLICY) -> tuple[OptimizerHandler, Any]:
    database, outbox, publisher = await sqlite_outbox(tmp_path, "optimizer", TABLES)
    handler = OptimizerHandler(
        database, outbox, CATALOGUE, policy, load_alternatives(), SeatPrices.load(), load_gpu_prices()
    )
    return handler, publisher


def sent(publisher: Any) -> list[SavingsRecommended]:
    return [SavingsRecommended.model_validate_json(event.value) for event in publisher.sent]


def latest(publisher: Any) -> dict[tuple[str, str], SavingsRecommended]:
    """Return the latest revision of each recommendation sent, by (kind, scope)."""
    found: dict[tuple[str, str], SavingsRecommended] = {}
    for event in sent(publisher):
        key = (event.kind.value, event.scope)
        if key not in found or found[key].revision < event.revision:
            found[key] = event
    return found


def document_ai(usage_id: str, day: str, amount: str, model: str, requests: int, revision: int = 1, **q: int):  # type: ignore[no-untyped-def]
    return cost_event(
        usage_id,
        day=day,
        amount=amount,
        team="document-ai",
        use_case="document-extraction",
        model=model,
        quantities=q,
        requests=requests,
        revision=revision,
    )


OCTOBER = [
    document_ai(
        "u-4o",
        "2025-10-05",
        "0.24726",
        "gpt-4o",
        10,
        input_uncached_tokens=53440,
        cache_read_tokens=5760,
        output_tokens=10646,
    ),
    document_ai(
        "u-5a",
        "2025-10-06",
        "0.648614",
        "gpt-5",
        8,
        input_uncached_tokens=38072,
        cache_read_tokens=8192,
        output_tokens=60000,
    ),
    document_ai("u-5b", "2025-10-06", "0.16722875", "gpt-5", 1, input_uncached_tokens=5783, output_tokens=16000),
    document_ai("u-m1", "2025-10-07", "0.569788", "gpt-5-mini", 21, input_uncached_tokens=80992, output_tokens=274770),
    document_ai("u-m2", "2025-10-10", "0.3409", "gpt-5-mini", 11, input_uncached_tokens=124784, output_tokens=154852),
    document_ai("u-m3", "2025-10-11", "0.072054", "gpt-5-mini", 2, input_uncached_tokens=22688, output_tokens=33191),
]


async def test_token_recommendations(tmp_path: Path) -> None:
    handler, publisher = await make(tmp_path)
    await handler.handle(incoming(*OCTOBER))
    found = latest(publisher)
    savings = {key: event.estimated_monthly_savings.amount for key, event in found.items()}
    assert savings == {
        # hand-worked in tests/unit/test_estimates.py and tests/unit/test_optimizer_estimates.py
        ("batch_tier", "team:document-ai use_case:document-extraction model:openai/gpt-5"): D("0.407921375"),
        ("batch_tier", "team:document-ai use_case:document-extraction model:openai/gpt-5-mini"): D("0.491371"),
        ("cheaper_model", "team:document-ai model:openai/gpt-5 tier:standard"): D("0.6526742"),
        ("cheaper_model", "team:document-ai model:openai/gpt-4o tier:standard"): D("0.2324244"),
        ("prompt_caching", "team:document-ai model:openai/gpt-4o tier:standard"): D("0.02709"),
        ("prompt_caching", "team:document-ai model:openai/gpt-5 tier:standard"): D("0.01823625"),
        ("prompt_caching", "team:document-ai model:openai/gpt-5-mini tier:standard"): D("0.023365575"),
    }
    batch = found[("batch_tier", "team:document-ai use_case:document-extraction model:openai/gpt-5")]
    assert batch.baseline_monthly_cost == Money(amount=D("0.81584275"), currency="USD")  # 0.648614 + 0.16722875
    assert batch.baseline_period == "2025-10"
    assert batch.price_row_ids == (
        "openai/gpt-5/batch/cache_read_tokens/2025-08-07",
        "openai/gpt-5/batch/input_uncached_tokens/2025-08-07",
        "openai/gpt-5/batch/output_tokens/2025-08-07",
        "openai/gpt-5/standard/cache_read_tokens/2025-08-07",
        "openai/gpt-5/standard/input_uncached_tokens/2025-08-07",
        "openai/gpt-5/standard/output_tokens/2025-08-07",
    )
    assert batch.evidence_event_ids == ("u-5a", "u-5b")
    assert all(event.revision == 1 and event.status == "open" for event in found.values())

    publisher.sent.clear()
    await handler.handle(incoming(*OCTOBER))
    assert publisher.sent == []  # a replay changes nothing


async def test_recommendation_no_longer_found(tmp_path: Path) -> None:
    handler, publisher = await make(tmp_path)
    await handler.handle(incoming(*OCTOBER))
    publisher.sent.clear()
    # A corrected gpt-4o cost: most of its input turns out to be cache reads, so caching no longer applies.
    corrected = document_ai(
        "u-4o", "2025-10-05", "0.1", "gpt-4o", 10, revision=2, input_uncached_tokens=5760, cache_read_tokens=53440
    )
    await handler.handle(incoming(corrected))
    found = latest(publisher)
    caching = found[("prompt_caching", "team:document-ai model:openai/gpt-4o tier:standard")]
    assert caching.estimated_monthly_savings.amount == 0
    assert caching.revision == 2
    assert caching.arithmetic.startswith("no longer found in the latest data")
    cheaper = found[("cheaper_model", "team:document-ai model:openai/gpt-4o tier:standard")]
    # 5,760 × (2.50 − 0.15) + 53,440 × (1.25 − 0.075), per 1M tokens = 0.013536 + 0.06279200
    assert cheaper.estimated_monthly_savings.amount == D("0.076328")
    assert cheaper.revision == 2


async def test_batch_tier_off_hours_and_tagged(tmp_path: Path) -> None:
    policy = OptimizerPolicy(batch_tags={"workload": "batch"})
    handler, publisher = await make(tmp_path, policy)
    nightly = [  # Tuesday 2025-10-07, 22:00 and 23:00 UTC, and one bucket in business hours
        cost_event(
            f"n{hour}",
            day=f"2025-10-07T{hour}:00",
            hours=1,
            amount="0.45",
            team="nightly",
            model="gpt-5-mini",
            quantities={"input_uncached_tokens": 1000000, "output_tokens": 100000},
        )
        for hour in (22, 23, 10)
    ]
    tagged = cost_event(
        "t1",
        day="2025-10-08",
        amount="0.45",
        team="etl",
        model="gpt-5-mini",
        tags={"workload": "batch"},
        quantities={"input_uncached_tokens": 1000000, "output_tokens": 100000},
    )
    await handler.handle(incoming(*nightly, tagged))

    found = latest(publisher)
    off_hours = found[("batch_tier", "team:nightly off-hours model:openai/gpt-5-mini")]
    # per bucket 1,000,000 × (0.25 − 0.125) + 100,000 × (2 − 1), per 1M tokens = 0.125 + 0.1 = 0.225; two buckets
    assert off_hours.estimated_monthly_savings.amount == D("0.45")
    assert off_hours.confidence == "medium"
    assert off_hours.evidence_event_ids == ("n22", "n23")
    assert "non-interactive because every usage bucket is an hour or shorter" in off_hours.arithmetic

    by_tag = found[("batch_tier", "team:etl tagged:workload=batch model:openai/gpt-5-mini")]
    assert by_tag.estimated_monthly_savings.amount == D("0.225")
    assert by_tag.confidence == "high"


async def test_commitment_from_daily_history(tmp_path: Path) -> None:
    offer = CommitmentOffer("acme-annual", "anthropic", D("10"), 12, "example terms")
    policy = OptimizerPolicy(
        commitment_lookback_days=10,
        commitment_baseline_percentile=20,
        commitment_min_active_days=5,
        commitment_offers=(offer,),
    )
    handler, publisher = await make(tmp_path, policy)
    amounts = ["5", "6", None, "7", "5.5", "8", "6.5", "9", "7.5", "6"]
    events = [
        cost_event(
            f"a{day}",
            day=f"2026-10-{day:02d}",
            amount=amount,
            provider="anthropic",
            model="claude-sonnet-4-5",
            team="support" if day % 2 else "sales",
        )
        for day, amount in enumerate(amounts, start=1)
        if amount is not None
    ]
    await handler.handle(incoming(*events))
    found = latest(publisher)
    commitment = found[("commitment", "provider:anthropic offer:acme-annual")]
    # the 20th percentile of the 10 days is 5 a day (hand-worked in test_optimizer_estimates.py): 150 × 10%
    assert commitment.estimated_monthly_savings.amount == D("15.0000")
    # 60.5 USD over the 10-day window, scaled to 30 days
    assert commitment.baseline_monthly_cost == Money(amount=D("181.500000"), currency="USD")
    assert commitment.price_row_ids == ("offer:acme-annual",)


def gpu_report(
    event_id: str, host: str, gpu_id: str, start: str, hours: int, percent: str, **kwargs: Any
) -> GpuUtilisationReported:
    begin = at(start)
    return GpuUtilisationReported(
        event_id=event_id,
        occurred_at=begin,
        source="test",
        tenant="acme",
        correlation_id=event_id,
        host=host,
        gpu_id=gpu_id,
        window_start=begin,
        window_end=begin + timedelta(hours=hours),
        utilisation_percent=D(percent),
        evidence=Evidence(format="dcgm-exporter"),
        **kwargs,
    )


async def test_gpus_from_telemetry_and_bill(tmp_path: Path) -> None:
    handler, publisher = await make(tmp_path)
    resource = "i-006flle71l19b488a"
    a10g = [
        gpu_report(
            "w1",
            "ip-11111",
            "GPU-abc",
            "2024-09-27T00:00",
            12,
            "10",
            gpu_model="NVIDIA A10G",
            dimensions=UsageDimensions(resource_id=resource, tags={"namespace": "ray-llm"}),
        ),
        gpu_report(
            "w2",
            "ip-11111",
            "GPU-abc",
            "2024-09-27T12:00",
            12,
            "30",
            gpu_model="NVIDIA A10G",
            dimensions=UsageDimensions(resource_id=resource),
        ),
    ]
    await handler.handle_gpu_utilisation(incoming(*a10g))
    assert publisher.sent == []  # no bill line yet and no list price for the A10G: no estimate, never zero

    bill = cost_event(
        "focus-84",
        day="2024-09-27T15:00",
        hours=1,
        amount="1.624",
        provider="aws",
        model=None,
        status=CostStatus.PROVIDER_BILLED,
        resource_id=resource,
        team="ml-platform",
    )
    await handler.handle(incoming(bill))
    underused = latest(publisher)[("underused_gpu", "gpu:ip-11111/GPU-abc")]
    assert underused.estimated_monthly_savings.amount == D("1.160000")  # 1.624 × (1 − 20 / 70)
    assert underused.evidence_event_ids == ("w1", "w2", "cost:focus-84:r1")

    t4 = [
        gpu_report(
            f"t{index}",
            "424773df46e0",
            "GPU-20c56d28-0da5-6d26-a36a-e7af1ce2586e",
            f"2024-09-27T{index * 6:02d}:00",
            6,
            "0",
            gpu_model="Tesla T4",
        )
        for index in range(4)
    ]
    await handler.handle_gpu_utilisation(incoming(*t4))
    idle = latest(publisher)[("idle_gpu", "gpu:424773df46e0/GPU-20c56d28-0da5-6d26-a36a-e7af1ce2586e")]
    assert idle.estimated_monthly_savings.amount == D("337.12422")  # 0.461814 × 730 hours
    assert idle.confidence == "medium"

    # The A10G gets busy: mean (10 + 30 + 90 + 90) / 4 = 55%, so its recommendation drops to zero.
    busy = [
        gpu_report(
            f"w{index}", "ip-11111", "GPU-abc", start, 12, "90", dimensions=UsageDimensions(resource_id=resource)
        )
        for index, start in ((3, "2024-09-28T00:00"), (4, "2024-09-28T12:00"))
    ]
    publisher.sent.clear()
    await handler.handle_gpu_utilisation(incoming(*busy))
    [withdrawn] = sent(publisher)
    assert withdrawn.recommendation_id == underused.recommendation_id
    assert withdrawn.estimated_monthly_savings.amount == 0


def seat(
    holder: str,
    product: str,
    last: str | None,
    *,
    vendor: str = "github",
    as_of: str = "2021-11-20",
    plan: str | None = None,
    pending: str | None = None,
) -> SeatActivityReported:
    return SeatActivityReported(
        event_id=f"seat:{vendor}:{holder}:{as_of}",
        occurred_at=at(as_of),
        source="test",
        tenant="acme",
        correlation_id="c",
        vendor=vendor,
        product=product,
        as_of=at(as_of),
        seat_holder=holder,
        plan=plan,
        last_activity_at=at(last) if last else None,
        pending_cancellation_date=pending,
        evidence=Evidence(format="github-copilot-seats"),
    )


async def test_unused_seats_and_overlap(tmp_path: Path) -> None:
    handler, publisher = await make(tmp_path)
    totals = SeatEntitlementReported(
        event_id="ent:github",
        occurred_at=at("2021-11-20"),
        source="test",
        tenant="acme",
        correlation_id="c",
        vendor="github",
        product="github-copilot",
        as_of=at("2021-11-20"),
        entitled_seats=12,
        active_seats=12,
        inactive_seats=11,
        pending_cancellation_seats=0,
        evidence=Evidence(format="github-copilot-billing"),
    )
    await handler.handle_seat_entitlements(incoming(totals))
    seats = [
        seat("octocat", "github-copilot", "2021-10-14T06:53:32", plan="business"),
        seat("octokitten", "github-copilot", "2021-10-13T06:53:32", pending="2021-11-01"),
        seat("octocat", "cursor", "2021-10-10", vendor="cursor", plan="teams"),
        seat("octokitten", "cursor", "2021-11-18", vendor="cursor", plan="teams"),
    ]
    await handler.handle_seat_activity(incoming(*seats))
    found = latest(publisher)
    unused = found[("unused_seats", "seats:github/github-copilot")]
    assert unused.estimated_monthly_savings.amount == D("209.00")  # 11 inactive × 19.00
    assert unused.baseline_monthly_cost == Money(amount=D("228.00"), currency="USD")  # 12 entitled × 19.00
    overlap = found[("overlapping_tools", "seats:coding-assistant overlap")]
    assert overlap.estimated_monthly_savings.amount == D("59.00")  # Cursor 40.00 for octocat + Copilot 19.00
    unused_cursor = found[("unused_seats", "seats:cursor/cursor")]
    assert unused_cursor.estimated_monthly_savings.amount == D("40.00")  # octocat idle 41 days × 40.00

    publisher.sent.clear()
    older = seat("octocat", "github-copilot", "2021-09-01", as_of="2021-10-01")
    await handler.handle_seat_activity(incoming(*seats, older))
    assert publisher.sent == []  # a replay and an older report change nothing


async def test_lifecycle_and_realised_savings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    handler, publisher = await make(tmp_path)
    await handler.handle(incoming(*OCTOBER))
    views = {(view.kind, view.scope): view for view in await list_recommendations(handler.database, "acme")}
    mini = views[("batch_tier", "team:document-ai use_case:document-extraction model:openai/gpt-5-mini")]
    gpt_4o = views[("cheaper_model", "team:document-ai model:openai/gpt-4o tier:standard")]
    outbox = handler.outbox

    with pytest.raises(LifecycleError, match="a dismissal needs a reason"):
        await change_status(handler.database, outbox, "acme", gpt_4o.recommendation_id, "dismissed")
    dismissed = await change_status(
        handler.database,
        outbox,
        "acme",
        gpt_4o.recommendation_id[:8],
        "dismissed",
        by="lead@example.com",
        reason="gpt-4o-mini failed the extraction sample",
    )
    assert dismissed.status == "dismissed"
    assert dismissed.status_reason == "gpt-4o-mini failed the extraction sample"
    assert dismissed.revision == 2

    accepted = await change_status(handler.database, outbox, "acme", mini.recommendation_id, "accepted", by="lead")
    assert accepted.revision == 2
    monkeypatch.setattr(lifecycle, "utc_now", lambda: datetime.fromisoformat("2025-10-31T12:00:00+00:00"))
    implemented = await change_status(handler.database, outbox, "acme", mini.recommendation_id, "implemented")
    assert implemented.status == "implemented"
    with pytest.raises(LifecycleError, match="is implemented; it can move to nothing"):
        await change_status(handler.database, outbox, "acme", mini.recommendation_id, "accepted")
    ticket = await request_ticket(handler.database, outbox, "acme", mini.recommendation_id, by="lead")
    assert ticket.ticket_requested is True
    with pytest.raises(LifecycleError, match="already requested"):
        await request_ticket(handler.database, outbox, "acme", mini.recommendation_id)
    steps = await lifecycle.history(handler.database, "acme", mini.recommendation_id)
    assert [step["status"] for step in steps] == ["open", "accepted", "implemented", "implemented"]
    assert steps[-1]["reason"] == "ticket requested"

    # November: the team runs gpt-5-mini on the batch tier; new gpt-4o usage leaves the dismissal alone.
    publisher.sent.clear()
    november = [
        cost_event(
            "nov-m1",
            day="2025-11-03",
            amount="0.25",
            team="document-ai",
            use_case="document-extraction",
            model="gpt-5-mini",
            quantities={"input_uncached_tokens": 1000},
            requests=1,
        ),
        cost_event(
            "nov-m2",
            day="2025-11-04",
            amount="0.2",
            team="document-ai",
            use_case="document-extraction",
            model="gpt-5-mini",
            quantities={"input_uncached_tokens": 1000},
            requests=1,
        ),
        document_ai("nov-4o", "2025-11-05", "0.3", "gpt-4o", 10, input_uncached_tokens=60000, output_tokens=9000),
    ]
    await handler.handle(incoming(*november))
    events = {event.recommendation_id: event for event in sent(publisher)}
    assert gpt_4o.recommendation_id not in events
    realised = events[mini.recommendation_id]
    # baseline 0.569788 + 0.3409 + 0.072054 = 0.982742 in 2025-10; November cost 0.25 + 0.2 = 0.45
    assert realised.realised_monthly_savings == Money(amount=D("0.532742"), currency="USD")
    assert realised.estimated_monthly_savings.amount == D("0.491371")  # the estimate stays as it was
    assert "baseline 0.982742 USD a month (2025-10) − 0.45 USD a month since implementation" in (
        realised.realised_arithmetic or ""
    )

    stored = {view.recommendation_id: view for view in await list_recommendations(handler.database, "acme")}
    assert stored[mini.recommendation_id].realised_amount == D("0.532742")
    assert json.loads(json.dumps(stored[mini.recommendation_id].as_json()))["status"] == "implemented"
