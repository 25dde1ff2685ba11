"""Finding lifecycle as plain functions, for the CLI, the inbound ITSM webhook and a future API.

Statuses: open, acknowledged, in progress, resolved, accepted risk, false positive. From an active status
(open, acknowledged, in progress) a finding may move to any other status. From a closed one (resolved,
accepted risk, false positive) it may only move back to open. Accepting a risk and marking a false positive
need a reason. Every change records who made it and when, publishes a ``risk.flagged`` revision through the
risk outbox and queues the finding's tickets for an update.

The functions write to the risk service's database. The events they store are sent by the caller's outbox
when it has a publisher, else by the risk service's relay within a few seconds.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from services.risk.findings import CHANGES, FINDINGS, TICKET_OUTBOX, TICKETS, FindingNotFound, FindingStore
from services.risk.tables import TABLES
from shared.db import Database
from shared.events import FindingStatus, RiskFlagged, Severity, utc_now
from shared.outbox import Outbox


class AmbiguousFindingId(FindingNotFound):
    """A shortened finding id matches more than one finding."""


@dataclass(frozen=True)
class FindingChange:
    to_status: FindingStatus
    actor: str
    note: str | None = None


async def resolve_id(connection: AsyncConnection, tenant: str, finding_id: str) -> str:
    """Return the full id of the tenant's finding whose id is or starts with ``finding_id``."""
    if len(finding_id) < 6:
        raise FindingNotFound(f"finding id {finding_id!r} is too short; give at least 6 characters")
    rows = (
        await connection.execute(
            select(FINDINGS.c.finding_id)
            .where(FINDINGS.c.tenant == tenant, FINDINGS.c.finding_id.startswith(finding_id, autoescape=True))
            .limit(2)
        )
    ).all()
    if not rows:
        raise FindingNotFound(f"finding {finding_id} not found in tenant {tenant!r}")
    if len(rows) > 1:
        raise AmbiguousFindingId(f"finding id {finding_id!r} matches several findings; give more characters")
    return str(rows[0].finding_id)


async def change_status(
    database: Database,
    outbox: Outbox | None,
    *,
    tenant: str,
    finding_id: str,
    change: FindingChange,
    synced_system: str | None = None,
    min_ticket_severity: Severity = Severity.MEDIUM,
) -> RiskFlagged:
    """Move a finding to another status; raise FindingError (or FindingNotFound) when the move is not allowed.

    Without an outbox that can publish, the ``risk.flagged`` event is only stored, for the risk service's relay.
    """
    send = outbox is not None
    if outbox is None:
        outbox = Outbox("risk", database, None)  # type: ignore[arg-type]  # stores only; send_now is not called
    store = FindingStore(min_ticket_severity)
    async with database.transaction() as connection:
        full_id = await resolve_id(connection, tenant, finding_id)
        event = await store.change_status(
            connection,
            tenant=tenant,
            finding_id=full_id,
            to_status=change.to_status,
            actor=change.actor,
            note=change.note,
            synced_system=synced_system,
        )
        events = store.take_published()
        await outbox.add(connection, events)
    if send:
        await outbox.send_now(events)
    return event


async def list_findings(
    database: Database, tenant: str, *, statuses: set[str] | None = None, kind: str | None = None
) -> list[dict[str, Any]]:
    """Return the tenant's findings, newest change first, with their ticket keys."""
    async with database.engine.connect() as connection:
        query = select(FINDINGS).where(FINDINGS.c.tenant == tenant)
        if statuses:
            query = query.where(FINDINGS.c.status.in_(sorted(statuses)))
        if kind:
            query = query.where(FINDINGS.c.kind == kind)
        rows = (await connection.execute(query.order_by(FINDINGS.c.updated_at.desc(), FINDINGS.c.finding_id))).all()
        tickets = await _tickets(connection, [row.finding_id for row in rows])
    return [_summary(row) | {"tickets": tickets.get(row.finding_id, [])} for row in rows]


