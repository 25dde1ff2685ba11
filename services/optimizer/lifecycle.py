"""The recommendation lifecycle as plain functions: list, accept, dismiss with a reason, implement, request a ticket.

Allowed status changes::

    open     → accepted, dismissed, implemented
    accepted → dismissed, implemented
    dismissed → open        (reopen)
    implemented             (final)

Every change stores a new revision, a history row and a ``savings.recommended``
event in the optimizer's outbox in one transaction, then sends the event. If the
broker is down, the service's relay sends it later. Requesting a ticket
publishes a revision with ``ticket_requested`` true, which the risk service
turns into an ITSM ticket.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from services.optimizer.realised import measure_realised
from services.optimizer.store import HISTORY, TABLE, bump, event_for, outgoing, record_status_change
from services.optimizer.tables import TABLES
from shared.db import Database
from shared.events import SavingsRecommended, utc_now
from shared.kafka import EventPublisher
from shared.logging import get_logger
from shared.outbox import Outbox
from shared.settings import ServiceSettings

log = get_logger(__name__)

STATUSES = ("open", "accepted", "dismissed", "implemented")
TRANSITIONS: dict[str, tuple[str, ...]] = {
    "open": ("accepted", "dismissed", "implemented"),
    "accepted": ("dismissed", "implemented"),
    "dismissed": ("open",),
    "implemented": (),
}
MIN_ID_PREFIX = 8


class LifecycleError(ValueError):
    """A lifecycle request cannot be applied; the message explains why and lists what is allowed."""


class RecommendationNotFound(LifecycleError):
    """No recommendation of the tenant has the requested id or id prefix."""


class AmbiguousRecommendationId(LifecycleError):
    """A shortened recommendation id matches more than one recommendation."""


@dataclass(frozen=True, slots=True)
class RecommendationView:
    """A recommendation as the command line and the report show it."""

    recommendation_id: str
    kind: str
    scope: str
    status: str
    estimated_monthly_savings: Decimal
    currency: str
    confidence: str
    arithmetic: str
    caveat: str | None
    revision: int
    ticket_requested: bool
    status_reason: str | None
    status_changed_by: str | None
    status_changed_at: datetime | None
    baseline_amount: Decimal | None
    baseline_period: str | None
    realised_amount: Decimal | None
    realised_arithmetic: str | None
    evidence: tuple[str, ...]
    price_rows: tuple[str, ...]

    def as_json(self) -> dict[str, Any]:
        return {
            "recommendation_id": self.recommendation_id,
            "kind": self.kind,
            "scope": self.scope,
            "status": self.status,
            "estimated_monthly_savings": str(self.estimated_monthly_savings),
            "currency": self.currency,
            "confidence": self.confidence,
            "arithmetic": self.arithmetic,
            "caveat": self.caveat,
            "revision": self.revision,
            "ticket_requested": self.ticket_requested,
            "status_reason": self.status_reason,
            "status_changed_by": self.status_changed_by,
            "status_changed_at": self.status_changed_at.isoformat() if self.status_changed_at else None,
            "baseline_monthly_cost": str(self.baseline_amount) if self.baseline_amount is not None else None,
            "baseline_period": self.baseline_period,
            "realised_monthly_savings": str(self.realised_amount) if self.realised_amount is not None else None,
            "realised_arithmetic": self.realised_arithmetic,
            "evidence_event_ids": list(self.evidence),
            "price_row_ids": list(self.price_rows),
        }


def _view(row: Any) -> RecommendationView:
    return RecommendationView(
        recommendation_id=row.recommendation_id,
        kind=row.kind,
        scope=row.scope,
        status=row.status,
        estimated_monthly_savings=row.savings_amount,
        currency=row.currency,
        confidence=row.confidence,
        arithmetic=row.arithmetic,
        caveat=row.caveat,
        revision=row.revision,
        ticket_requested=bool(row.ticket_requested),
        status_reason=row.status_reason,
        status_changed_by=row.status_changed_by,
        status_changed_at=row.status_changed_at,
        baseline_amount=row.baseline_amount,
        baseline_period=row.baseline_period,
        realised_amount=row.realised_amount,
        realised_arithmetic=row.realised_arithmetic,
        evidence=tuple(json.loads(row.evidence_json)),
        price_rows=tuple(json.loads(row.price_rows_json or "[]")),
    )


async def list_recommendations(
    database: Database, tenant: str, *, status: str | None = None, kind: str | None = None
) -> list[RecommendationView]:
    """Return the tenant's recommendations, largest estimated savings first."""
    if status is not None and status not in STATUSES:
        raise LifecycleError(f"unknown status {status!r}; use one of {', '.join(STATUSES)}")
    conditions = [TABLE.c.tenant == tenant]
    if status is not None:
        conditions.append(TABLE.c.status == status)
    if kind is not None:
        conditions.append(TABLE.c.kind == kind)
    async with database.engine.connect() as connection:
        rows = (await connection.execute(select(TABLE).where(*conditions))).all()
    views = [_view(row) for row in rows]
    return sorted(views, key=lambda view: (-view.estimated_monthly_savings, view.kind, view.scope))


