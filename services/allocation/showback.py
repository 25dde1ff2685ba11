"""Showback and chargeback: allocated cost by any dimensions and period, in the tenant's time zone.

Each cost counts once, in the period that contains its attribution instant (the
middle of its usage period) in the tenant's IANA time zone. A local day is therefore
23 or 25 hours long around a DST change, and disjoint periods always add up to their
union. A split cost contributes each owner's share. Amounts are converted to the
reporting currency at the rate of the local day; an amount with no rate stays in
its own currency and is listed as unconverted, never added raw.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Literal
from zoneinfo import ZoneInfo

from sqlalchemy import select

from services.allocation.fx import FxTable
from services.allocation.ledger import LEDGER
from shared.db import Database
from shared.events import Money

Period = Literal["day", "month", "total"]
ALLOCATION_DIMENSIONS = ("team", "cost_centre", "product", "use_case", "environment", "rule_id")
USAGE_DIMENSIONS = (
    "provider",
    "model",
    "service_tier",
    "charge_category",
    "project_id",
    "api_key_id",
    "workspace_id",
    "user_id",
    "account_id",
    "resource_id",
)
NONE = "(none)"


class ShowbackError(ValueError):
    """A showback request names an unknown dimension or an invalid period."""


def check_dimensions(dimensions: Sequence[str]) -> None:
    for name in dimensions:
        if name not in ALLOCATION_DIMENSIONS and name not in USAGE_DIMENSIONS and not name.startswith("tag:"):
            allowed = ", ".join([*ALLOCATION_DIMENSIONS, *USAGE_DIMENSIONS, "tag:<key>"])
            raise ShowbackError(f"unknown dimension {name!r}; allowed: {allowed}")


def local_date(period_start: datetime, period_end: datetime, zone: ZoneInfo) -> date:
    middle = period_start + (period_end - period_start) / 2
    return middle.astimezone(zone).date()


def period_label(day: date, period: Period) -> str:
    if period == "day":
        return day.isoformat()
    if period == "month":
        return day.strftime("%Y-%m")
    return "total"


@dataclass
class Showback:
    tenant: str
    dimensions: tuple[str, ...]
    period: Period
    currency: str | None
    time_zone: str
    totals: dict[tuple[str, tuple[str, ...], str], Decimal] = field(default_factory=dict)
    unconverted: dict[str, Decimal] = field(default_factory=dict)

    def rows(self) -> list[dict[str, str]]:
        return [
            {
                "period": period,
                **dict(zip(self.dimensions, keys, strict=True)),
                "currency": currency,
                "amount": str(amount),
            }
            for (period, keys, currency), amount in sorted(self.totals.items())
        ]


def _dimension(name: str, row: Any, share: dict[str, Any], dimensions: dict[str, Any], tags: dict[str, str]) -> str:
    if name in ALLOCATION_DIMENSIONS:
        return str(share["allocation"].get(name) or NONE)
    if name == "model":
        return str(row.priced_model or row.model or NONE)
    if name in ("provider", "service_tier", "charge_category"):
        return str(getattr(row, name))
    if name.startswith("tag:"):
        return tags.get(name[4:], NONE)
    return str(dimensions.get(name) or NONE)


async def build_showback(
    database: Database,
    tenant: str,
    *,
    dimensions: Sequence[str],
    period: Period,
    zone: ZoneInfo,
    currency: str | None = None,
    fx: FxTable | None = None,
    start: date | None = None,
    end: date | None = None,
    charge_categories: Sequence[str] = (),
) -> Showback:
    """Sum each owner's share of every priced or billed cost by period and dimension values.

    With ``charge_categories`` only costs of those categories count (usage, purchase, tax, adjustment, credit,
    refund); without them every category does.
    """
    check_dimensions(dimensions)
    result = Showback(tenant, tuple(dimensions), period, currency, str(zone.key))
    totals: dict[tuple[str, tuple[str, ...], str], Decimal] = defaultdict(Decimal)
    query = select(LEDGER).where(LEDGER.c.tenant == tenant, LEDGER.c.cost_amount.is_not(None))
    if charge_categories:
        query = query.where(LEDGER.c.charge_category.in_(list(charge_categories)))
    async with database.engine.connect() as connection:
        rows = await connection.stream(query)
        async for row in rows:
            day = local_date(row.period_start, row.period_end, zone)
            if (start is not None and day < start) or (end is not None and day >= end):
                continue
            dims = json.loads(row.dimensions_json)
            tags = dims.get("tags") or {}
            for share in json.loads(row.shares_json):
                if share.get("amount") is None:
                    continue
                money = Money.model_validate(share["amount"])
                if currency is not None:
                    converted = money if money.currency == currency else None
                    if fx is not None:
                        converted = fx.convert(money, currency, day)
                    if converted is None:
                        result.unconverted[money.currency] = (
                            result.unconverted.get(money.currency, Decimal(0)) + money.amount
                        )
                    else:
                        money = converted
                keys = tuple(_dimension(name, row, share, dims, tags) for name in dimensions)
                totals[(period_label(day, period), keys, money.currency)] += money.amount
    result.totals = dict(totals)
    return result
