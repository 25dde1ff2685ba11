"""Storing recommendations: one row per recommendation, a new revision and event for every change.

A recommendation's id comes from its tenant and identity (by default its kind and
scope), so a recomputation updates the open recommendation rather than repeating
it. Each recomputation ("origin", such as one team's use of one model) owns the
recommendations it produced. When it no longer finds one that is still open or
accepted, that one's savings drop to zero with the reason written out. Dismissed
and implemented recommendations keep the estimate they had: a dismissal is not
reopened by new usage, and an implemented one is measured instead (see
``services.optimizer.realised``). Revisions are incremented in the database, so
the service and the command line can both change a recommendation without
issuing one revision number twice.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from services.optimizer.estimates import Estimate
from services.optimizer.tables import OptimizerRecommendation, OptimizerRecommendationHistory
from shared.db import insert_new_rows
from shared.events import Money, RecommendationKind, SavingsRecommended, utc_now
from shared.kafka import OutgoingEvent
from shared.topics import Topic

RECOMMENDATION_NAMESPACE = uuid.UUID("9d3a7c15-2b6e-5f48-a0c1-6e8d4f2b7a93")
MAX_EVIDENCE_IDS = 200
LIVE_STATUSES = ("open", "accepted")

TABLE = OptimizerRecommendation.__table__  # type: ignore[attr-defined]
HISTORY = OptimizerRecommendationHistory.__table__  # type: ignore[attr-defined]


@dataclass(frozen=True)
class Proposal:
    """A recommendation as a recomputation found it, with the baseline that realised savings are measured against."""

    kind: RecommendationKind
    scope: str
    estimate: Estimate
    confidence: str
    caveat: str | None
    identity: str | None = None  # defaults to 'kind|scope'; GPU recommendations keep one id across kinds
    baseline_amount: Decimal | None = None
    baseline_period: str | None = None
    measure: dict[str, Any] = field(default_factory=dict)


def recommendation_id(tenant: str, identity: str) -> str:
    return str(uuid.uuid5(RECOMMENDATION_NAMESPACE, f"{tenant}|{identity}"))


def _identity(proposal: Proposal) -> str:
    return proposal.identity or f"{proposal.kind.value}|{proposal.scope}"


def outgoing(events: list[SavingsRecommended]) -> list[OutgoingEvent]:
    return [OutgoingEvent.of(Topic.SAVINGS_RECOMMENDED, item, key=item.scope) for item in events]


async def save_proposals(
    connection: AsyncConnection, tenant: str, origin: str, proposals: list[Proposal]
) -> list[SavingsRecommended]:
    """Store what one recomputation found and withdraw its live recommendations that it no longer finds."""
    events: list[SavingsRecommended] = []
    found_ids: set[str] = set()
    for proposal in proposals:
        identifier = recommendation_id(tenant, _identity(proposal))
        found_ids.add(identifier)
        event = await _save(connection, tenant, origin, identifier, proposal)
        if event is not None:
            events.append(event)
    events += await _withdraw_missing(connection, tenant, origin, found_ids)
    return events


async def _save(
    connection: AsyncConnection, tenant: str, origin: str, identifier: str, proposal: Proposal
) -> SavingsRecommended | None:
    estimate = proposal.estimate
    now = utc_now()
    figures = {
        "kind": proposal.kind.value,
        "scope": proposal.scope,
        "savings_amount": estimate.savings,
        "currency": estimate.currency,
        "confidence": proposal.confidence,
        "arithmetic": estimate.arithmetic,
        "caveat": proposal.caveat,
        "evidence_json": json.dumps(estimate.evidence),
        "price_rows_json": json.dumps(estimate.price_rows),
        "baseline_amount": proposal.baseline_amount,
        "baseline_period": proposal.baseline_period,
        "measure_json": json.dumps(proposal.measure, sort_keys=True),
    }
    inserted = await insert_new_rows(
        connection,
        TABLE,
        [
            {
                "recommendation_id": identifier,
                "tenant": tenant,
                "origin": origin,
                "status": "open",
                "revision": 1,
                "created_at": now,
                "updated_at": now,
                **figures,
            }
        ],
        ["recommendation_id"],
    )
    if inserted:
        await _record_history(connection, identifier, 1, "open", None, None, now)
        return await _event(connection, identifier)

    current = (await connection.execute(select(TABLE).where(TABLE.c.recommendation_id == identifier))).one()
    if current.status not in LIVE_STATUSES:
        return None
    if all(current._mapping[name] == value for name, value in figures.items()) and current.origin == origin:
        return None
    await bump(connection, identifier, origin=origin, updated_at=now, **figures)
    return await _event(connection, identifier)


async def _withdraw_missing(
    connection: AsyncConnection, tenant: str, origin: str, found_ids: set[str]
) -> list[SavingsRecommended]:
    stale = (
        await connection.execute(
            select(TABLE.c.recommendation_id, TABLE.c.arithmetic, TABLE.c.currency).where(
                TABLE.c.tenant == tenant,
                TABLE.c.origin == origin,
                TABLE.c.status.in_(LIVE_STATUSES),
                TABLE.c.savings_amount != Decimal(0),
            )
        )
    ).all()
    events = []
    for row in stale:
        if row.recommendation_id in found_ids:
            continue
        previous = row.arithmetic.splitlines()[0]
        await bump(
            connection,
            row.recommendation_id,
            savings_amount=Decimal(0),
            arithmetic=f"no longer found in the latest data; the last estimate was for: {previous}\n"
            f"estimated monthly savings = 0 {row.currency}",
            updated_at=utc_now(),
        )
        events.append(await _event(connection, row.recommendation_id))
    return events


async def bump(connection: AsyncConnection, identifier: str, **values: Any) -> int:
    """Apply changes to a recommendation and increment its revision in one statement; return the new revision."""
    result = await connection.execute(
        update(TABLE)
        .where(TABLE.c.recommendation_id == identifier)
        .values(revision=TABLE.c.revision + 1, **values)
        .returning(TABLE.c.revision)
    )
    return int(result.scalar_one())


async def _record_history(
    connection: AsyncConnection,
    identifier: str,
    revision: int,
    status: str,
    reason: str | None,
    changed_by: str | None,
    changed_at: datetime,
) -> None:
    await connection.execute(
        HISTORY.insert().values(
            recommendation_id=identifier,
            revision=revision,
            status=status,
            reason=reason,
            changed_by=changed_by,
            changed_at=changed_at,
        )
    )


async def record_status_change(
    connection: AsyncConnection, identifier: str, revision: int, status: str, reason: str | None, by: str | None
) -> None:
    await _record_history(connection, identifier, revision, status, reason, by, utc_now())


async def _event(connection: AsyncConnection, identifier: str) -> SavingsRecommended:
    row = (await connection.execute(select(TABLE).where(TABLE.c.recommendation_id == identifier))).one()
    return event_from_row(row)


async def event_for(connection: AsyncConnection, identifier: str) -> SavingsRecommended:
    """Build the event of a recommendation's current revision."""
    return await _event(connection, identifier)