async def history(database: Database, tenant: str, recommendation_id: str) -> list[dict[str, Any]]:
    """Return the status changes of one recommendation, oldest first."""
    async with database.engine.connect() as connection:
        identifier = await _resolve(connection, tenant, recommendation_id)
        rows = (
            await connection.execute(
                select(HISTORY).where(HISTORY.c.recommendation_id == identifier).order_by(HISTORY.c.revision)
            )
        ).all()
    return [
        {
            "revision": row.revision,
            "status": row.status,
            "reason": row.reason,
            "changed_by": row.changed_by,
            "changed_at": row.changed_at.isoformat(),
        }
        for row in rows
    ]


async def _resolve(connection: AsyncConnection, tenant: str, recommendation_id: str) -> str:
    """Return the full id of a recommendation given its id or a unique prefix of at least 8 characters."""
    if len(recommendation_id) < MIN_ID_PREFIX:
        raise LifecycleError(
            f"recommendation id {recommendation_id!r} is too short; give at least {MIN_ID_PREFIX} characters"
        )
    rows = (
        await connection.execute(
            select(TABLE.c.recommendation_id).where(
                TABLE.c.tenant == tenant, TABLE.c.recommendation_id.startswith(recommendation_id, autoescape=True)
            )
        )
    ).all()
    if not rows:
        raise RecommendationNotFound(f"no recommendation {recommendation_id!r} for tenant {tenant!r}")
    if len(rows) > 1:
        raise AmbiguousRecommendationId(
            f"recommendation id {recommendation_id!r} matches {len(rows)} recommendations; give more of it"
        )
    return str(rows[0].recommendation_id)


async def change_status(
    database: Database,
    outbox: Outbox,
    tenant: str,
    recommendation_id: str,
    status: str,
    *,
    by: str | None = None,
    reason: str | None = None,
) -> SavingsRecommended:
    """Move a recommendation to ``status``; dismissals need a reason. Returns the event of the new revision."""
    if status not in STATUSES:
        raise LifecycleError(f"unknown status {status!r}; use one of {', '.join(STATUSES)}")
    reason = reason.strip() if reason else None
    if status == "dismissed" and not reason:
        raise LifecycleError("a dismissal needs a reason, such as 'quality too low on the sample set'")
    async with database.transaction() as connection:
        identifier = await _resolve(connection, tenant, recommendation_id)
        row = (await connection.execute(select(TABLE).where(TABLE.c.recommendation_id == identifier))).one()
        if status not in TRANSITIONS[row.status]:
            allowed = ", ".join(TRANSITIONS[row.status]) or "nothing (it is final)"
            raise LifecycleError(
                f"recommendation {identifier} is {row.status}; it can move to {allowed}, not to {status}"
            )
        now = utc_now()
        values: dict[str, Any] = {
            "status": status,
            "status_reason": reason,
            "status_changed_by": by,
            "status_changed_at": now,
            "updated_at": now,
        }
        if status == "implemented":
            values["implemented_at"] = now
        revision = await bump(connection, identifier, **values)
        await record_status_change(connection, identifier, revision, status, reason, by)
        event = await event_for(connection, identifier)
        await outbox.add(connection, outgoing([event]))
    await _send(outbox, event)
    log.info(
        "recommendation.status_changed",
        recommendation_id=identifier,
        status=status,
        revision=event.revision,
        changed_by=by,
    )
    return event


