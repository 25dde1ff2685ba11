"""Risk's handlers on a real SQLite database: cost, variance, seat, value and savings events become findings."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from services.optimizer.policy import OptimizerPolicy
from services.optimizer.seats import Entitlement, Seat, SeatCost, unused_seats_estimate
from services.risk.budgets import Budget
from services.risk.contracts import Contract, commitment_detections, renewal_detection
from services.risk.findings import FINDINGS
from services.risk.handlers import RiskConfig
from services.risk.policy import Policy
from shared.db import Database
from shared.events import (
    ChargeCategory,
    CostVarianceDetected,
    Evidence,
    Money,
    RecommendationKind,
    SavingsRecommended,
    SeatActivityReported,
    SeatEntitlementReported,
    ValueMapped,
)
from tests.conftest import EXAMPLES, ROOT
from tests.risk_support import cost, incoming, risk_database, risk_handler

SEATS = ROOT / "tests" / "fixtures" / "seats"
POLICY = Policy.load(EXAMPLES / "config" / "policy.yaml")
RESEARCH = Budget("research", "team", "research", Decimal("150.00"), "USD", (80, 100), "lead@example.com",
                  forecast_thresholds=(100,))  # fmt: skip
SANDBOX = Budget("sandbox", "project", "proj_sb", Decimal("5.00"), "USD", (100,), None, sandbox=True)
WEEK = ["4.00", "3.65", "4.35", "4.175", "3.825", "3.30", "3.475"]  # daily USD of the synthetic research series
FIRST_DAY = datetime(2026, 10, 13, tzinfo=UTC)


@pytest.fixture
async def database(tmp_path: Path) -> AsyncIterator[Database]:
    database = await risk_database(tmp_path)
    yield database
    await database.dispose()


async def findings(database: Database, kind: str | None = None) -> list[dict[str, Any]]:
    async with database.engine.connect() as connection:
        query = select(FINDINGS).order_by(FINDINGS.c.kind, FINDINGS.c.subject)
        if kind:
            query = query.where(FINDINGS.c.kind == kind)
        rows = (await connection.execute(query)).all()
    return [dict(row._mapping) | {"facts": json.loads(row.facts_json)} for row in rows]


def research_month() -> list[Any]:
    """30 days of research usage from 2026-10-13 with a 42.00 USD spike on 2026-11-10, as in the demo data."""
    events = []
    for index in range(30):
        day = FIRST_DAY + timedelta(days=index)
        amount = "42.00" if day.date() == date(2026, 11, 10) else WEEK[index % 7]
        events.append(cost(f"u{index:02d}", start=day, amount=amount, project_id="proj_research"))
    return events


class TestCostEvents:
    async def test_spike_forecast_and_replay(self, database: Database) -> None:
        handler, publisher = risk_handler(database, RiskConfig(budgets=[RESEARCH], policy=POLICY))
        batch = incoming(research_month())

        await handler.handle(batch)
        sent = len(publisher.sent)
        await handler.handle(batch)  # the same events again

        assert len(publisher.sent) == sent  # nothing new
        [anomaly] = await findings(database, "spend_anomaly")
        assert anomaly["subject"] == "team:research model:openai/gpt-4o"
        assert anomaly["facts"]["day"] == "2026-11-10"
        assert anomaly["facts"]["expected"] == "3.825 USD"  # median of the 28 days before, see test_risk_anomalies
        assert anomaly["facts"]["robust_z"] == "73.57"
        assert anomaly["severity"] == "high"  # 73.57 is more than twice the 3.5 limit
        # November: 3.30 + 3.475 + 4.00 + 3.65 + 4.35 + 4.175 + 3.825 + 3.30 + 3.475 + 42.00 + 3.65 = 79.20 USD;
        # with data through 2026-11-12 00:00 UTC that projects to 79.20 × 30 / 11 = 216.00 USD, 144.00 %.
        [forecast] = await findings(database, "budget_forecast")
        assert forecast["facts"]["spend"] == "79.200 USD"
        assert forecast["facts"]["projected_spend"] == "216.00 USD"
        assert await findings(database, "budget_threshold") == []  # 79.20 is 52.80 % of 150.00

    async def test_late_usage_counts_in_its_own_period(self, database: Database) -> None:
        handler, _ = risk_handler(database, RiskConfig(budgets=[RESEARCH]))

        await handler.handle(incoming([cost("nov", start=datetime(2026, 11, 3, tzinfo=UTC), amount="100.00")]))
        await handler.handle(incoming([cost("oct", start=datetime(2026, 10, 30, tzinfo=UTC), amount="125.00")]))

        actual = await findings(database, "budget_threshold")
        # October 125.00 / 150.00 = 83.33 %; November 100.00 / 150.00 = 66.67 %.
        assert {(f["facts"]["period"], f["facts"]["threshold_percent"]) for f in actual} == {("2026-10", "80")}

    async def test_revision_replaces_amount(self, database: Database) -> None:
        handler, _ = risk_handler(database, RiskConfig(budgets=[RESEARCH]))
        start = datetime(2026, 9, 3, tzinfo=UTC)

        await handler.handle(incoming([cost("a", start=start, amount="100.00")]))
        await handler.handle(incoming([cost("a", start=start, amount="160.00", revision=2)]))
        await handler.handle(incoming([cost("a", start=start, amount="100.00")]))  # the old revision, replayed

        over = [f for f in await findings(database, "budget_threshold") if f["facts"]["threshold_percent"] == "100"]
        assert [f["facts"]["spend"] for f in over] == ["160.00 USD"]  # 106.67 % of 150.00

    async def test_policy_violation_names_the_rule(self, database: Database) -> None:
        handler, _ = risk_handler(database, RiskConfig(policy=POLICY))
        opus = cost("opus", start=datetime(2026, 11, 2, tzinfo=UTC), amount="21.975", team="customer-support",
                    use_case="support-assistant", provider="anthropic", model="claude-opus-4-6",
                    priced_model="claude-opus-4-6", service="messages", region="global")  # fmt: skip

        await handler.handle(incoming([opus]))

        [violation] = await findings(database, "policy_violation")
        assert violation["facts"]["rule"] == "confidential-data"
        assert violation["facts"]["spend"] == "21.975 USD"
        assert "exception support-opus-evaluation expired after 2026-10-31" in violation["facts"]["reason"]
        assert violation["severity"] == "high"  # confidential data

    async def test_sandbox_spend_flagged_only_past_cap(self, database: Database) -> None:
        handler, _ = risk_handler(database, RiskConfig(budgets=[RESEARCH, SANDBOX], policy=POLICY))
        start = datetime(2026, 11, 2, tzinfo=UTC)

        def experiment(name: str, amount: str) -> Any:
            # o3 is not approved for research, but inside the sandbox only the cap counts.
            return cost(name, start=start, amount=amount, model="o3", priced_model=None, project_id="proj_sb",
                        environment="sandbox")  # fmt: skip

        await handler.handle(incoming([experiment("s1", "3.00")]))
        assert await findings(database) == []

        await handler.handle(incoming([experiment("s2", "2.50"), cost("main", start=start, amount="150.00")]))

        kinds = {(f["kind"], f["facts"].get("spend")) for f in await findings(database)}
        # The sandbox reached 5.50 of 5.00 (110.00 %); the team budget counts the 150.00 outside it only.
        assert ("sandbox_cap", "5.50 USD") in kinds
        assert ("budget_threshold", "150.00 USD") in kinds
        assert not any(kind == "policy_violation" for kind, _ in kinds)

    async def test_shadow_ai(self, database: Database) -> None:
        handler, _ = risk_handler(database, RiskConfig(policy=POLICY))
        start = datetime(2024, 9, 3, tzinfo=UTC)
        events = [
            cost("key1", start=start, amount="0.42", team="unallocated", api_key_id="key_growth",
                 model="gpt-4o-mini", priced_model="gpt-4o-mini"),
            cost("key2", start=start + timedelta(days=1), amount="0.58", team="unallocated", api_key_id="key_growth",
                 model="gpt-4o-mini", priced_model="gpt-4o-mini"),
            cost("sqs", start=start, amount="0.0000008", team="unallocated", provider="aws", model=None,
                 priced_model=None, service="Amazon Simple Queue Service"),
            cost("aml", start=start, amount="0.005", team="data-science", provider="azure", model=None,
                 priced_model=None, service="Azure Machine Learning"),
            cost("aml-refund", start=start, amount="-0.149", team="data-science", provider="azure", model=None,
                 priced_model=None, service="Azure Machine Learning", charge_category=ChargeCategory.REFUND),
        ]  # fmt: skip

        await handler.handle(incoming(events))

        [unowned] = await findings(database, "shadow_ai_unowned")
        assert unowned["facts"]["owner_key"] == "api_key_id=key_growth"
        assert unowned["facts"]["spend"] == "1.00 USD"  # 0.42 + 0.58
        assert unowned["facts"]["usage_events"] == "2"  # the queue service line is not AI usage
        [vendor] = await findings(database, "shadow_ai_vendor")
        assert vendor["subject"] == "vendor:azure-machine-learning"
        assert vendor["facts"]["spend"] == "0.005 USD"
        assert vendor["facts"]["credits_and_refunds"] == "-0.149 USD"
        assert await findings(database, "policy_violation") == []  # an unlisted vendor is shadow AI instead


class TestOtherEvents:
    async def test_variance_from_the_provider_bill(self, database: Database) -> None:
        # OpenAI's dashboard billed 0.8958740000000000 USD on 2025-10-05; the catalogue prices that day's gpt-4o
        # usage at 0.24726 USD. Variance 0.648614 USD = 72.40 % of the billed cost.
        handler, _ = risk_handler(database, RiskConfig())
        event = CostVarianceDetected(
            event_id="variance:openai:2025-10-05",
            occurred_at=datetime(2025, 10, 6, tzinfo=UTC),
            source="allocation",
            tenant="acme",
            correlation_id="c",
            provider="openai",
            day="2025-10-05",
            computed_cost=Money(amount=Decimal("0.24726"), currency="USD"),
            provider_cost=Money(amount=Decimal("0.8958740000000000"), currency="USD"),
            variance=Money(amount=Decimal("0.6486140000000000"), currency="USD"),
            variance_percent=Decimal("72.40"),
            tolerance_percent=Decimal("1"),
            tolerance_amount=Decimal("0.01"),
            likely_cause="usage reported on another day",
            evidence_event_ids=("cost:a",),
        )

        await handler.handle_variances(incoming([event, event]))

        [finding] = await findings(database, "reconciliation_variance")
        assert finding["severity"] == "high"  # 72.40 % ≥ 20 %
        assert finding["facts"]["variance"] == "0.6486140000000000 USD"
        assert finding["facts"]["tolerance_amount"] == "0.01 USD"
        assert finding["facts"]["tolerance_percent"] == "1"
        assert list(finding["facts"]).index("tolerance_amount") == list(finding["facts"]).index("variance") + 1
        assert "beyond the 0.01 USD and 1% tolerance" in finding["interpretation"]
        assert finding["revision"] == 1

    async def test_older_variance_arriving_later_is_ignored(self, database: Database) -> None:
        # Allocation first compared the provider's 0.3376 USD with 0 USD (usage not yet priced), then with
        # 0.000225 USD once it was. A replay delivers the newer comparison first and the older one after it.
        handler, _ = risk_handler(database, RiskConfig())

        def variance(computed: str, produced_minute: int) -> CostVarianceDetected:
            reported = Decimal("0.3376")
            return CostVarianceDetected(
                event_id=f"variance:openai:2025-01-24:{computed}",
                occurred_at=datetime(2025, 1, 24, tzinfo=UTC),
                produced_at=datetime(2026, 12, 5, 0, produced_minute, tzinfo=UTC),
                source="allocation",
                tenant="acme",
                correlation_id="c",
                provider="openai",
                day="2025-01-24",
                computed_cost=Money(amount=Decimal(computed), currency="USD"),
                provider_cost=Money(amount=reported, currency="USD"),
                variance=Money(amount=reported - Decimal(computed), currency="USD"),
                variance_percent=None,
                tolerance_percent=Decimal("1"),
                likely_cause="usage not priced",
            )

        older, newer = variance("0", 1), variance("0.000225", 2)

        await handler.handle_variances(incoming([newer]))
        await handler.handle_variances(incoming([older]))
        await handler.handle_variances(incoming([older, newer, older]))

        [finding] = await findings(database, "reconciliation_variance")
        assert finding["facts"]["computed_cost"] == "0.000225 USD"
        # 0.3376 - 0.000225 = 0.337375
        assert finding["facts"]["variance"] == "0.337375 USD"
        assert finding["revision"] == 1

    async def test_value_unlinked_then_linked(self, database: Database) -> None:
        handler, publisher = risk_handler(database, RiskConfig())

        def mapped(linked: bool, outcomes: str) -> ValueMapped:
            return ValueMapped(
                event_id=f"value:{linked}", occurred_at=datetime(2024, 10, 1, tzinfo=UTC), source="value",
                tenant="acme", correlation_id="c", use_case="model-training", period="2024-09",
                cost=Money(amount=Decimal("10.5440055584"), currency="USD"), outcome_kind="(none)",
                outcomes=Decimal(outcomes), outcome_unit="(none)", cost_per_outcome=None, cost_event_count=12,
                value_linked=linked,
            )  # fmt: skip

        await handler.handle_value(incoming([mapped(False, "0")]))
        await handler.handle_value(incoming([mapped(True, "3")]))

        [finding] = await findings(database, "value_unlinked_spend")
        assert finding["status"] == "resolved"
        assert finding["status_changed_by"] == "risk"
        assert [event.status.value for event in publisher.findings()] == ["open", "resolved"]

    async def test_requested_savings_ticket(self, database: Database) -> None:
        handler, _ = risk_handler(database, RiskConfig())

        def recommended(status: str, ticket: bool) -> SavingsRecommended:
            return SavingsRecommended(
                event_id=f"savings:{status}:{ticket}", occurred_at=datetime(2025, 11, 1, tzinfo=UTC),
                source="optimizer", tenant="acme", correlation_id="c", recommendation_id="rec-1",
                kind=RecommendationKind.BATCH_TIER, scope="team:document-ai model:openai/gpt-5-mini",
                estimated_monthly_savings=Money(amount=Decimal("0.491371"), currency="USD"), confidence="high",
                arithmetic="standard → batch", status=status, ticket_requested=ticket,
            )  # fmt: skip

        await handler.handle_savings(incoming([recommended("open", False)]))
        assert await findings(database) == []
        await handler.handle_savings(incoming([recommended("accepted", True)]))
        await handler.handle_savings(incoming([recommended("implemented", False)]))

        [finding] = await findings(database, "savings_recommended")
        assert finding["ticket_requested"]
        assert finding["severity"] == "low"
        assert finding["status"] == "resolved"


def seat_events(as_of: datetime) -> list[SeatActivityReported]:
    document = json.loads((SEATS / "github_copilot_billing_seats_list.json").read_text())
    return [
        SeatActivityReported(
            event_id=f"seat:{seat['assignee']['login']}:{as_of.date()}",
            occurred_at=as_of,
            source="test",
            tenant="acme",
            correlation_id="c",
            vendor="github",
            product="github-copilot",
            as_of=as_of,
            seat_holder=seat["assignee"]["login"],
            plan=seat.get("plan_type"),
            last_activity_at=seat["last_activity_at"],
            pending_cancellation_date=seat["pending_cancellation_date"],
            evidence=Evidence(format="test"),
        )  # fmt: skip
        for seat in document["seats"]
    ]


def entitlement(as_of: datetime, tenant: str = "acme") -> SeatEntitlementReported:
    breakdown = json.loads((SEATS / "github_copilot_org_billing_details.json").read_text())["seat_breakdown"]
    return SeatEntitlementReported(
        event_id=f"entitlement:{tenant}:{as_of.date()}", occurred_at=as_of, source="test", tenant=tenant,
        correlation_id="c", vendor="github", product="github-copilot", as_of=as_of,
        entitled_seats=breakdown["total"], inactive_seats=breakdown["inactive_this_cycle"],
        pending_cancellation_seats=breakdown["pending_cancellation"], evidence=Evidence(format="test"),
    )  # fmt: skip


COPILOT = Contract(
    "copilot", "seat_licence", "acme", "USD", date(2021, 1, 1), date(2021, 12, 31), 30,
    vendor="github", product="github-copilot", seat_price=Decimal("19.00"),
)  # fmt: skip


class TestLicences:
    async def test_unused_and_unassigned_seats(self, database: Database) -> None:
        handler, _ = risk_handler(database, RiskConfig(contracts=[COPILOT]))
        as_of = datetime(2021, 11, 20, tzinfo=UTC)  # 30 days earlier is 2021-10-21 00:00 UTC

        await handler.handle_seat_activity(incoming(seat_events(as_of)))
        await handler.handle_seat_entitlements(incoming([entitlement(as_of)]))

        [unused] = await findings(database, "licence_unused_seats")
        # octocat last used Copilot at 2021-10-14 06:53:32 UTC, before the cutoff; octokitten is cancelling.
        assert unused["facts"]["unused_seat_holders"] == "octocat"
        assert unused["facts"]["pending_cancellation"] == "1"
        assert unused["facts"]["monthly_exposure"] == "19.00 USD a month (1 × 19.00)"
        [mismatch] = await findings(database, "licence_seat_mismatch")
        # 12 seats paid for, 2 assigned: 10 × 19.00 = 190.00 USD a month.
        assert mismatch["title"] == "10 of 12 paid github-copilot seats are not assigned to anyone"
        assert mismatch["facts"]["monthly_exposure"] == "190.00 USD a month (10 × 19.00)"

    async def test_findings_match_optimizer_seats(self, database: Database) -> None:
        # One seat report read by risk and by the optimizer: the recommendation's unused seats must be the
        # finding's 1 idle seat plus the mismatch finding's 12 − 2 = 10 paid seats not assigned to anyone, 11 in all.
        handler, _ = risk_handler(database, RiskConfig(contracts=[COPILOT]))
        as_of = datetime(2021, 11, 20, tzinfo=UTC)
        events, totals = seat_events(as_of), entitlement(as_of)
        await handler.handle_seat_activity(incoming(events))
        await handler.handle_seat_entitlements(incoming([totals]))
        [unused] = await findings(database, "licence_unused_seats")
        [mismatch] = await findings(database, "licence_seat_mismatch")

        seats = [
            Seat(e.vendor, e.product, e.seat_holder, e.as_of, e.last_activity_at, e.plan, e.pending_cancellation_date,
                 e.event_id)
            for e in events
        ]  # fmt: skip
        optimizer_totals = Entitlement(
            totals.vendor, totals.product, totals.as_of, totals.entitled_seats, totals.active_seats,
            totals.inactive_seats, totals.pending_cancellation_seats, totals.event_id,
        )  # fmt: skip
        price = SeatCost(Decimal("19.00"), "USD", "row", "contract")
        result = unused_seats_estimate(
            "github", "github-copilot", seats, optimizer_totals, lambda *_: price, OptimizerPolicy()
        )
        assert result is not None
        estimate, optimizer_unused, _price = result

        assert unused["facts"]["seats_assigned"] == mismatch["facts"]["seats_assigned"] == "2"
        assert unused["facts"]["seats_entitled"] == mismatch["facts"]["seats_entitled"] == "12"
        assert unused["facts"]["unused_30_days"] == "1"
        assert optimizer_unused == 1 + (12 - 2)
        assert "12 entitled, 2 assigned, 1 assigned without activity" in estimate.arithmetic
        # Exposure: 19.00 (1 idle) + 190.00 (10 not assigned) = 209.00, the recommendation's 11 × 19.00.
        assert estimate.savings == Decimal("209.00")

    async def test_later_report_resolves_findings(self, database: Database) -> None:
        handler, _ = risk_handler(database, RiskConfig(contracts=[COPILOT]))
        as_of = datetime(2021, 11, 20, tzinfo=UTC)
        await handler.handle_seat_activity(incoming(seat_events(as_of)))
        await handler.handle_seat_entitlements(incoming([entitlement(as_of)]))

        # A month later octocat's idle seat and the 10 unassigned ones are gone: octokitten alone, 1 seat paid for.
        later = as_of + timedelta(days=30)
        [_octocat, octokitten] = seat_events(later)
        await handler.handle_seat_activity(incoming([octokitten]))
        totals = entitlement(later).model_copy(update={"entitled_seats": 1, "inactive_seats": 0})
        await handler.handle_seat_entitlements(incoming([totals]))

        [unused] = await findings(database, "licence_unused_seats")
        [mismatch] = await findings(database, "licence_seat_mismatch")
        assert unused["status"] == "resolved"
        assert mismatch["status"] == "resolved"

    async def test_totals_of_another_day_not_compared(self, database: Database) -> None:
        handler, _ = risk_handler(database, RiskConfig(contracts=[COPILOT]))
        as_of = datetime(2021, 11, 20, tzinfo=UTC)
        await handler.handle_seat_activity(incoming(seat_events(as_of)))
        await handler.handle_seat_entitlements(incoming([entitlement(as_of + timedelta(days=30))]))

        assert await findings(database, "licence_seat_mismatch") == []
        [unused] = await findings(database, "licence_unused_seats")
        assert "seats_entitled" not in unused["facts"]

    async def test_vendor_count_without_seat_list(self, database: Database) -> None:
        handler, _ = risk_handler(database, RiskConfig(contracts=[COPILOT]))

        await handler.handle_seat_entitlements(incoming([entitlement(datetime(2021, 11, 20, tzinfo=UTC))]))

        [unused] = await findings(database, "licence_unused_seats")
        # GitHub counts 11 of 12 seats inactive this billing cycle: 11 × 19.00 = 209.00 USD a month.
        assert unused["title"] == "11 of 12 github-copilot seats are unused"
        assert unused["facts"]["monthly_exposure"] == "209.00 USD a month (11 × 19.00)"

    async def test_older_report_does_not_replace_newer(self, database: Database) -> None:
        handler, _ = risk_handler(database, RiskConfig())
        newer, older = datetime(2021, 11, 20, tzinfo=UTC), datetime(2021, 10, 15, tzinfo=UTC)

        await handler.handle_seat_activity(incoming(seat_events(newer)))
        await handler.handle_seat_activity(incoming(seat_events(older)))

        [unused] = await findings(database, "licence_unused_seats")
        assert unused["facts"]["as_of"] == newer.isoformat()

    async def test_unlisted_seat_vendor(self, database: Database) -> None:
        handler, _ = risk_handler(database, RiskConfig(policy=POLICY))

        await handler.handle_seat_activity(incoming(seat_events(datetime(2021, 10, 15, tzinfo=UTC))))

        [vendor] = await findings(database, "shadow_ai_vendor")
        assert vendor["subject"] == "vendor:github-copilot"
        assert vendor["facts"]["seats_reported"] == "2"


ANTHROPIC = Contract(
    "anthropic-2026", "spend_commitment", "acme", "USD", date(2026, 1, 1), date(2026, 12, 31), 60,
    alert_days=30, auto_renews=True, provider="anthropic", committed=Decimal("500.00"),
    shortfall_tolerance_percent=Decimal(10),
)  # fmt: skip


class TestContracts:
    async def test_commitment_shortfall(self, database: Database) -> None:
        handler, _ = risk_handler(database, RiskConfig(contracts=[ANTHROPIC]))
        usage = cost("sonnet", start=datetime(2026, 11, 3, tzinfo=UTC), amount="33.105", provider="anthropic",
                     model="claude-sonnet-4-5", priced_model="claude-sonnet-4-5", service="messages")  # fmt: skip

        await handler.handle(incoming([usage]))

        [shortfall] = await findings(database, "commitment_shortfall")
        # Data through 2026-11-04 00:00 UTC: 307 of 365 days. 33.105 × 365 / 307 = 39.3588… → 39.36 USD,
        # 460.64 USD short of 500.00, more than the 10 % tolerance (50.00).
        assert shortfall["facts"]["elapsed_days"] == "307.00"
        assert shortfall["facts"]["projected_at_term_end"] == "39.36 USD"
        assert shortfall["facts"]["shortfall"] == "460.64 USD"

    async def test_commitment_follows_data_clock(self, database: Database) -> None:
        handler, _ = risk_handler(database, RiskConfig(contracts=[ANTHROPIC]))
        usage = cost("sonnet", start=datetime(2026, 11, 3, tzinfo=UTC), amount="33.105", provider="anthropic",
                     model="claude-sonnet-4-5", priced_model="claude-sonnet-4-5", service="messages")  # fmt: skip
        later = cost("gpt", start=datetime(2026, 11, 11, tzinfo=UTC), amount="1.00")  # another provider's usage
        await handler.handle(incoming([usage]))
        await handler.handle(incoming([later]))

        [shortfall] = await findings(database, "commitment_shortfall")
        # The OpenAI day moves the data clock to 2026-11-12 00:00 UTC, so the Anthropic commitment is projected
        # again from there: 304 days to 2026-11-01 + 11 = 315 days. 33.105 × 365 / 315 = 38.3597… → 38.36 USD.
        assert shortfall["facts"]["data_through"] == "2026-11-12T00:00:00+00:00"
        assert shortfall["facts"]["elapsed_days"] == "315.00"
        assert shortfall["facts"]["projected_at_term_end"] == "38.36 USD"

    async def test_commitment_on_track_is_quiet(self, database: Database) -> None:
        usage = cost("big", start=datetime(2026, 6, 30, tzinfo=UTC), amount="240.00", tenant="acme",
                     provider="anthropic")  # fmt: skip
        handler, _ = risk_handler(database, RiskConfig(contracts=[ANTHROPIC]))
        await handler.handle(incoming([usage]))

        async with database.engine.connect() as connection:
            # 240.00 by 2026-07-01 00:00 UTC (181 days): 240.00 × 365 / 181 = 483.98, 16.02 short, within 50.00.
            detections = await commitment_detections(
                connection, ANTHROPIC, ZoneInfo("UTC"), datetime(2026, 7, 1, tzinfo=UTC)
            )
        assert detections == []

    def test_renewal_window(self) -> None:
        # Notice is due 60 days before 2026-12-31, on 2026-11-01; the alert opens 30 days earlier, on 2026-10-02.
        assert renewal_detection(ANTHROPIC, date(2026, 10, 1)) is None
        opened = renewal_detection(ANTHROPIC, date(2026, 10, 2))
        passed = renewal_detection(ANTHROPIC, date(2026, 12, 4))

        assert opened is not None and opened.facts["days_to_notice_deadline"] == "30"
        assert passed is not None and passed.facts["days_to_notice_deadline"] == "-33"
        assert "will renew on its current terms" in passed.interpretation
        assert renewal_detection(ANTHROPIC, date(2027, 1, 1)) is None