async def show_finding(database: Database, tenant: str, finding_id: str) -> dict[str, Any]:
    """Return one finding with its figures, evidence, tickets and the history of its changes."""
    async with database.engine.connect() as connection:
        full_id = await resolve_id(connection, tenant, finding_id)
        row = (await connection.execute(select(FINDINGS).where(FINDINGS.c.finding_id == full_id))).one()
        changes = (
            await connection.execute(select(CHANGES).where(CHANGES.c.finding_id == full_id).order_by(CHANGES.c.seq))
        ).all()
        tickets = await _tickets(connection, [full_id])
        pending = (await connection.execute(select(TICKET_OUTBOX).where(TICKET_OUTBOX.c.finding_id == full_id))).first()
    return _summary(row) | {
        "facts": json.loads(row.facts_json),
        "interpretation": row.interpretation,
        "evidence_event_ids": json.loads(row.evidence_json),
        "tickets": tickets.get(full_id, []),
        "ticket_work": None
        if pending is None
        else {
            "state": pending.state,
            "attempts": pending.attempts,
            "next_attempt_at": pending.next_attempt_at.isoformat(),
            "last_error": pending.last_error,
        },
        "changes": [
            {
                "revision": change.revision,
                "from_status": change.from_status,
                "to_status": change.to_status,
                "actor": change.actor,
                "note": change.note,
                "at": change.changed_at.isoformat(),
            }
            for change in changes
        ],
    }


async def ticket_backlog(database: Database) -> dict[str, int]:
    """Count findings whose tickets wait to be sent, and those whose last send was rejected."""
    async with database.engine.connect() as connection:
        rows = (await connection.execute(select(TICKET_OUTBOX.c.state))).all()
    return {
        "pending": sum(1 for row in rows if row.state == "pending"),
        "failed": sum(1 for row in rows if row.state == "failed"),
    }


async def retry_failed_tickets(database: Database, tenant: str | None = None) -> int:
    """Queue again the ticket work that an ITSM system rejected; return how many findings were queued."""
    async with database.transaction() as connection:
        statement = update(TICKET_OUTBOX).where(TICKET_OUTBOX.c.state == "failed")
        if tenant is not None:
            statement = statement.where(TICKET_OUTBOX.c.tenant == tenant)
        result = await connection.execute(
            statement.values(state="pending", attempts=0, next_attempt_at=utc_now(), last_error=None)
        )
        return int(result.rowcount or 0)


async def open_database(database: Database) -> Database:
    """Create the risk tables when missing, so the CLI works before the service first ran."""
    await database.create_tables(TABLES)
    return database


async def _tickets(connection: AsyncConnection, finding_ids: list[str]) -> dict[str, list[dict[str, Any]]]:
    found: dict[str, list[dict[str, Any]]] = {}
    for start in range(0, len(finding_ids), 500):
        chunk = finding_ids[start : start + 500]
        rows = await connection.execute(
            select(TICKETS).where(TICKETS.c.finding_id.in_(chunk)).order_by(TICKETS.c.system)
        )
        for row in rows:
            found.setdefault(row.finding_id, []).append(
                {"system": row.system, "key": row.external_key, "url": row.url, "remote_state": row.remote_state}
            )
    return found


def _summary(row: Any) -> dict[str, Any]:
    return {
        "finding_id": row.finding_id,
        "kind": row.kind,
        "severity": row.severity,
        "status": row.status,
        "subject": row.subject,
        "owner": row.owner,
        "title": row.title,
        "revision": row.revision,
        "reopen_count": row.reopen_count,
        "opened_at": row.opened_at.isoformat(),
        "updated_at": row.updated_at.isoformat(),
        "status_changed_by": row.status_changed_by,
        "status_changed_at": row.status_changed_at.isoformat() if row.status_changed_at else None,
        "status_note": row.status_note,
    }
