"""Daily spend anomalies per (team, provider, model) against a robust baseline.

For a day d, the baseline is the daily spend of the ``window`` days before d, counting days without spend as
zero. It starts no earlier than the first day the series had spend, so a series that started last week has
no history of zeros before that. The day is anomalous when

- the series is at least ``min_history`` days old,
- spend on d is at least the minimum daily spend of its currency (so tiny teams page nobody), and
- its robust z-score, (spend − median) / (1.4826 × MAD), is above the threshold. 1.4826 × MAD estimates the
  standard deviation of normally distributed spend. When more than half the baseline days are equal, MAD is
  zero and 1.2533 × the mean absolute deviation from the median takes its place; when every baseline day is
  equal, any spend above the median fires.

Only rises are flagged: a drop in spend is not a cost risk. Days are local days in the tenant's time zone.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from statistics import median
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from services.risk.budgets import BUDGET_CATEGORIES
from services.risk.findings import Detection, finding_id
from services.risk.periods import day_bounds, local_day
from services.risk.tables import RiskCostEntry
from shared.events import CostStatus, Money, Severity
from shared.logging import get_logger

MAD_TO_SIGMA = Decimal("1.4826")
MEAN_DEVIATION_TO_SIGMA = Decimal("1.2533")
SCORE_PLACES = Decimal("0.01")

ENTRIES = RiskCostEntry.__table__  # type: ignore[attr-defined]

log = get_logger(__name__)
_UNCHECKED_CURRENCIES: set[str] = set()  # currencies already logged as having no floor


@dataclass(frozen=True, slots=True)
class AnomalySettings:
    window_days: int = 28
    min_history_days: int = 7
    threshold: Decimal = Decimal("3.5")
    min_daily_spend: tuple[Money, ...] = (Money(amount=Decimal("10.00"), currency="USD"),)

    def floor(self, currency: str) -> Decimal | None:
        for money in self.min_daily_spend:
            if money.currency == currency:
                return money.amount
        return None


@dataclass(frozen=True, slots=True)
class Baseline:
    median: Decimal
    mad: Decimal
    scale: Decimal  # estimated standard deviation; zero when every baseline day is equal
    scale_method: str
    days: int


@dataclass(frozen=True, slots=True)
class DayVerdict:
    day: date
    actual: Decimal
    baseline: Baseline
    score: Decimal | None  # None when the scale is zero
    anomalous: bool


def robust_baseline(history: Sequence[Decimal]) -> Baseline:
    """Return the median, MAD and estimated standard deviation of daily spend."""
    centre = median(history)
    deviations = [abs(value - centre) for value in history]
    mad = median(deviations)
    if mad > 0:
        return Baseline(centre, mad, MAD_TO_SIGMA * mad, "1.4826 × MAD", len(history))
    mean_deviation = sum(deviations, Decimal(0)) / len(deviations)
    if mean_deviation > 0:
        return Baseline(centre, mad, MEAN_DEVIATION_TO_SIGMA * mean_deviation, "1.2533 × mean deviation", len(history))
    return Baseline(centre, mad, Decimal(0), "constant baseline", len(history))


def judge_day(
    day: date, daily: Mapping[date, Decimal], first_day: date, floor: Decimal, settings: AnomalySettings
) -> DayVerdict | None:
    """Judge one day of a series; None when the series is too young for a baseline."""
    if (day - first_day).days < settings.min_history_days:
        return None
    start = max(first_day, day - timedelta(days=settings.window_days))
    history = [daily.get(start + timedelta(days=offset), Decimal(0)) for offset in range((day - start).days)]
    baseline = robust_baseline(history)
    actual = daily.get(day, Decimal(0))
    if baseline.scale > 0:
        score = ((actual - baseline.median) / baseline.scale).quantize(SCORE_PLACES, rounding=ROUND_HALF_EVEN)
        anomalous = score > settings.threshold
    else:
        score = None
        anomalous = actual > baseline.median
    return DayVerdict(day, actual, baseline, score, anomalous and actual >= floor)


@dataclass(frozen=True, slots=True)
class Series:
    tenant: str
    team: str
    provider: str
    model_key: str
    currency: str

    @property
    def subject(self) -> str:
        return f"team:{self.team} model:{self.provider}/{self.model_key}"

    @property
    def finding_id(self) -> str:
        return finding_id(self.tenant, "anomaly", self.team, self.provider, self.model_key, self.currency)


def touched_series(rows: Sequence[Mapping[str, object]], zones: Mapping[str, ZoneInfo]) -> dict[Series, set[date]]:
    """Group the touched cost rows into series and the local days they touched."""
    touched: dict[Series, set[date]] = defaultdict(set)
    for row in rows:
        if row["status"] == CostStatus.UNPRICED.value or row.get("sandbox_id") is not None:
            continue
        if row["charge_category"] not in BUDGET_CATEGORIES or row["cost_currency"] is None:
            continue
        tenant = str(row["tenant"])
        series = Series(
            tenant, str(row["team"]), str(row["provider"]), str(row["model_key"]), str(row["cost_currency"])
        )
        usage_start = row["usage_start"]
        assert isinstance(usage_start, datetime)
        touched[series].add(local_day(usage_start, zones[tenant]))
    return touched


async def detect_anomalies(
    connection: AsyncConnection,
    series: Series,
    days: set[date],
    zone: ZoneInfo,
    settings: AnomalySettings,
    known_days: Sequence[str],
) -> Detection | None:
    """Judge the touched days of one series from stored spend; return its finding when a day is anomalous.

    ``known_days`` are the days an earlier detection of this series already flagged; they stay in the facts.
    """
    floor = settings.floor(series.currency)
    if floor is None:
        if series.currency not in _UNCHECKED_CURRENCIES:
            _UNCHECKED_CURRENCIES.add(series.currency)
            log.warning("anomaly.currency_without_floor", currency=series.currency,
                        hint="add a floor for it to RISK_ANOMALY_MIN_DAILY_SPEND to check its spend")  # fmt: skip
        return None
    conditions = [
        ENTRIES.c.tenant == series.tenant,
        ENTRIES.c.team == series.team,
        ENTRIES.c.provider == series.provider,
        ENTRIES.c.model_key == series.model_key,
        ENTRIES.c.cost_currency == series.currency,
        ENTRIES.c.status != CostStatus.UNPRICED.value,
        ENTRIES.c.charge_category.in_(BUDGET_CATEGORIES),
        ENTRIES.c.sandbox_id.is_(None),
    ]
    first_start = (await connection.execute(select(func.min(ENTRIES.c.usage_start)).where(*conditions))).scalar()
    if first_start is None:
        return None
    first_day = local_day(first_start, zone)
    window_start, _ = day_bounds(min(days) - timedelta(days=settings.window_days), zone)
    _, window_end = day_bounds(max(days), zone)
    result = await connection.execute(
        select(ENTRIES.c.usage_start, ENTRIES.c.cost_amount, ENTRIES.c.cost_event_id).where(
            *conditions, ENTRIES.c.usage_start >= window_start, ENTRIES.c.usage_start < window_end
        )
    )
    daily: dict[date, Decimal] = defaultdict(Decimal)
    events: dict[date, list[str]] = defaultdict(list)
    for row in result:
        day = local_day(row.usage_start, zone)
        daily[day] += row.cost_amount
        events[day].append(row.cost_event_id)

    verdicts = [judge_day(day, daily, first_day, floor, settings) for day in sorted(days)]
    flagged = [verdict for verdict in verdicts if verdict is not None and verdict.anomalous]
    if not flagged:
        return None
    latest = flagged[-1]
    all_days = sorted(set(known_days) | {verdict.day.isoformat() for verdict in flagged})
    return _detection(series, latest, all_days, floor, settings, events[latest.day])


def _detection(
    series: Series,
    verdict: DayVerdict,
    flagged_days: list[str],
    floor: Decimal,
    settings: AnomalySettings,
    evidence: list[str],
) -> Detection:
    currency = series.currency
    baseline = verdict.baseline
    if verdict.score is not None:
        why = (
            f"spend {verdict.actual} {currency} on {verdict.day} is {verdict.score} estimated standard deviations "
            f"({baseline.scale_method}) above the median {baseline.median} {currency} of the {baseline.days} days "
            f"before it; the limit is {settings.threshold} and the floor {floor} {currency}"
        )
    else:
        why = (
            f"spend {verdict.actual} {currency} on {verdict.day} is above the constant daily spend "
            f"{baseline.median} {currency} of the {baseline.days} days before it, and over the floor {floor} {currency}"
        )
    facts = {
        "day": verdict.day.isoformat(),
        "actual": f"{verdict.actual} {currency}",
        "expected": f"{baseline.median} {currency}",
        "mad": f"{baseline.mad} {currency}",
        "scale": f"{baseline.scale.quantize(Decimal('0.000001'), rounding=ROUND_HALF_EVEN)} {currency}",
        "robust_z": str(verdict.score) if verdict.score is not None else "unbounded",
        "threshold": str(settings.threshold),
        "baseline_days": str(baseline.days),
        "min_daily_spend": f"{floor} {currency}",
        "flagged_days": ",".join(flagged_days),
        "why": why,
    }
    severity = Severity.HIGH if verdict.score is None or verdict.score > 2 * settings.threshold else Severity.MEDIUM
    return Detection(
        finding_id=series.finding_id,
        tenant=series.tenant,
        kind="spend_anomaly",
        severity=severity,
        subject=series.subject,
        title=f"{series.subject} spent {verdict.actual} {currency} on {verdict.day}, "
        f"expected about {baseline.median} {currency}",
        facts=facts,
        interpretation="Daily spend jumped far above this series' usual level; check for a runaway job, a retry "
        "loop, a leaked key or a new workload before it repeats.",
        evidence_event_ids=tuple(evidence),
        occurrence=flagged_days[-1],
    )
