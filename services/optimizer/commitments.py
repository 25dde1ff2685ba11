"""Commitment sizing: commit to the spend a provider's usage never falls below, at an offer's discount.

The daily spend of the last ``lookback_days`` days, ending on the latest day with
usage, is sorted in rising order (days without usage count as zero). The baseline
is its ``baseline_percentile`` by the nearest-rank method, so on nine days in ten
(at the default 10th percentile) usage at least fills the commitment. The monthly
commitment is that daily baseline times 30 days, rounded down to cents, and the
estimate is the offer's discount on it. Spend above the commitment stays at the
current prices, so it does not count.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import ROUND_FLOOR, Decimal

from services.optimizer.estimates import Estimate, format_number
from services.optimizer.policy import CommitmentOffer, OptimizerPolicy

DAYS_PER_COMMITTED_MONTH = 30  # a month of commitment is sized at 30 days, the shortest usual month but February
CENT = Decimal("0.01")


@dataclass(frozen=True, slots=True)
class DailyCost:
    day: date
    amount: Decimal
    usage_event_ids: tuple[str, ...]


def nearest_rank(percentile: int, count: int) -> int:
    """Return the 1-based rank of a percentile among ``count`` sorted values (nearest-rank method)."""
    return max(1, -(-percentile * count // 100))


def commitment_estimate(
    offer: CommitmentOffer, days: Sequence[DailyCost], currency: str, policy: OptimizerPolicy
) -> Estimate | None:
    if not days:
        return None
    last = max(item.day for item in days)
    first = last - timedelta(days=policy.commitment_lookback_days - 1)
    by_day = {item.day: item for item in days if first <= item.day <= last}
    series = [
        by_day[first + timedelta(days=offset)].amount if first + timedelta(days=offset) in by_day else Decimal(0)
        for offset in range(policy.commitment_lookback_days)
    ]
    active_days = sum(1 for amount in series if amount > 0)
    if active_days < policy.commitment_min_active_days:
        return None

    ordered = sorted(series)
    rank = nearest_rank(policy.commitment_baseline_percentile, len(ordered))
    baseline = ordered[rank - 1]
    if baseline <= 0:
        return None
    commitment = (baseline * DAYS_PER_COMMITTED_MONTH).quantize(CENT, rounding=ROUND_FLOOR)
    if commitment <= 0:
        return None
    if offer.min_monthly_commitment is not None and commitment < offer.min_monthly_commitment:
        return None
    savings = commitment * offer.discount_percent / 100

    lowest = ", ".join(format_number(amount) for amount in ordered[: min(rank + 2, len(ordered))])
    scope = f"{offer.provider}/{offer.model}" if offer.model else offer.provider
    arithmetic = "\n".join(
        [
            f"commitment with {scope} (offer {offer.offer_id}: {format_number(offer.discount_percent)}% off committed "
            f"spend for {offer.term_months} months), daily spend {first.isoformat()} to {last.isoformat()}:",
            f"{len(series)} days, {active_days} with usage, total {format_number(sum(series, Decimal(0)))} {currency}; "
            f"lowest days in rising order: {lowest} {currency}",
            f"baseline: {policy.commitment_baseline_percentile}th percentile by nearest rank = day {rank} of "
            f"{len(series)} in rising order = {format_number(baseline)} {currency} a day",
            f"monthly commitment = {format_number(baseline)} × {DAYS_PER_COMMITTED_MONTH} days = "
            f"{format_number(commitment)} {currency} (rounded down to cents)",
            f"estimated monthly savings = {format_number(commitment)} × {format_number(offer.discount_percent)}% = "
            f"{format_number(savings)} {currency}",
        ]
    )
    evidence = tuple(
        event_id for item in sorted(by_day.values(), key=lambda x: x.day) for event_id in item.usage_event_ids
    )
    return Estimate(savings, currency, arithmetic, evidence, (f"offer:{offer.offer_id}",))
