"""Budgets from a YAML file: a spending limit per team, project, cost centre, use case or environment and period.

Example::

    budgets:
      - id: document-ai-monthly
        scope: {team: document-ai}
        period: monthly            # or quarterly; periods start at midnight in the tenant's time zone
        amount: "2.00"
        currency: USD
        thresholds: [80, 100]      # percent of the budget reached by actual spend
        forecast_thresholds: [100] # percent of the budget that spend projected to the period end reaches
        owner: head-of-document-ai@example.com
      - id: llm-sandbox
        scope: {project: proj_sandbox}
        sandbox: true              # experiments: flagged only once spend passes the cap
        amount: "50.00"
        currency: USD

Spend against a budget is the sum of usage, purchase, tax and adjustment costs in the period the usage
happened, so late usage counts where it belongs. Credits and refunds are reported on their own and do not
lower budget spend. Spend inside a sandbox counts only against the sandbox: it raises no policy, anomaly or
other budget finding, and its one finding is raised when the sandbox spend reaches its cap.

The forecast projects actual spend linearly to the period end: spend × period days / elapsed days. Elapsed
days run from the period start to the end of the tenant's newest usage. That is the data's own clock, used
because usage exports arrive late. The forecast is raised only while that clock is inside the period, and only
after ``forecast_after_days`` days of it have passed, because a projection from a few hours swings widely.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import yaml
from sqlalchemy import case, func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from services.risk.findings import MAX_EVIDENCE_IDS, Detection, finding_id
from services.risk.periods import SECONDS_PER_DAY, Period, period_of
from services.risk.tables import RiskCostEntry
from shared.events import CostStatus, Severity

# Scope keys of a budget and the cost-entry column each one compares.
SCOPE_COLUMNS = {
    "team": "team",
    "cost_centre": "cost_centre",
    "use_case": "use_case",
    "project": "project_id",
    "environment": "environment",
}
SCOPE_KEYS = tuple(SCOPE_COLUMNS)
BUDGET_CATEGORIES = ("usage", "purchase", "tax", "adjustment")
PERIODS = ("monthly", "quarterly")
DEFAULT_FORECAST_AFTER_DAYS = Decimal(3)
PERCENT_PLACES = Decimal("0.01")

ENTRIES = RiskCostEntry.__table__  # type: ignore[attr-defined]


class BudgetError(ValueError):
    """The budgets file is invalid; the message names the budget and field."""


@dataclass(frozen=True, slots=True)
class Budget:
    budget_id: str
    scope_key: str
    scope_value: str
    amount: Decimal
    currency: str
    thresholds: tuple[int, ...]
    owner: str | None
    period: str = "monthly"
    forecast_thresholds: tuple[int, ...] = ()
    sandbox: bool = False
    tenant: str | None = None
    forecast_after_days: Decimal = DEFAULT_FORECAST_AFTER_DAYS

    @property
    def subject(self) -> str:
        return f"{self.scope_key}:{self.scope_value}"

    @property
    def column(self) -> str:
        return SCOPE_COLUMNS[self.scope_key]

    def covers(self, row: Mapping[str, Any]) -> bool:
        """Tell whether a cost-entry row falls in this budget's tenant and scope."""
        if self.tenant is not None and row["tenant"] != self.tenant:
            return False
        return bool(row.get(self.column) == self.scope_value)


def load_budgets(path: Path) -> list[Budget]:
    try:
        document = yaml.safe_load(path.read_text())
    except yaml.YAMLError as error:
        raise BudgetError(f"{path}: not valid YAML: {error}") from None
    if not isinstance(document, dict) or not isinstance(document.get("budgets"), list):
        raise BudgetError(f"{path}: must be a mapping with a 'budgets' list")
    budgets = [_parse(entry, f"{path}: budgets[{index}]") for index, entry in enumerate(document["budgets"])]
    ids = [budget.budget_id for budget in budgets]
    duplicates = sorted({budget_id for budget_id in ids if ids.count(budget_id) > 1})
    if duplicates:
        raise BudgetError(f"{path}: budget ids used twice: {', '.join(duplicates)}")
    return budgets