async def request_ticket(
    database: Database, outbox: Outbox, tenant: str, recommendation_id: str, *, by: str | None = None
) -> SavingsRecommended:
    """Publish a revision with ``ticket_requested`` true so the risk service opens an ITSM ticket for it."""
    async with database.transaction() as connection:
        identifier = await _resolve(connection, tenant, recommendation_id)
        row = (await connection.execute(select(TABLE).where(TABLE.c.recommendation_id == identifier))).one()
        if row.ticket_requested:
            raise LifecycleError(f"a ticket was already requested for recommendation {identifier}")
        revision = await bump(connection, identifier, ticket_requested=True, updated_at=utc_now())
        await record_status_change(connection, identifier, revision, row.status, "ticket requested", by)
        event = await event_for(connection, identifier)
        await outbox.add(connection, outgoing([event]))
    await _send(outbox, event)
    log.info("recommendation.ticket_requested", recommendation_id=identifier, revision=event.revision, changed_by=by)
    return event


async def measure_now(database: Database, outbox: Outbox, tenant: str, recommendation_id: str) -> SavingsRecommended:
    """Measure an implemented recommendation's realised savings now and publish them if they changed."""
    async with database.transaction() as connection:
        identifier = await _resolve(connection, tenant, recommendation_id)
        row = (await connection.execute(select(TABLE).where(TABLE.c.recommendation_id == identifier))).one()
        if row.status != "implemented":
            raise LifecycleError(f"recommendation {identifier} is {row.status}; only implemented ones are measured")
        measured = await measure_realised(connection, row)
        if measured is None or measured == (row.realised_amount, row.realised_arithmetic):
            return await event_for(connection, identifier)
        await bump(
            connection, identifier, realised_amount=measured[0], realised_arithmetic=measured[1], updated_at=utc_now()
        )
        event = await event_for(connection, identifier)
        await outbox.add(connection, outgoing([event]))
    await _send(outbox, event)
    return event


async def _send(outbox: Outbox, event: SavingsRecommended) -> None:
    try:
        await outbox.send_now(outgoing([event]))
    except Exception as error:  # stored in the outbox: the optimizer service's relay sends it later
        log.warning("recommendation.send_deferred", recommendation_id=event.recommendation_id, error=repr(error)[:300])


@asynccontextmanager
async def optimizer_outbox(settings: ServiceSettings) -> AsyncIterator[tuple[Database, Outbox]]:
    """Open the optimizer's database and outbox from another process, such as the command line.

    When the broker cannot be reached, changes are still stored and the optimizer service's relay sends their
    events once it runs.
    """
    database = Database(settings.database_url_for("optimizer"))
    publisher = EventPublisher(settings.kafka_bootstrap_servers, client_id="aifinops-recommendations")
    sender: Any = publisher
    try:
        await database.create_tables(TABLES)
        try:
            await publisher.start()
        except Exception as error:  # the broker is down: store now, let the service's relay send later
            log.warning("recommendations.broker_unavailable", error=repr(error)[:300])
            # EventPublisher.stop only stops a started producer; this one half-started and must close too.
            await publisher._producer.stop()  # noqa: SLF001
            sender = _UnavailablePublisher(repr(error))
        yield database, Outbox("optimizer", database, sender)
    finally:
        await publisher.stop()
        await database.dispose()


class _UnavailablePublisher:
    """Stands in for a publisher that could not connect, so sending fails at once instead of waiting."""

    def __init__(self, reason: str) -> None:
        self.reason = reason

    async def publish(self, events: Any) -> None:
        raise ConnectionError(f"the broker is unavailable: {self.reason}")
