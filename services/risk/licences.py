"""Licence exposure of AI tools sold per seat: seats paid for but unused, and seats assigned versus entitled.

Seat activity reports list every assigned seat with its last activity. The newest report of a product is its
roster, so a seat missing from it is no longer assigned. A seat is unused when its last activity is more than
30 days before the report, or it was never used. Seats with a cancellation pending are counted apart, because
they stop costing money by themselves. When no per-seat report exists, the vendor's own count of inactive
seats in the entitlement report, less those pending cancellation, is used instead, with the vendor's definition
(GitHub counts a billing cycle). Assigned seats are compared with entitled ones only when both reports are of
the same day, because a roster and seat totals of different days describe different sets of seats. The
optimizer's unused-seat recommendation (``services/optimizer/seats.py``) counts by the same rules: its unused
seats are this finding's unused seats plus the mismatch finding's paid seats that are not assigned.
The monthly exposure is the seat price times the seats in question; the price comes from the entitlement
report, else from a seat licence in the contracts file.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from services.risk.contracts import Contract, seat_price_for
from services.risk.findings import Detection, finding_id
from services.risk.tables import RiskSeat, RiskSeatEntitlement
from shared.db import insert_new_rows
from shared.events import SeatActivityReported, SeatEntitlementReported, Severity

UNUSED_AFTER = timedelta(days=30)

SEATS = RiskSeat.__table__  # type: ignore[attr-defined]
ENTITLEMENTS = RiskSeatEntitlement.__table__  # type: ignore[attr-defined]


async def store_seats(connection: AsyncConnection, events: list[SeatActivityReported]) -> set[tuple[str, str, str]]:
    """Keep each seat's newest report; return the (tenant, vendor, product) keys that changed."""
    touched: set[tuple[str, str, str]] = set()
    for event in sorted(events, key=lambda item: item.as_of):
        row = {
            "tenant": event.tenant,
            "vendor": event.vendor,
            "product": event.product,
            "seat_holder": event.seat_holder,
            "as_of": event.as_of,
            "last_activity_at": event.last_activity_at,
            "pending_cancellation_date": event.pending_cancellation_date,
            "assigning_team": event.assigning_team,
            "event_id": event.event_id,
        }
        keys = ["tenant", "vendor", "product", "seat_holder"]
        if not await insert_new_rows(connection, SEATS, [row], keys):
            result = await connection.execute(
                update(SEATS)
                .where(*(SEATS.c[key] == row[key] for key in keys), SEATS.c.as_of < event.as_of)
                .values(**row)
            )
            if not result.rowcount:
                continue
        touched.add((event.tenant, event.vendor, event.product))
    return touched


async def store_entitlements(
    connection: AsyncConnection, events: list[SeatEntitlementReported]
) -> set[tuple[str, str, str]]:
    """Keep each product's newest entitlement report; return the keys that changed."""
    touched: set[tuple[str, str, str]] = set()
    for event in sorted(events, key=lambda item: item.as_of):
        row = {
            "tenant": event.tenant,
            "vendor": event.vendor,
            "product": event.product,
            "as_of": event.as_of,
            "entitled_seats": event.entitled_seats,
            "active_seats": event.active_seats,
            "inactive_seats": event.inactive_seats,
            "pending_cancellation_seats": event.pending_cancellation_seats,
            "seat_price_amount": event.seat_price.amount if event.seat_price else None,
            "seat_price_currency": event.seat_price.currency if event.seat_price else None,
            "event_id": event.event_id,
        }
        keys = ["tenant", "vendor", "product"]
        if not await insert_new_rows(connection, ENTITLEMENTS, [row], keys):
            result = await connection.execute(
                update(ENTITLEMENTS)
                .where(*(ENTITLEMENTS.c[key] == row[key] for key in keys), ENTITLEMENTS.c.as_of < event.as_of)
                .values(**row)
            )
            if not result.rowcount:
                continue
        touched.add((event.tenant, event.vendor, event.product))
    return touched


@dataclass(frozen=True, slots=True)
class Roster:
    as_of: datetime
    holders: list[Any]


async def _roster(connection: AsyncConnection, tenant: str, vendor: str, product: str) -> Roster | None:
    key = (SEATS.c.tenant == tenant, SEATS.c.vendor == vendor, SEATS.c.product == product)
    newest = (await connection.execute(select(func.max(SEATS.c.as_of)).where(*key))).scalar()
    if newest is None:
        return None
    rows = (
        await connection.execute(select(SEATS).where(*key, SEATS.c.as_of == newest).order_by(SEATS.c.seat_holder))
    ).all()
    return Roster(newest, list(rows))


async def licence_detections(
    connection: AsyncConnection, tenant: str, vendor: str, product: str, contracts: list[Contract]
) -> tuple[list[Detection], dict[str, str]]:
    """Return the licence findings of a product's latest seat reports, and the ids of those the reports clear.

    A finding is cleared when the latest reports were checked for it and no longer show it. The reason is given
    with it: no unused seats in the seat list or the vendor's count, or a seat list and totals of one day that agree.
    """
    roster = await _roster(connection, tenant, vendor, product)
    entitlement = (
        await connection.execute(
            select(ENTITLEMENTS).where(
                ENTITLEMENTS.c.tenant == tenant, ENTITLEMENTS.c.vendor == vendor, ENTITLEMENTS.c.product == product
            )
        )
    ).first()
    price: tuple[Decimal, str] | None = None
    if entitlement is not None and entitlement.seat_price_amount is not None:
        price = (entitlement.seat_price_amount, entitlement.seat_price_currency)
    else:
        price = seat_price_for(contracts, tenant, vendor, product)
    detections = []
    cleared: dict[str, str] = {}
    unused = _unused_seats(tenant, vendor, product, roster, entitlement, price)
    if unused is not None:
        detections.append(unused)
    elif roster is not None or entitlement is not None:
        as_of = roster.as_of if roster is not None else entitlement.as_of
        cleared[finding_id(tenant, "licence_unused", vendor, product)] = (
            f"the seat report of {as_of.date().isoformat()} shows no unused {product} seats"
        )
    mismatch = _seat_mismatch(tenant, vendor, product, roster, entitlement, price)
    if mismatch is not None:
        detections.append(mismatch)
    elif roster is not None and _same_day(roster, entitlement):
        cleared[finding_id(tenant, "licence_mismatch", vendor, product)] = (
            f"the seat report of {roster.as_of.date().isoformat()} shows as many {product} seats assigned as paid for"
        )
    return detections, cleared


