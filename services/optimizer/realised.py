"""Realised savings: what an implemented recommendation's scope costs now against its baseline.

Each recommendation stores a measure (which cost to watch) and the baseline (that
cost per month when it was last estimated). After implementation:

- ``usage`` and ``resource`` measures average the monthly cost over the calendar
  months after the month of implementation that have cost rows;
- ``seats`` measures price the seats of the latest seat report taken after
  implementation: entitled seats when the licence reports totals, else assigned seats.

Realised savings are the baseline minus that cost, rounded half-even to 6 places.
Volume changes are not adjusted for: a team that doubles its traffic after moving
to a cheaper model shows less realised saving than the move made.
"""

from __future__ import annotations

import json
from collections import defaultdict
from datetime import datetime
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from services.optimizer.estimates import format_number
from services.optimizer.tables import OptimizerSeat, OptimizerSeatEntitlement, OptimizerUsage
from shared.events import CostStatus

PLACES = Decimal("0.000001")
USAGE = OptimizerUsage.__table__  # type: ignore[attr-defined]
SEATS = OptimizerSeat.__table__  # type: ignore[attr-defined]
ENTITLEMENTS = OptimizerSeatEntitlement.__table__  # type: ignore[attr-defined]


async def usage_cost_by_month(
    connection: AsyncConnection, tenant: str, measure: dict[str, Any], month: str | None = None
) -> dict[str, Decimal]:
    """Sum the priced usage a ``usage`` measure covers, per month (or in one month), in the measure's currency."""
    conditions = [
        USAGE.c.tenant == tenant,
        USAGE.c.provider == measure["provider"],
        USAGE.c.status == CostStatus.PRICED.value,
        USAGE.c.cost_currency == measure["currency"],
    ]
    if measure.get("models"):
        conditions.append(USAGE.c.priced_model.in_(measure["models"]))
    if measure.get("team") is not None:
        conditions.append(USAGE.c.team == measure["team"])
    if measure.get("use_case") is not None:
        conditions.append(USAGE.c.use_case == measure["use_case"])
    if month is not None:
        conditions.append(USAGE.c.month == month)
    return await _by_month(connection, conditions)


async def resource_cost_by_month(
    connection: AsyncConnection, tenant: str, resource_id: str, currency: str
) -> dict[str, Decimal]:
    """Sum the usage cost billed or priced for one resource, per month."""
    conditions = [
        USAGE.c.tenant == tenant,
        USAGE.c.resource_id == resource_id,
        USAGE.c.status != CostStatus.UNPRICED.value,
        USAGE.c.charge_category == "usage",
        USAGE.c.cost_currency == currency,
    ]
    return await _by_month(connection, conditions)


async def _by_month(connection: AsyncConnection, conditions: list[Any]) -> dict[str, Decimal]:
    if connection.dialect.name == "postgresql":
        # NUMERIC sums are exact, so PostgreSQL adds up the months instead of sending every row here.
        summed = await connection.execute(
            select(USAGE.c.month, func.sum(USAGE.c.cost_amount)).where(*conditions).group_by(USAGE.c.month)
        )
        return {month: amount for month, amount in summed if amount is not None}
    # Summed here on SQLite, which keeps exact amounts as text and would sum them as floats.
    rows = (await connection.execute(select(USAGE.c.month, USAGE.c.cost_amount).where(*conditions))).all()
    totals: dict[str, Decimal] = defaultdict(Decimal)
    for row in rows:
        totals[row.month] += row.cost_amount
    return dict(totals)


async def seat_cost(
    connection: AsyncConnection, tenant: str, measure: dict[str, Any], after: datetime | None = None
) -> tuple[Decimal, str] | None:
    """Price the seats a ``seats`` measure covers; return (monthly cost, how it was counted).

    With ``after``, only seat reports taken after that instant count, and None means there is none yet.
    """
    total = Decimal(0)
    parts = []
    for product in measure["products"]:
        vendor, name, price = product["vendor"], product["product"], Decimal(product["price"])
        entitlement = (
            await connection.execute(
                select(ENTITLEMENTS).where(
                    ENTITLEMENTS.c.tenant == tenant, ENTITLEMENTS.c.vendor == vendor, ENTITLEMENTS.c.product == name
                )
            )
        ).first()
        if entitlement is not None and (after is None or entitlement.as_of > after):
            count, as_of, basis = entitlement.entitled_seats, entitlement.as_of, "entitled"
        else:
            seats = (
                await connection.execute(
                    select(SEATS.c.as_of).where(
                        SEATS.c.tenant == tenant, SEATS.c.vendor == vendor, SEATS.c.product == name
                    )
                )
            ).all()
            if not seats:
                return None
            as_of = max(row.as_of for row in seats)
            if after is not None and as_of <= after:
                return None
            count, basis = sum(1 for row in seats if row.as_of == as_of), "assigned"
        total += count * price
        parts.append(f"{count} {basis} {vendor}/{name} seats on {as_of.date().isoformat()} × {format_number(price)}")
    return total, " + ".join(parts)


async def measure_realised(connection: AsyncConnection, row: Any) -> tuple[Decimal, str] | None:
    """Measure an implemented recommendation; return (realised monthly savings, arithmetic) or None if not yet."""
    if row.implemented_at is None or row.baseline_amount is None:
        return None
    measure = json.loads(row.measure_json or "{}")
    implemented_month = row.implemented_at.strftime("%Y-%m")
    baseline, currency = row.baseline_amount, row.currency
    kind = measure.get("type")
    if kind in ("usage", "resource"):
        if kind == "usage":
            monthly = await usage_cost_by_month(connection, row.tenant, measure)
        else:
            monthly = await resource_cost_by_month(connection, row.tenant, measure["resource_id"], currency)
        after = {month: amount for month, amount in sorted(monthly.items()) if month > implemented_month}
        if not after:
            return None
        months = list(after)
        mean = (sum(after.values(), Decimal(0)) / len(after)).quantize(PLACES, rounding=ROUND_HALF_EVEN)
        since = (
            f"{format_number(mean)} {currency} a month since implementation (mean of "
            f"{', '.join(f'{month}: {format_number(amount)}' for month, amount in after.items())})"
        )
        now_cost = mean
        label = f"{months[0]} to {months[-1]}" if len(months) > 1 else months[0]
    elif kind == "seats":
        measured = await seat_cost(connection, row.tenant, measure, after=row.implemented_at)
        if measured is None:
            return None
        now_cost, counted = measured
        since = f"{format_number(now_cost)} {currency} a month now ({counted})"
        label = "latest seat report"
    else:
        return None
    realised = (baseline - now_cost).quantize(PLACES, rounding=ROUND_HALF_EVEN)
    arithmetic = (
        f"realised monthly savings ({label}) = baseline {format_number(baseline)} {currency} a month "
        f"({row.baseline_period or 'at implementation'}) − {since} = {format_number(realised)} {currency}"
    )
    return realised, arithmetic
