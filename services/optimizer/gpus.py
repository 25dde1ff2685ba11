"""Idle and under-used GPUs: mean utilisation over recent telemetry windows against what the GPU costs a month.

The mean is weighted by window length over the windows that start within
``window_days`` of the latest window's end, and is rounded half-even to 2 places.
It needs at least ``min_window_hours`` of telemetry. The monthly cost is the
amount billed for the GPU's resource in the month of the latest window. Without a
bill line it is the GPU model's hourly list price times 730 hours (365 × 24 / 12).
An idle GPU saves its whole monthly cost. An under-used one saves the part of it
that the same work would not need at the target utilisation:
cost × (1 − mean / target).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal

from services.optimizer.estimates import Estimate, format_number
from services.optimizer.policy import GpuPrice, OptimizerPolicy
from shared.events import RecommendationKind

HOURS_PER_MONTH = 730
PERCENT_PLACES = Decimal("0.01")
SAVINGS_PLACES = Decimal("0.000001")


@dataclass(frozen=True, slots=True)
class GpuWindow:
    start: datetime
    end: datetime
    utilisation_percent: Decimal
    event_id: str


@dataclass(frozen=True, slots=True)
class BilledCost:
    """The amount billed for one resource in one month."""

    resource_id: str
    month: str
    amount: Decimal
    currency: str
    cost_event_ids: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class GpuFinding:
    kind: RecommendationKind
    estimate: Estimate
    confidence: str
    caveat: str
    mean_percent: Decimal
    monthly_cost: Decimal
    month: str


def recent_windows(windows: Sequence[GpuWindow], window_days: int) -> list[GpuWindow]:
    if not windows:
        return []
    cutoff = max(window.end for window in windows) - timedelta(days=window_days)
    return sorted((window for window in windows if window.start >= cutoff), key=lambda window: window.start)


def gpu_estimate(
    label: str,
    windows: Sequence[GpuWindow],
    policy: OptimizerPolicy,
    billed: BilledCost | None,
    list_price: GpuPrice | None,
) -> GpuFinding | None:
    """Estimate the saving on one GPU; ``label`` names it in the arithmetic, such as 'host/uuid (Tesla T4)'."""
    used = recent_windows(windows, policy.gpu_window_days)
    seconds = sum((Decimal(int((window.end - window.start).total_seconds())) for window in used), Decimal(0))
    hours = seconds / 3600
    if not used or hours < policy.gpu_min_window_hours:
        return None
    weighted = sum(
        (window.utilisation_percent * int((window.end - window.start).total_seconds()) for window in used), Decimal(0)
    )
    mean = (weighted / seconds).quantize(PERCENT_PLACES, rounding=ROUND_HALF_EVEN)
    if mean < policy.gpu_idle_below_percent:
        kind = RecommendationKind.IDLE_GPU
    elif mean < policy.gpu_underused_below_percent:
        kind = RecommendationKind.UNDERUSED_GPU
    else:
        return None

    month = used[-1].start.strftime("%Y-%m")
    if billed is not None:
        monthly_cost, currency = billed.amount, billed.currency
        cost_line = (
            f"monthly cost: the bill charged {format_number(billed.amount)} {currency} for resource "
            f"{billed.resource_id} in {billed.month} ({_count(len(billed.cost_event_ids), 'cost event')})"
        )
        price_rows: tuple[str, ...] = (f"bill:{billed.resource_id}:{billed.month}",)
        cost_events = billed.cost_event_ids
    elif list_price is not None:
        monthly_cost, currency = list_price.hourly_price * HOURS_PER_MONTH, list_price.currency
        cost_line = (
            f"monthly cost: no bill line names this GPU, so its list price: {format_number(list_price.hourly_price)} "
            f"{currency} an hour × {HOURS_PER_MONTH} hours = {format_number(monthly_cost)} {currency} "
            f"({list_price.source})"
        )
        price_rows = (list_price.row_id,)
        cost_events = ()
    else:
        return None  # an unknown GPU price is never taken as zero

    header = (
        f"GPU {label}, {_count(len(used), 'telemetry window')} {used[0].start.isoformat()} to "
        f"{used[-1].end.isoformat()}, {format_number(hours)} hours:"
    )
    mean_line = (
        f"mean utilisation = Σ(utilisation × seconds) / {format_number(seconds)} seconds = {format_number(mean)}% "
        f"(rounded to 2 places)"
    )
    if kind is RecommendationKind.IDLE_GPU:
        savings = monthly_cost
        lines = [
            f"{mean_line}, below the idle threshold of {format_number(policy.gpu_idle_below_percent)}%",
            cost_line,
            f"estimated monthly savings = the whole monthly cost = {format_number(savings)} {currency}",
        ]
        confidence = "high" if billed is not None else "medium"
        caveat = "The GPU did almost nothing in the window; check for scheduled jobs before stopping or releasing it."
    else:
        target = policy.gpu_target_percent
        savings = (monthly_cost * (1 - mean / target)).quantize(SAVINGS_PLACES, rounding=ROUND_HALF_EVEN)
        lines = [
            f"{mean_line}, below the under-use threshold of {format_number(policy.gpu_underused_below_percent)}%",
            cost_line,
            f"estimated monthly savings = {format_number(monthly_cost)} × (1 − {format_number(mean)} / "
            f"{format_number(target)}) = {format_number(savings)} {currency} (rounded half-even to 6 places)",
        ]
        confidence = "low"
        caveat = (
            f"Assumes the work can share a GPU (MIG, time-slicing) or move to a smaller one and run at "
            f"{format_number(target)}% utilisation."
        )
    estimate = Estimate(
        savings,
        currency,
        "\n".join([header, *lines]),
        tuple(window.event_id for window in used) + cost_events,
        price_rows,
    )
    return GpuFinding(kind, estimate, confidence, caveat, mean, monthly_cost, month)


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}" if number == 1 else f"{number} {noun}s"
