"""Budget periods in tenant time zones, budget files, and threshold and forecast findings worked out by hand."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from services.risk.budgets import (
    Budget,
    BudgetError,
    BudgetSpend,
    budget_periods,
    forecast_detections,
    load_budgets,
    threshold_detections,
)
from services.risk.findings import finding_id
from services.risk.periods import period_of
from tests.conftest import EXAMPLES

UTC_ZONE = ZoneInfo("UTC")
NEW_YORK = ZoneInfo("America/New_York")


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


class TestPeriods:
    def test_month_in_utc(self) -> None:
        period = period_of(at("2026-11-15T10:00:00+00:00"), "monthly", UTC_ZONE)

        assert period.key == "2026-11"
        assert period.start == at("2026-11-01T00:00:00+00:00")
        assert period.end == at("2026-12-01T00:00:00+00:00")
        assert period.days() == 30

    def test_month_follows_tenant_zone(self) -> None:
        # 02:00 UTC on 1 November is 22:00 on 31 October in New York (EDT, UTC−4).
        period = period_of(at("2026-11-01T02:00:00+00:00"), "monthly", NEW_YORK)

        assert period.key == "2026-10"
        assert period.start == at("2026-10-01T04:00:00+00:00")
        assert period.end == at("2026-11-01T04:00:00+00:00")

    def test_month_with_daylight_saving_change(self) -> None:
        # New York leaves daylight saving time on 2026-11-01, so November lasts 30 days and 1 hour:
        # 2026-11-01 00:00 EDT = 04:00 UTC to 2026-12-01 00:00 EST = 05:00 UTC.
        period = period_of(at("2026-11-20T12:00:00+00:00"), "monthly", NEW_YORK)

        assert period.end - period.start == datetime(2026, 12, 1, 5) - datetime(2026, 11, 1, 4)
        assert period.days() == Decimal(30 * 86400 + 3600) / Decimal(86400)

    def test_quarters(self) -> None:
        fourth = period_of(at("2026-11-15T00:00:00+00:00"), "quarterly", UTC_ZONE)
        first = period_of(at("2027-01-01T00:00:00+00:00"), "quarterly", UTC_ZONE)

        assert (fourth.key, fourth.start, fourth.end) == (
            "2026-Q4",
            at("2026-10-01T00:00:00+00:00"),
            at("2027-01-01T00:00:00+00:00"),
        )
        assert fourth.days() == 92  # 31 + 30 + 31
        assert (first.key, first.end) == ("2027-Q1", at("2027-04-01T00:00:00+00:00"))
        assert first.days() == 90  # 31 + 28 + 31


class TestBudgetFile:
    def test_demo_budgets_load(self) -> None:
        budgets = {budget.budget_id: budget for budget in load_budgets(EXAMPLES / "config" / "budgets.yaml")}

        assert budgets["customer-support-monthly"].forecast_thresholds == (100,)
        assert budgets["support-cost-centre-quarterly"].period == "quarterly"
        assert budgets["research-llm-sandbox"].sandbox
        assert budgets["research-llm-sandbox"].thresholds == (100,)
        assert budgets["research-llm-sandbox"].column == "project_id"

    @pytest.mark.parametrize(
        ("entry", "message"),
        [
            ("{id: a, scope: {team: x}, amount: 2.5, currency: USD}", "write the amount as a quoted string"),
            ("{id: a, scope: {team: x}, period: weekly, amount: '2', currency: USD}", "must be one of monthly"),
            ("{id: a, scope: {team: x, project: y}, amount: '2', currency: USD}", "exactly one of"),
            ("{id: a, scope: {team: x}, amount: '2', currency: USD, sandbox: true, thresholds: [50]}", "past its cap"),
            ("{id: a, scope: {team: x}, amount: '2', currency: usd}", "ISO 4217"),
            ("{id: a, scope: {team: x}, amount: '2', currency: USD, forecast_thresholds: [0]}", "forecast_thresholds"),
        ],
    )
    def test_invalid_entry_names_field(self, tmp_path: Path, entry: str, message: str) -> None:
        path = tmp_path / "budgets.yaml"
        path.write_text(f"budgets:\n  - {entry}\n")

        with pytest.raises(BudgetError) as raised:
            load_budgets(path)

        assert message in str(raised.value)
        assert "budgets[0]" in str(raised.value)


SUPPORT = Budget(
    "support", "team", "customer-support", Decimal("40.00"), "USD", (80, 100), "lead@example.com",
    forecast_thresholds=(100,),
)  # fmt: skip
RESEARCH = Budget("research", "team", "research", Decimal("150.00"), "USD", (80, 100), None, forecast_thresholds=(100,))
NOVEMBER = period_of(at("2026-11-15T00:00:00+00:00"), "monthly", UTC_ZONE)


class TestThresholds:
    def test_only_reached_thresholds_fire(self) -> None:
        # 33.105 / 40.00 = 82.7625 % → 82.76 (half-even): past 80, short of 100.
        spent = BudgetSpend(Decimal("33.105"), ["c1", "c2"], 0)

        detections = threshold_detections(SUPPORT, "acme", NOVEMBER, spent)

        assert [d.facts["threshold_percent"] for d in detections] == ["80"]
        assert detections[0].facts["percent_of_budget"] == "82.76"
        assert detections[0].finding_id == finding_id("acme", "budget", "support", "2026-11", "80")
        assert detections[0].kind == "budget_threshold"
        assert detections[0].owner == "lead@example.com"
        # The figures follow spend, so a finding reads the same however the cost events were batched.
        assert detections[0].track_changes

    def test_sandbox_cap(self) -> None:
        sandbox = Budget("sb", "project", "proj_sb", Decimal("5.00"), "USD", (100,), None, sandbox=True)

        below = threshold_detections(sandbox, "acme", NOVEMBER, BudgetSpend(Decimal("4.99"), ["c"], 0))
        past = threshold_detections(sandbox, "acme", NOVEMBER, BudgetSpend(Decimal("5.25"), ["c"], 0))

        assert below == []
        assert [d.kind for d in past] == ["sandbox_cap"]
        assert past[0].facts["percent_of_budget"] == "105.00"  # 5.25 / 5.00


class TestForecast:
    def test_projects_run_rate_to_period_end(self) -> None:
        # 79.20 USD in the 11 days to 2026-11-12 00:00 UTC: 79.20 × 30 / 11 = 216.00 USD, 144.00 % of 150.00.
        spent = BudgetSpend(Decimal("79.20"), ["c"], 0)

        detections = forecast_detections(RESEARCH, "acme", NOVEMBER, spent, at("2026-11-12T00:00:00+00:00"))

        assert len(detections) == 1
        facts = detections[0].facts
        assert facts["elapsed_days"] == "11.00"
        assert facts["period_days"] == "30.00"
        assert facts["projected_spend"] == "216.00 USD"
        assert facts["projected_percent_of_budget"] == "144.00"
        assert detections[0].kind == "budget_forecast"

    def test_projection_below_threshold_is_quiet(self) -> None:
        # 50.00 × 30 / 11 = 136.36 USD, 90.91 % of 150.00: no forecast finding at 100 %.
        spent = BudgetSpend(Decimal("50.00"), ["c"], 0)

        assert forecast_detections(RESEARCH, "acme", NOVEMBER, spent, at("2026-11-12T00:00:00+00:00")) == []

    def test_too_early_or_closed_period_is_quiet(self) -> None:
        spent = BudgetSpend(Decimal("79.20"), ["c"], 0)

        two_days = forecast_detections(RESEARCH, "acme", NOVEMBER, spent, at("2026-11-03T00:00:00+00:00"))
        after_period = forecast_detections(RESEARCH, "acme", NOVEMBER, spent, at("2026-12-02T00:00:00+00:00"))

        assert two_days == []  # fewer than the default 3 days of data
        assert after_period == []  # the period is over: actual spend is final


class TestBudgetPeriods:
    def test_sandbox_rows_count_only_against_their_sandbox(self) -> None:
        sandbox = Budget("sb", "project", "proj_sb", Decimal("5.00"), "USD", (100,), None, sandbox=True)
        rows = [
            {"tenant": "acme", "team": "research", "project_id": "proj_sb", "sandbox_id": "sb",
             "usage_start": at("2026-11-02T00:00:00+00:00")},
            {"tenant": "acme", "team": "research", "project_id": "proj_main", "sandbox_id": None,
             "usage_start": at("2026-10-30T00:00:00+00:00")},
        ]  # fmt: skip

        touched = budget_periods([RESEARCH, sandbox], rows, {"acme": UTC_ZONE})

        assert sorted((budget.budget_id, period.key) for budget, _, period in touched.values()) == [
            ("research", "2026-10"),
            ("sb", "2026-11"),
        ]