def parse_budget(entry: Any, where: str) -> Budget:
    """Validate one budget mapping, shaped as an entry of the budgets file; raise BudgetError naming the field."""
    return _parse(entry, where)


def sandbox_for(budgets: Iterable[Budget], row: Mapping[str, Any]) -> str | None:
    """Return the id of the first sandbox budget whose scope covers a cost-entry row."""
    for budget in budgets:
        if budget.sandbox and budget.covers(row):
            return budget.budget_id
    return None


def _percentages(entry: dict[str, Any], name: str, default: list[int], where: str) -> tuple[int, ...]:
    values = entry.get(name, default)
    valid = isinstance(values, list) and all(
        isinstance(item, int) and not isinstance(item, bool) and 0 < item <= 1000 for item in values
    )
    if not valid:
        raise BudgetError(f"{where}.{name}: must be a list of whole percentages between 1 and 1000")
    return tuple(sorted(set(values)))


def _parse(entry: Any, where: str) -> Budget:
    if not isinstance(entry, dict):
        raise BudgetError(f"{where}: must be a mapping")
    budget_id = entry.get("id")
    if not isinstance(budget_id, str) or not budget_id:
        raise BudgetError(f"{where}.id: must be a non-empty string")
    scope = entry.get("scope")
    if not isinstance(scope, dict) or len(scope) != 1 or next(iter(scope)) not in SCOPE_KEYS:
        raise BudgetError(f"{where}.scope: must name exactly one of {', '.join(SCOPE_KEYS)}")
    scope_key, scope_value = next(iter(scope.items()))
    if not isinstance(scope_value, str) or not scope_value:
        raise BudgetError(f"{where}.scope.{scope_key}: must be a non-empty string")

    period = entry.get("period", "monthly")
    if period not in PERIODS:
        raise BudgetError(f"{where}.period: must be one of {', '.join(PERIODS)}, got {period!r}")
    if isinstance(entry.get("amount"), float):
        raise BudgetError(f'{where}.amount: write the amount as a quoted string, such as "2.00", to keep it exact')
    try:
        amount = Decimal(str(entry.get("amount")))
    except InvalidOperation:
        raise BudgetError(f"{where}.amount: must be a number, got {entry.get('amount')!r}") from None
    if not amount.is_finite() or amount <= 0:
        raise BudgetError(f"{where}.amount: must be positive, got {amount}")
    currency = entry.get("currency")
    if not isinstance(currency, str) or len(currency) != 3 or not currency.isupper():
        raise BudgetError(f"{where}.currency: must be an ISO 4217 code like USD, got {currency!r}")

    sandbox = entry.get("sandbox", False)
    if not isinstance(sandbox, bool):
        raise BudgetError(f"{where}.sandbox: must be true or false")
    if sandbox and ("thresholds" in entry or "forecast_thresholds" in entry):
        raise BudgetError(f"{where}: a sandbox budget is flagged only past its cap; remove its thresholds")
    thresholds = (100,) if sandbox else _percentages(entry, "thresholds", [80, 100], where)
    if not thresholds:
        raise BudgetError(f"{where}.thresholds: must not be empty")
    forecast_thresholds = () if sandbox else _percentages(entry, "forecast_thresholds", [], where)

    owner = entry.get("owner")
    if owner is not None and not isinstance(owner, str):
        raise BudgetError(f"{where}.owner: must be a string")
    tenant = entry.get("tenant")
    if tenant is not None and (not isinstance(tenant, str) or not tenant):
        raise BudgetError(f"{where}.tenant: must be a non-empty string")
    after = entry.get("forecast_after_days", DEFAULT_FORECAST_AFTER_DAYS)
    if isinstance(after, bool) or not isinstance(after, int | str | Decimal) or Decimal(str(after)) <= 0:
        raise BudgetError(f"{where}.forecast_after_days: must be a positive number of days")

    return Budget(
        budget_id,
        scope_key,
        scope_value,
        amount,
        currency,
        thresholds,
        owner,
        period=period,
        forecast_thresholds=forecast_thresholds,
        sandbox=sandbox,
        tenant=tenant,
        forecast_after_days=Decimal(str(after)),
    )


def percent(spend: Decimal, amount: Decimal) -> Decimal:
    return (spend * 100 / amount).quantize(PERCENT_PLACES, rounding=ROUND_HALF_EVEN)