def _same_day(roster: Roster | None, entitlement: Any) -> bool:
    return roster is not None and entitlement is not None and roster.as_of.date() == entitlement.as_of.date()


def _exposure(seats: int, price: tuple[Decimal, str] | None) -> str:
    if price is None:
        return "unknown: no seat price in the entitlement report or the contracts file"
    return f"{seats * price[0]} {price[1]} a month ({seats} × {price[0]})"


def _unused_seats(
    tenant: str, vendor: str, product: str, roster: Roster | None, entitlement: Any, price: tuple[Decimal, str] | None
) -> Detection | None:
    subject = f"licence:{vendor}/{product}"
    if roster is not None:
        cutoff = roster.as_of - UNUSED_AFTER
        cancelling = [seat for seat in roster.holders if seat.pending_cancellation_date]
        idle = [
            seat
            for seat in roster.holders
            if not seat.pending_cancellation_date and (seat.last_activity_at is None or seat.last_activity_at < cutoff)
        ]
        if not idle:
            return None
        never = sum(1 for seat in idle if seat.last_activity_at is None)
        facts = {
            "vendor": vendor,
            "product": product,
            "as_of": roster.as_of.isoformat(),
            "seats_assigned": str(len(roster.holders)),
            "unused_30_days": str(len(idle)),
            "never_used": str(never),
            "pending_cancellation": str(len(cancelling)),
            "unused_seat_holders": ", ".join(seat.seat_holder for seat in idle[:50]),
            "monthly_exposure": _exposure(len(idle), price),
            "basis": "last activity before as_of − 30 days, or none",
        }
        evidence = tuple(seat.event_id for seat in idle)
        count, total, as_of = len(idle), len(roster.holders), roster.as_of
        if _same_day(roster, entitlement):
            facts["seats_entitled"] = str(entitlement.entitled_seats)
    elif entitlement is not None and entitlement.inactive_seats:
        pending = entitlement.pending_cancellation_seats or 0
        count = max(0, entitlement.inactive_seats - pending)
        if count == 0:
            return None
        facts = {
            "vendor": vendor,
            "product": product,
            "as_of": entitlement.as_of.isoformat(),
            "entitled_seats": str(entitlement.entitled_seats),
            "inactive_seats": str(entitlement.inactive_seats),
            "pending_cancellation": str(pending),
            "monthly_exposure": _exposure(count, price),
            "basis": "the vendor's count of inactive seats in its billing report, less those pending cancellation",
        }
        evidence = (entitlement.event_id,)
        total, as_of = entitlement.entitled_seats, entitlement.as_of
    else:
        return None
    return Detection(
        finding_id=finding_id(tenant, "licence_unused", vendor, product),
        tenant=tenant,
        kind="licence_unused_seats",
        severity=Severity.MEDIUM,
        subject=subject,
        title=f"{count} of {total} {product} seats are unused",
        facts=facts,
        interpretation="These seats are paid for every month but nobody uses them; reclaim them or cancel them "
        "before the next billing cycle.",
        evidence_event_ids=evidence,
        occurrence=as_of.isoformat(),
    )


def _seat_mismatch(
    tenant: str, vendor: str, product: str, roster: Roster | None, entitlement: Any, price: tuple[Decimal, str] | None
) -> Detection | None:
    if roster is None or entitlement is None or not _same_day(roster, entitlement):
        return None
    assigned, entitled = len(roster.holders), entitlement.entitled_seats
    if assigned == entitled:
        return None
    facts = {
        "vendor": vendor,
        "product": product,
        "seats_assigned": str(assigned),
        "seats_entitled": str(entitled),
        "roster_as_of": roster.as_of.isoformat(),
        "entitlement_as_of": entitlement.as_of.isoformat(),
    }
    if assigned > entitled:
        facts["monthly_exposure"] = _exposure(assigned - entitled, price)
        title = f"{assigned} {product} seats are assigned but only {entitled} are paid for"
        reading = "More seats are in use than the licence covers; expect a true-up charge or remove seats."
        severity = Severity.HIGH
    else:
        facts["monthly_exposure"] = _exposure(entitled - assigned, price)
        title = f"{entitled - assigned} of {entitled} paid {product} seats are not assigned to anyone"
        reading = "Paid seats sit unassigned; lower the seat count at the next change window."
        severity = Severity.MEDIUM
    return Detection(
        finding_id=finding_id(tenant, "licence_mismatch", vendor, product),
        tenant=tenant,
        kind="licence_seat_mismatch",
        severity=severity,
        subject=f"licence:{vendor}/{product}",
        title=title,
        facts=facts,
        interpretation=reading,
        evidence_event_ids=(entitlement.event_id,) + tuple(seat.event_id for seat in roster.holders[:50]),
        occurrence=max(roster.as_of, entitlement.as_of).isoformat(),
    )
