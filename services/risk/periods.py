"""Calendar periods and days in a tenant's time zone, with their bounds in UTC.

A budget month or an anomaly day starts at local midnight, so its UTC bounds move with the zone and with
daylight-saving changes: a local day can last 23 or 25 hours.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

SECONDS_PER_DAY = Decimal(86400)


@dataclass(frozen=True, slots=True)
class Period:
    key: str  # '2026-11' for a month, '2026-Q4' for a quarter
    start: datetime  # inclusive, UTC
    end: datetime  # exclusive, UTC

    def days(self) -> Decimal:
        return Decimal(int((self.end - self.start).total_seconds())) / SECONDS_PER_DAY


def local_midnight(day: date, zone: ZoneInfo) -> datetime:
    return datetime.combine(day, time(0), tzinfo=zone).astimezone(UTC)


def local_day(moment: datetime, zone: ZoneInfo) -> date:
    return moment.astimezone(zone).date()


def day_bounds(day: date, zone: ZoneInfo) -> tuple[datetime, datetime]:
    return local_midnight(day, zone), local_midnight(day + timedelta(days=1), zone)


def period_of(moment: datetime, kind: str, zone: ZoneInfo) -> Period:
    """Return the monthly or quarterly period that contains a moment, in the given time zone."""
    local = moment.astimezone(zone)
    if kind == "monthly":
        first = date(local.year, local.month, 1)
        following = date(local.year + local.month // 12, local.month % 12 + 1, 1)
        key = f"{local.year:04d}-{local.month:02d}"
    elif kind == "quarterly":
        quarter = (local.month - 1) // 3
        first = date(local.year, quarter * 3 + 1, 1)
        following = date(local.year + (quarter == 3), (quarter * 3 + 3) % 12 + 1, 1)
        key = f"{local.year:04d}-Q{quarter + 1}"
    else:
        raise ValueError(f"unknown period kind {kind!r}; expected monthly or quarterly")
    return Period(key, local_midnight(first, zone), local_midnight(following, zone))