@dataclass(frozen=True, slots=True)
class BudgetSpend:
    """A budget's spend in one period, with the cost rows it counts (evidence may list only the first of them)."""

    spend: Decimal
    evidence: list[str]
    other_currency: int
    counted: int | None = None  # rows in the budget's currency; None when evidence lists every one of them

    @property
    def cost_events(self) -> int:
        return len(self.evidence) if self.counted is None else self.counted


async def budget_spend(connection: AsyncConnection, budget: Budget, tenant: str, period: Period) -> BudgetSpend:
    """Sum the budget's spend in a period from the stored entries, skipping amounts in other currencies."""
    sandbox_condition = ENTRIES.c.sandbox_id == budget.budget_id if budget.sandbox else ENTRIES.c.sandbox_id.is_(None)
    conditions = (
        ENTRIES.c.tenant == tenant,
        ENTRIES.c.usage_start >= period.start,
        ENTRIES.c.usage_start < period.end,
        ENTRIES.c[budget.column] == budget.scope_value,
        ENTRIES.c.status != CostStatus.UNPRICED.value,
        ENTRIES.c.charge_category.in_(BUDGET_CATEGORIES),
        sandbox_condition,
    )
    if connection.dialect.name == "postgresql":
        return await _summed_budget_spend(connection, budget, conditions)
    result = await connection.execute(
        select(ENTRIES.c.cost_event_id, ENTRIES.c.cost_amount, ENTRIES.c.cost_currency)
        .where(*conditions)
        .order_by(ENTRIES.c.cost_event_id, ENTRIES.c.share_index)
    )
    spend = Decimal(0)
    evidence: list[str] = []
    other_currency = 0
    for row in result:
        if row.cost_currency != budget.currency:
            other_currency += 1
            continue
        spend += row.cost_amount
        evidence.append(row.cost_event_id)
    return BudgetSpend(spend, evidence, other_currency)


async def _summed_budget_spend(connection: AsyncConnection, budget: Budget, conditions: tuple[Any, ...]) -> BudgetSpend:
    """Let PostgreSQL add up the spend (NUMERIC sums are exact) and return only the evidence a finding keeps.

    Reading every row of the period back made each batch's work grow with the data stored. This reads two
    aggregates and at most MAX_EVIDENCE_IDS ids, which are the first ids of the full list in the same order.
    """
    in_currency = ENTRIES.c.cost_currency == budget.currency
    totals = (
        await connection.execute(
            select(
                func.sum(case((in_currency, ENTRIES.c.cost_amount))),
                func.count(case((in_currency, 1))),
                func.count(),
            ).where(*conditions)
        )
    ).one()
    evidence = (
        await connection.execute(
            select(ENTRIES.c.cost_event_id)
            .where(*conditions, in_currency)
            .order_by(ENTRIES.c.cost_event_id, ENTRIES.c.share_index)
            .limit(MAX_EVIDENCE_IDS)
        )
    ).scalars()
    spend = totals[0] if totals[0] is not None else Decimal(0)
    return BudgetSpend(spend, list(evidence), int(totals[2]) - int(totals[1]), counted=int(totals[1]))


def budget_periods(
    budgets: Iterable[Budget], rows: Iterable[Mapping[str, Any]], zones: Mapping[str, ZoneInfo]
) -> dict[tuple[str, str], tuple[Budget, str, Period]]:
    """Find every (budget, tenant, period) that the rows touch, keyed by (budget id, tenant and period key)."""
    touched: dict[tuple[str, str], tuple[Budget, str, Period]] = {}
    for row in rows:
        for budget in budgets:
            if budget.sandbox:
                if row.get("sandbox_id") != budget.budget_id:
                    continue
            elif row.get("sandbox_id") is not None or not budget.covers(row):
                continue
            period = period_of(row["usage_start"], budget.period, zones[row["tenant"]])
            touched[(budget.budget_id, f"{row['tenant']}|{period.key}")] = (budget, row["tenant"], period)
    return touched


