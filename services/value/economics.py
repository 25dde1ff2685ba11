"""Unit economics of one use case, outcome kind and month: cost per outcome, value, ROI, payback and trend.

- Cost per outcome is cost / outcomes, rounded half-even to 6 places (AI unit costs are often fractions of a cent).
- Value is the sum of the values sent with the outcome events. Outcomes sent without a value are valued from
  the use case register: at ``value_per_outcome`` when it is set, else at ``baseline_cost_per_outcome`` (the
  cost each outcome avoided). Register figures in another currency than the reporting currency are not used,
  because nothing here converts currencies.
- ROI is (value − cost) / cost × 100 and payback is investment / (value − cost) in months, for the month's
  net benefit; both round half-even to 2 places.
- Trend compares cost per outcome with the previous calendar month of the same use case and outcome kind.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal

from services.value.use_cases import UseCase

UNIT_COST_PLACES = Decimal("0.000001")
PERCENT_PLACES = Decimal("0.01")


@dataclass(frozen=True, slots=True)
class OutcomeTotals:
    """What one month's outcome events of one kind add up to, in the reporting currency."""

    quantity: Decimal
    value_from_events: Decimal | None  # None when no event of the month carried a value
    quantity_without_value: Decimal  # outcomes whose event carried no value at all


@dataclass(frozen=True, slots=True)
class PreviousPeriod:
    period: str
    cost_per_outcome: Decimal | None
    roi_percent: Decimal | None


@dataclass(frozen=True, slots=True)
class UnitEconomics:
    cost_per_outcome: Decimal | None
    value: Decimal | None
    value_source: str | None
    net_benefit: Decimal | None
    roi_percent: Decimal | None
    payback_months: Decimal | None
    baseline_cost_per_outcome: Decimal | None
    previous_period: str
    previous_cost_per_outcome: Decimal | None
    cost_per_outcome_change_percent: Decimal | None
    previous_roi_percent: Decimal | None


def previous_month(month: str) -> str:
    """Return the calendar month before 'YYYY-MM'."""
    year, number = int(month[:4]), int(month[5:7])
    return f"{year - 1}-12" if number == 1 else f"{year}-{number - 1:02d}"


def next_month(month: str) -> str:
    year, number = int(month[:4]), int(month[5:7])
    return f"{year + 1}-01" if number == 12 else f"{year}-{number + 1:02d}"


def _percent(numerator: Decimal, denominator: Decimal) -> Decimal:
    return (numerator / denominator * 100).quantize(PERCENT_PLACES, rounding=ROUND_HALF_EVEN)


def compute_unit_economics(
    *,
    cost: Decimal,
    outcomes: OutcomeTotals,
    outcome_kind: str,
    use_case: UseCase | None,
    currency: str,
    previous: PreviousPeriod | None,
    month: str,
) -> UnitEconomics:
    cost_per_outcome = (
        (cost / outcomes.quantity).quantize(UNIT_COST_PLACES, rounding=ROUND_HALF_EVEN) if outcomes.quantity else None
    )

    register = use_case if use_case is not None and use_case.currency == currency else None
    applies = register is not None and register.applies_to(outcome_kind)
    sources: list[str] = []
    value: Decimal | None = None
    if outcomes.value_from_events is not None:
        value = outcomes.value_from_events
        sources.append("outcome_events")
    if applies and register is not None and outcomes.quantity_without_value:
        if register.value_per_outcome is not None:
            per_outcome, source = register.value_per_outcome, "value_per_outcome"
        elif register.baseline_cost_per_outcome is not None:
            per_outcome, source = register.baseline_cost_per_outcome, "baseline_cost_avoided"
        else:
            per_outcome, source = None, ""
        if per_outcome is not None:
            value = (value or Decimal(0)) + outcomes.quantity_without_value * per_outcome
            sources.append(source)

    net_benefit = value - cost if value is not None else None
    roi_percent = _percent(net_benefit, cost) if net_benefit is not None and cost else None
    investment = register.investment if register is not None else None
    payback_months = (
        (investment / net_benefit).quantize(PERCENT_PLACES, rounding=ROUND_HALF_EVEN)
        if investment is not None and net_benefit is not None and net_benefit > 0
        else None
    )

    previous_cost_per_outcome = previous.cost_per_outcome if previous is not None else None
    change_percent = (
        _percent(cost_per_outcome - previous_cost_per_outcome, previous_cost_per_outcome)
        if cost_per_outcome is not None and previous_cost_per_outcome
        else None
    )
    return UnitEconomics(
        cost_per_outcome=cost_per_outcome,
        value=value,
        value_source="+".join(sources) or None,
        net_benefit=net_benefit,
        roi_percent=roi_percent,
        payback_months=payback_months,
        baseline_cost_per_outcome=(register.baseline_cost_per_outcome if applies and register is not None else None),
        previous_period=previous_month(month),
        previous_cost_per_outcome=previous_cost_per_outcome,
        cost_per_outcome_change_percent=change_percent,
        previous_roi_percent=previous.roi_percent if previous is not None else None,
    )
