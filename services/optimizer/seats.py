"""Unused seats and overlapping AI tools, priced per seat and month.

Unused seats follow the same rule as risk's licence findings (``services/risk/licences.py``),
so a recommendation and a finding about one seat report state the same counts. With a
per-seat report, the unused seats are the assigned seats whose last activity is more
than ``unused_after_days`` days before the report (or never) and no cancellation is
pending, plus the paid seats nobody is assigned (entitled − assigned) when the seat
totals are of the same day as the per-seat report. Without a per-seat report, the
vendor's count of inactive seats less those pending cancellation stands in.

Overlapping tools: a person with seats in two products of one category (two coding
assistants, say) needs one. The seats other than the most recently used one are the
saving.

A seat's price is the one the licence report states, else the list price in
``shared/data/seat_prices.csv``. A seat without a known price is left out of the
estimate, never priced at zero.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from services.optimizer.estimates import Estimate, format_number
from services.optimizer.policy import OptimizerPolicy

MAX_NAMED_SEATS = 10


@dataclass(frozen=True, slots=True)
class Seat:
    vendor: str
    product: str
    holder: str
    as_of: datetime
    last_activity_at: datetime | None
    plan: str | None
    pending_cancellation_date: str | None
    event_id: str


@dataclass(frozen=True, slots=True)
class Entitlement:
    vendor: str
    product: str
    as_of: datetime
    entitled_seats: int
    active_seats: int | None
    inactive_seats: int | None
    pending_cancellation_seats: int | None
    event_id: str


@dataclass(frozen=True, slots=True)
class SeatCost:
    """The price of one seat for one month and where it comes from."""

    amount: Decimal
    currency: str
    row_id: str
    source: str


# Returns the seat price of (vendor, product, plan), or None when no price is known.
PriceLookup = Callable[[str, str, str | None], SeatCost | None]


def latest_seats(seats: Sequence[Seat]) -> list[Seat]:
    """Return the seats of the most recent report; seats missing from it were removed since."""
    if not seats:
        return []
    latest = max(seat.as_of for seat in seats)
    return sorted((seat for seat in seats if seat.as_of == latest), key=lambda seat: seat.holder)


def is_idle(seat: Seat, unused_after_days: int) -> bool:
    """Tell whether a seat had no activity in the ``unused_after_days`` days before its report, or never."""
    if seat.last_activity_at is None:
        return True
    return seat.last_activity_at < seat.as_of - timedelta(days=unused_after_days)


def _common_plan(seats: Sequence[Seat]) -> str | None:
    plans = [seat.plan for seat in seats if seat.plan]
    return max(sorted(set(plans)), key=plans.count) if plans else None


def unused_seats_estimate(
    vendor: str,
    product: str,
    seats: Sequence[Seat],
    entitlement: Entitlement | None,
    price_of: PriceLookup,
    policy: OptimizerPolicy,
) -> tuple[Estimate, int, SeatCost] | None:
    """Return the estimate, the unused seat count and the seat price, or None when nothing is unused or priced."""
    current = latest_seats(seats)
    price = price_of(vendor, product, _common_plan(current))
    if price is None:
        return None

    idle = [
        seat
        for seat in current
        if seat.pending_cancellation_date is None and is_idle(seat, policy.seats_unused_after_days)
    ]
    evidence: tuple[str, ...]
    if current:
        as_of = current[0].as_of
        # Seat totals of another day describe another roster, so only totals of the same day add unassigned seats.
        totals = entitlement if entitlement is not None and entitlement.as_of.date() == as_of.date() else None
        unassigned = max(0, totals.entitled_seats - len(current)) if totals is not None else 0
        unused = len(idle) + unassigned
        entitled = f"{totals.entitled_seats} entitled, " if totals is not None else ""
        count_line = (
            f"seat report as of {as_of.date().isoformat()}: {entitled}{len(current)} assigned, {len(idle)} assigned "
            f"without activity in the {policy.seats_unused_after_days} days before it and no cancellation pending"
        )
        if unassigned:
            count_line += f"; unused = {len(idle)} + {unassigned} not assigned = {unused}"
        evidence = tuple(seat.event_id for seat in idle)
        if totals is not None:
            evidence = (totals.event_id, *evidence)
    elif entitlement is not None and entitlement.inactive_seats is not None:
        pending = entitlement.pending_cancellation_seats or 0
        unused = max(0, entitlement.inactive_seats - pending)
        count_line = (
            f"seat totals as of {entitlement.as_of.date().isoformat()}: {entitlement.entitled_seats} entitled, "
            f"{entitlement.active_seats if entitlement.active_seats is not None else 'unknown'} active, "
            f"{entitlement.inactive_seats} inactive this cycle, {pending} pending cancellation; "
            f"unused = {entitlement.inactive_seats} − {pending} = {unused}"
        )
        evidence = (entitlement.event_id,)
    else:
        return None
    if unused == 0:
        return None

    named = [
        f"{seat.holder} (last active {seat.last_activity_at.date().isoformat() if seat.last_activity_at else 'never'})"
        for seat in idle[:MAX_NAMED_SEATS]
    ]
    savings = price.amount * unused
    lines = [
        f"unused seats of {vendor}/{product}:",
        count_line,
        *([f"seats without recent activity: {', '.join(named)}"] if named else []),
        f"seat price: {format_number(price.amount)} {price.currency} a month ({price.source})",
        f"estimated monthly savings = {unused} × {format_number(price.amount)} = {format_number(savings)} "
        f"{price.currency}",
    ]
    return Estimate(savings, price.currency, "\n".join(lines), evidence, (price.row_id,)), unused, price


@dataclass(frozen=True, slots=True)
class Overlap:
    holder: str
    kept_seat: Seat
    redundant: tuple[Seat, ...]


def find_overlaps(seats: Sequence[Seat]) -> list[Overlap]:
    """Find people who hold seats in more than one product; keep each one's most recently used seat."""
    by_holder: dict[str, list[Seat]] = defaultdict(list)
    for seat in seats:
        by_holder[seat.holder.casefold()].append(seat)

    overlaps = []
    for holder, holder_seats in sorted(by_holder.items()):
        if len({(seat.vendor, seat.product) for seat in holder_seats}) < 2:
            continue
        # Most recent activity first; a never-used seat sorts last; the product name breaks ties.
        ordered = sorted(
            holder_seats,
            key=lambda seat: (
                -(seat.last_activity_at.timestamp() if seat.last_activity_at else float("-inf")),
                seat.vendor,
                seat.product,
            ),
        )
        overlaps.append(Overlap(holder, ordered[0], tuple(ordered[1:])))
    return overlaps