def threshold_detections(budget: Budget, tenant: str, period: Period, spent: BudgetSpend) -> list[Detection]:
    """Raise one finding per threshold that actual spend has reached."""
    share = percent(spent.spend, budget.amount)
    detections = []
    for threshold in budget.thresholds:
        if share < threshold:
            continue
        facts = {
            "budget_id": budget.budget_id,
            "period": period.key,
            "budget": f"{budget.amount} {budget.currency}",
            "spend": f"{spent.spend} {budget.currency}",
            "percent_of_budget": str(share),
            "threshold_percent": str(threshold),
            "cost_events": str(spent.cost_events),
            "cost_events_in_other_currencies": str(spent.other_currency),
        }
        if budget.sandbox:
            kind, severity = "sandbox_cap", Severity.HIGH
            title = f"sandbox {budget.budget_id} ({budget.subject}) spent {share}% of its cap for {period.key}"
            reading = (
                f"Experiments in this sandbox have spent past their {budget.amount} {budget.currency} cap; "
                "spend inside it is no longer covered by the sandbox's allowance."
            )
            identifier = finding_id(tenant, "sandbox", budget.budget_id, period.key)
        else:
            over = threshold >= 100
            kind, severity = "budget_threshold", Severity.HIGH if over else Severity.MEDIUM
            title = f"{budget.subject} reached {share}% of budget {budget.budget_id} for {period.key}"
            reading = (
                f"Spend is over the {budget.amount} {budget.currency} budget; further usage this period is unbudgeted."
                if over
                else f"Spend passed {threshold}% of the budget; at this rate the budget may run out before "
                "the period ends."
            )
            identifier = finding_id(tenant, "budget", budget.budget_id, period.key, str(threshold))
        detections.append(
            Detection(
                finding_id=identifier,
                tenant=tenant,
                kind=kind,
                severity=severity,
                subject=budget.subject,
                title=title,
                facts=facts,
                interpretation=reading,
                evidence_event_ids=tuple(spent.evidence),
                owner=budget.owner,
                occurrence=f"{period.key}:{threshold}",
            )
        )
    return detections


def forecast_detections(
    budget: Budget, tenant: str, period: Period, spent: BudgetSpend, data_clock: datetime | None
) -> list[Detection]:
    """Raise one finding per forecast threshold that spend projected to the period end reaches."""
    if not budget.forecast_thresholds or data_clock is None or not period.start < data_clock < period.end:
        return []
    elapsed_days = Decimal(int((data_clock - period.start).total_seconds())) / SECONDS_PER_DAY
    if elapsed_days < budget.forecast_after_days:
        return []
    period_days = period.days()
    projected = (spent.spend * period_days / elapsed_days).quantize(PERCENT_PLACES, rounding=ROUND_HALF_EVEN)
    share = percent(projected, budget.amount)
    detections = []
    for threshold in budget.forecast_thresholds:
        if share < threshold:
            continue
        facts = {
            "budget_id": budget.budget_id,
            "period": period.key,
            "budget": f"{budget.amount} {budget.currency}",
            "spend": f"{spent.spend} {budget.currency}",
            "data_through": data_clock.isoformat(),
            "elapsed_days": str(elapsed_days.quantize(PERCENT_PLACES)),
            "period_days": str(period_days.quantize(PERCENT_PLACES)),
            "projected_spend": f"{projected} {budget.currency}",
            "projected_percent_of_budget": str(share),
            "threshold_percent": str(threshold),
            "method": "spend × period days / elapsed days",
        }
        detections.append(
            Detection(
                finding_id=finding_id(tenant, "budget_forecast", budget.budget_id, period.key, str(threshold)),
                tenant=tenant,
                kind="budget_forecast",
                severity=Severity.MEDIUM,
                subject=budget.subject,
                title=f"{budget.subject} is projected to spend {share}% of budget {budget.budget_id} "
                f"by the end of {period.key}",
                facts=facts,
                interpretation=f"At the run rate so far, spend reaches {projected} {budget.currency} by the period "
                f"end, past {threshold}% of the {budget.amount} {budget.currency} budget; slow usage or raise the "
                "budget before it is spent.",
                evidence_event_ids=tuple(spent.evidence),
                owner=budget.owner,
                occurrence=f"{period.key}:{threshold}",
            )
        )
    return detections
