"""Unit economics figures against hand-worked arithmetic, and the use case register's input checks."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from services.value.economics import (
    OutcomeTotals,
    PreviousPeriod,
    compute_unit_economics,
    next_month,
    previous_month,
)
from services.value.use_cases import UseCase, UseCaseError, UseCaseRegister

D = Decimal
SUPPORT = UseCase(
    name="support-assistant",
    currency="USD",
    owner="support-platform@example.com",
    outcome_kind="tickets_resolved",
    value_per_outcome=D("0.25"),
    investment=D("100"),
)


def economics(cost: str, totals: OutcomeTotals, use_case: UseCase | None = SUPPORT, previous=None):  # type: ignore[no-untyped-def]
    return compute_unit_economics(
        cost=D(cost),
        outcomes=totals,
        outcome_kind="tickets_resolved",
        use_case=use_case,
        currency="USD",
        previous=previous,
        month="2026-11",
    )


def test_values_from_outcome_events() -> None:
    # The demo's support-assistant month: 33.105 USD of cost, 330 tickets valued at 1,320.00 USD in the events.
    result = economics("33.105", OutcomeTotals(D(330), D("1320.00"), D(0)), use_case=None)
    # 33.105 / 330 = 0.10031818..., half-even to 6 places
    assert result.cost_per_outcome == D("0.100318")
    assert result.value == D("1320.00")
    assert result.value_source == "outcome_events"
    # 1,320.00 − 33.105 = 1,286.895; 1,286.895 / 33.105 × 100 = 3,887.3131... %
    assert result.net_benefit == D("1286.895")
    assert result.roi_percent == D("3887.31")
    assert result.payback_months is None  # no register entry, so no investment


def test_value_per_outcome_and_payback() -> None:
    result = economics("10.00", OutcomeTotals(D(200), None, D(200)))
    assert result.value == D("50.00")  # 200 tickets × 0.25
    assert result.value_source == "value_per_outcome"
    assert result.net_benefit == D("40.00")  # 50.00 − 10.00
    assert result.roi_percent == D("400.00")  # 40 / 10 × 100
    assert result.payback_months == D("2.50")  # investment 100 / 40 a month


def test_baseline_values_outcomes_without_a_value() -> None:
    use_case = UseCase(name="triage", currency="USD", baseline_cost_per_outcome=D("0.30"))
    result = economics("12", OutcomeTotals(D(100), None, D(100)), use_case=use_case)
    assert result.value == D("30.00")  # 100 outcomes × 0.30 avoided
    assert result.value_source == "baseline_cost_avoided"
    assert result.baseline_cost_per_outcome == D("0.30")
    assert result.roi_percent == D("150.00")  # (30 − 12) / 12 × 100


def test_event_values_and_register_values_add() -> None:
    # 50 tickets came with 20.00 of value; 30 more came without and take 0.25 each.
    result = economics("5", OutcomeTotals(D(80), D("20.00"), D(30)))
    assert result.value == D("27.50")  # 20.00 + 30 × 0.25
    assert result.value_source == "outcome_events+value_per_outcome"


def test_register_in_another_currency_is_not_used() -> None:
    euro = UseCase(name="support-assistant", currency="EUR", value_per_outcome=D("0.25"), investment=D("100"))
    result = economics("10", OutcomeTotals(D(200), None, D(200)), use_case=euro)
    assert result.value is None
    assert result.roi_percent is None
    assert result.payback_months is None


def test_register_for_another_outcome_kind_is_not_used() -> None:
    other = UseCase(name="support-assistant", currency="USD", outcome_kind="calls_deflected", value_per_outcome=D(1))
    result = economics("10", OutcomeTotals(D(200), None, D(200)), use_case=other)
    assert result.value is None


def test_loss_has_no_payback() -> None:
    result = economics("60", OutcomeTotals(D(200), None, D(200)))
    assert result.net_benefit == D("-10.00")  # 200 × 0.25 = 50.00, minus 60
    assert result.roi_percent == D("-16.67")  # −10 / 60 × 100 = −16.666...
    assert result.payback_months is None


def test_no_cost_has_no_roi() -> None:
    result = economics("0", OutcomeTotals(D(10), D("5"), D(0)))
    assert result.cost_per_outcome == D("0.000000")
    assert result.roi_percent is None


def test_trend_against_previous_month() -> None:
    previous = PreviousPeriod(period="2026-10", cost_per_outcome=D("0.120000"), roi_percent=D("100.00"))
    result = economics("33.105", OutcomeTotals(D(330), D("1320.00"), D(0)), previous=previous)
    assert result.previous_period == "2026-10"
    assert result.previous_cost_per_outcome == D("0.120000")
    # (0.100318 − 0.12) / 0.12 × 100 = −16.4016...
    assert result.cost_per_outcome_change_percent == D("-16.40")
    assert result.previous_roi_percent == D("100.00")


def test_trend_without_previous_month() -> None:
    result = economics("1", OutcomeTotals(D(10), None, D(10)))
    assert result.previous_period == "2026-10"
    assert result.previous_cost_per_outcome is None
    assert result.cost_per_outcome_change_percent is None


def test_month_arithmetic_crosses_years() -> None:
    assert previous_month("2026-01") == "2025-12"
    assert previous_month("2026-11") == "2026-10"
    assert next_month("2025-12") == "2026-01"
    assert next_month("2026-09") == "2026-10"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "use_cases.yaml"
    path.write_text(text)
    return path


def test_register_reads_example(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
use_cases:
  - name: support-assistant
    owner: support-platform@example.com
    outcome_kind: tickets_resolved
    currency: USD
    value_per_outcome: "4.00"
    baseline_cost_per_outcome: "6.20"
    investment: "1500"
  - name: model-training
""",
    )
    register = UseCaseRegister.load(path)
    support = register.get("support-assistant")
    assert support is not None
    assert support.value_per_outcome == D("4.00")
    assert support.baseline_cost_per_outcome == D("6.20")
    assert support.investment == D(1500)
    assert register.names() == ["model-training", "support-assistant"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("use_cases: {}", "must be a mapping with a 'use_cases' list"),
        ("use_cases: [{owner: x}]", "use_cases[0].name: must be a non-empty string"),
        ("use_cases: [{name: a, currency: USD, value_per_outcome: 4.0}]", 'as a quoted string, such as "4.00"'),
        ("use_cases: [{name: a, value_per_outcome: '4'}]", "(a).currency: must be an ISO 4217 code"),
        ("use_cases: [{name: a, currency: USD, investment: '-1'}]", "(a).investment: must be zero or more"),
        ("use_cases: [{name: a, currency: USD, investment: 'lots'}]", "(a).investment: must be a number"),
        ("use_cases: [{name: a, valu_per_outcome: '1'}]", "(a): unknown fields: valu_per_outcome"),
        ("use_cases: [{name: a}, {name: a}]", "use cases listed twice: a"),
        ("use_cases: [{name: a, owner: ''}]", "(a).owner: must be a non-empty string"),
    ],
)
def test_register_rejects_bad_input(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(UseCaseError) as error:
        UseCaseRegister.load(write(tmp_path, text))
    assert message in str(error.value)