def event_from_row(row: Any) -> SavingsRecommended:
    currency = row.currency
    return SavingsRecommended(
        event_id=f"recommendation:{row.recommendation_id}:r{row.revision}",
        occurred_at=row.updated_at,
        source="optimizer",
        tenant=row.tenant,
        correlation_id=row.recommendation_id,
        recommendation_id=row.recommendation_id,
        kind=RecommendationKind(row.kind),
        scope=row.scope,
        estimated_monthly_savings=Money(amount=row.savings_amount, currency=currency),
        confidence=row.confidence,
        arithmetic=row.arithmetic,
        caveat=row.caveat,
        evidence_event_ids=tuple(json.loads(row.evidence_json))[:MAX_EVIDENCE_IDS],
        status=row.status,
        ticket_requested=bool(row.ticket_requested),
        revision=row.revision,
        price_row_ids=tuple(json.loads(row.price_rows_json)),
        status_reason=row.status_reason,
        status_changed_by=row.status_changed_by,
        status_changed_at=row.status_changed_at,
        baseline_monthly_cost=(
            Money(amount=row.baseline_amount, currency=currency) if row.baseline_amount is not None else None
        ),
        baseline_period=row.baseline_period,
        realised_monthly_savings=(
            Money(amount=row.realised_amount, currency=currency) if row.realised_amount is not None else None
        ),
        realised_arithmetic=row.realised_arithmetic,
    )