def overlapping_tools_estimate(
    category: str, seats: Sequence[Seat], price_of: PriceLookup
) -> tuple[Estimate, list[Overlap]] | None:
    """Estimate the saving from one seat per person in ``category``; ``seats`` are the latest seats of its products."""
    overlaps = find_overlaps(seats)

    lines = []
    amounts: list[Decimal] = []
    currency: str | None = None
    price_rows: set[str] = set()
    evidence: list[str] = []
    unpriced: list[str] = []
    for overlap in overlaps:
        for seat in overlap.redundant:
            price = price_of(seat.vendor, seat.product, seat.plan)
            if price is None or (currency is not None and price.currency != currency):
                unpriced.append(f"{seat.holder} on {seat.vendor}/{seat.product}")
                continue
            currency = price.currency
            amounts.append(price.amount)
            price_rows.add(price.row_id)
            evidence += [overlap.kept_seat.event_id, seat.event_id]
            kept_activity = overlap.kept_seat.last_activity_at
            seat_activity = seat.last_activity_at
            lines.append(
                f"{seat.holder}: keeps {overlap.kept_seat.vendor}/{overlap.kept_seat.product} (last active "
                f"{kept_activity.date().isoformat() if kept_activity else 'never'}), drops {seat.vendor}/"
                f"{seat.product} (last active {seat_activity.date().isoformat() if seat_activity else 'never'}) "
                f"at {format_number(price.amount)} {price.currency}"
            )

    total = sum(amounts, Decimal(0))
    if currency is None or total <= 0:
        return None
    header = f"people holding more than one {category} seat: {len(lines)} redundant seats"
    tail = [f"left out, no price in {currency}: {', '.join(unpriced)}"] if unpriced else []
    arithmetic = "\n".join(
        [
            header,
            *lines,
            *tail,
            f"estimated monthly savings = {' + '.join(format_number(amount) for amount in amounts)} = "
            f"{format_number(total)} {currency}",
        ]
    )
    return Estimate(total, currency, arithmetic, tuple(dict.fromkeys(evidence)), tuple(sorted(price_rows))), overlaps
