"""The finding store: raises, updates and reopens findings, records every change and queues ticket work.

Detectors describe what they see as a ``Detection``; ``FindingStore.record`` turns it into a finding row:

- a new finding id is inserted as ``open``, revision 1;
- a detection whose title, severity and figures equal the stored ones changes nothing, so replays are free;
- a resolved finding whose detection reports a new occurrence (new evidence) is reopened, not duplicated;
- otherwise the figures are updated with a new revision when the detector tracks changes.

Every change is written to ``risk_finding_changes`` with who made it, publishes a ``risk.flagged`` revision
through the outbox and, when the finding has or needs a ticket, marks it in ``risk_ticket_outbox`` so the ITSM
dispatcher brings its tickets up to date. All of it happens in the caller's transaction.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from services.risk.tables import RiskFinding, RiskFindingChange, RiskTicket, RiskTicketOutbox
from shared.db import insert_new_rows
from shared.events import FindingStatus, RiskFlagged, Severity, TicketReference, utc_now
from shared.kafka import OutgoingEvent
from shared.logging import get_logger
from shared.topics import Topic

log = get_logger(__name__)

FINDING_NAMESPACE = uuid.UUID("0b7e4a52-93c1-5f0e-8d2a-4c6b1e9f3a70")
MAX_EVIDENCE_IDS = 200
DETECTOR = "risk"

FINDINGS = RiskFinding.__table__  # type: ignore[attr-defined]
CHANGES = RiskFindingChange.__table__  # type: ignore[attr-defined]
TICKETS = RiskTicket.__table__  # type: ignore[attr-defined]
TICKET_OUTBOX = RiskTicketOutbox.__table__  # type: ignore[attr-defined]

ACTIVE = frozenset({FindingStatus.OPEN, FindingStatus.ACKNOWLEDGED, FindingStatus.IN_PROGRESS})
CLOSED = frozenset({FindingStatus.RESOLVED, FindingStatus.ACCEPTED_RISK, FindingStatus.FALSE_POSITIVE})
NOTE_REQUIRED = frozenset({FindingStatus.ACCEPTED_RISK, FindingStatus.FALSE_POSITIVE})
SEVERITY_ORDER = (Severity.LOW, Severity.MEDIUM, Severity.HIGH, Severity.CRITICAL)


def finding_id(*parts: str) -> str:
    """Derive a finding id from what the finding is about, so the same subject always gets the same id."""
    return str(uuid.uuid5(FINDING_NAMESPACE, "|".join(parts)))


class FindingError(ValueError):
    """A lifecycle request cannot be applied; the message names the finding and the reason."""


class FindingNotFound(FindingError):
    """No finding has the requested id in the tenant."""


@dataclass(frozen=True)
class Detection:
    """A detector's result: the content of a finding, without its lifecycle."""

    finding_id: str
    tenant: str
    kind: str
    severity: Severity
    subject: str
    title: str
    facts: dict[str, str]
    interpretation: str
    evidence_event_ids: tuple[str, ...] = ()
    owner: str | None = None
    # Identifies this occurrence of the problem; a resolved finding reopens only for a different occurrence.
    occurrence: str = ""
    # False keeps the figures of the first detection, as for a budget threshold crossed once per period.
    track_changes: bool = True
    # True requests a ticket whatever the severity, as for a savings recommendation someone sent to ITSM.
    ticket_requested: bool = False


@dataclass
class FindingStore:
    """Writes findings and their changes; ``published`` collects the events to send after the commit."""

    min_ticket_severity: Severity = Severity.MEDIUM
    published: list[OutgoingEvent] = field(default_factory=list)

    def take_published(self) -> list[OutgoingEvent]:
        events, self.published = self.published, []
        return events

    async def record(self, connection: AsyncConnection, detection: Detection) -> RiskFlagged | None:
        """Store a detection; return the event published for it, or None when nothing changed."""
        now = utc_now()
        evidence = detection.evidence_event_ids[:MAX_EVIDENCE_IDS]
        row = await _load(connection, detection.finding_id)
        if row is None:
            inserted = await insert_new_rows(connection, FINDINGS, [_new_row(detection, evidence, now)], ["finding_id"])
            if inserted:
                await _add_change(
                    connection, detection.finding_id, detection.tenant, 1, None, "open", DETECTOR, "raised", now
                )
                return await self._publish(connection, detection.finding_id)
            row = await _load(connection, detection.finding_id)  # another transaction inserted it first
            assert row is not None

        same_figures = (
            row.title == detection.title
            and row.severity == detection.severity.value
            and json.loads(row.facts_json) == detection.facts
        )
        status = FindingStatus(row.status)
        recurred = status is FindingStatus.RESOLVED and row.occurrence != detection.occurrence
        if same_figures and not recurred:
            return None
        if not recurred and not detection.track_changes:
            return None

        values: dict[str, Any] = {
            "title": detection.title,
            "severity": detection.severity.value,
            "facts_json": json.dumps(detection.facts),
            "interpretation": detection.interpretation,
            "evidence_json": json.dumps(evidence),
            "occurrence": detection.occurrence,
            "revision": row.revision + 1,
            "updated_at": now,
            "ticket_requested": row.ticket_requested or detection.ticket_requested,
        }
        if recurred:
            values |= {
                "status": FindingStatus.OPEN.value,
                "status_changed_by": DETECTOR,
                "status_changed_at": now,
                "status_note": "recurred after it was resolved",
                "reopen_count": row.reopen_count + 1,
            }
        await connection.execute(update(FINDINGS).where(FINDINGS.c.finding_id == row.finding_id).values(**values))
        if recurred:
            await _add_change(
                connection,
                row.finding_id,
                row.tenant,
                row.revision + 1,
                row.status,
                "open",
                DETECTOR,
                "recurred after it was resolved",
                now,
            )
            log.info("finding.reopened", finding_id=row.finding_id, kind=row.kind, reopen_count=row.reopen_count + 1)
        else:
            await _add_change(
                connection,
                row.finding_id,
                row.tenant,
                row.revision + 1,
                row.status,
                row.status,
                DETECTOR,
                "figures updated",
                now,
            )
        return await self._publish(connection, row.finding_id)

    async def change_status(
        self,
        connection: AsyncConnection,
        *,
        tenant: str,
        finding_id: str,
        to_status: FindingStatus,
        actor: str,
        note: str | None = None,
        synced_system: str | None = None,
    ) -> RiskFlagged:
        """Move a finding to another status and record who did it.

        ``synced_system`` names the ITSM system the change came from: its ticket already shows the new status,
        so only the other systems are sent the change.
        """
        row = await _load(connection, finding_id)
        if row is None or row.tenant != tenant:
            raise FindingNotFound(f"finding {finding_id} not found in tenant {tenant!r}")
        current = FindingStatus(row.status)
        if current is to_status:
            raise FindingError(f"finding {finding_id} is already {to_status.value}")
        if current in CLOSED and to_status is not FindingStatus.OPEN:
            raise FindingError(
                f"finding {finding_id} is {current.value}; reopen it before moving it to {to_status.value}"
            )
        if to_status in NOTE_REQUIRED and not (note and note.strip()):
            raise FindingError(f"a reason is required to mark finding {finding_id} {to_status.value}")
        if not actor.strip():
            raise FindingError("the actor who changes a finding must be named")

        now = utc_now()
        revision = row.revision + 1
        await connection.execute(
            update(FINDINGS)
            .where(FINDINGS.c.finding_id == finding_id)
            .values(
                status=to_status.value,
                status_changed_by=actor,
                status_changed_at=now,
                status_note=note,
                revision=revision,
                updated_at=now,
            )
        )
        await _add_change(connection, finding_id, tenant, revision, current.value, to_status.value, actor, note, now)
        if synced_system is not None:
            await connection.execute(
                update(TICKETS)
                .where(TICKETS.c.finding_id == finding_id, TICKETS.c.system == synced_system)
                .values(synced_revision=revision, synced_status=to_status.value, updated_at=now)
            )
        log.info(
            "finding.status_changed",
            finding_id=finding_id,
            from_status=current.value,
            to_status=to_status.value,
            actor=actor,
        )
        event = await self._publish(connection, finding_id)
        return event

    def wants_ticket(self, severity: str, ticket_requested: bool) -> bool:
        return ticket_requested or SEVERITY_ORDER.index(Severity(severity)) >= SEVERITY_ORDER.index(
            self.min_ticket_severity
        )

    async def _publish(self, connection: AsyncConnection, finding_id: str) -> RiskFlagged:
        row = await _load(connection, finding_id)
        assert row is not None
        tickets = (
            await connection.execute(
                select(TICKETS.c.system, TICKETS.c.external_key, TICKETS.c.url)
                .where(TICKETS.c.finding_id == finding_id)
                .order_by(TICKETS.c.system)
            )
        ).all()
        event = finding_event(row, tickets)
        self.published.append(OutgoingEvent.of(Topic.RISK_FLAGGED, event, key=event.subject))
        log.info(
            "finding.published",
            finding_id=event.finding_id,
            kind=event.kind,
            status=event.status.value,
            revision=event.revision,
            subject=event.subject,
        )
        if tickets or self.wants_ticket(row.severity, row.ticket_requested):
            await request_ticket_sync(connection, finding_id, row.tenant)
        return event


def finding_event(row: Any, tickets: Sequence[Any] = ()) -> RiskFlagged:
    """Build the ``risk.flagged`` event of a finding row at its current revision."""
    return RiskFlagged(
        event_id=f"finding:{row.finding_id}:r{row.revision}",
        occurred_at=row.updated_at,
        source="risk",
        tenant=row.tenant,
        correlation_id=row.finding_id,
        finding_id=row.finding_id,
        kind=row.kind,
        severity=Severity(row.severity),
        status=FindingStatus(row.status),
        subject=row.subject,
        owner=row.owner,
        title=row.title,
        facts=json.loads(row.facts_json),
        interpretation=row.interpretation,
        evidence_event_ids=tuple(json.loads(row.evidence_json)),
        revision=row.revision,
        status_changed_by=row.status_changed_by,
        status_changed_at=row.status_changed_at,
        status_note=row.status_note,
        reopen_count=row.reopen_count,
        tickets=tuple(TicketReference(system=t.system, key=t.external_key, url=t.url) for t in tickets),
    )


async def request_ticket_sync(connection: AsyncConnection, finding_id: str, tenant: str) -> None:
    """Mark a finding's tickets as behind; a pending retry delay is kept so an outage is not hammered."""
    now = utc_now()
    inserted = await insert_new_rows(
        connection,
        TICKET_OUTBOX,
        [
            {
                "finding_id": finding_id,
                "tenant": tenant,
                "generation": 1,
                "state": "pending",
                "attempts": 0,
                "next_attempt_at": now,
                "requested_at": now,
                "last_error": None,
            }
        ],
        ["finding_id"],
    )
    if not inserted:
        await connection.execute(
            update(TICKET_OUTBOX)
            .where(TICKET_OUTBOX.c.finding_id == finding_id)
            .values(generation=TICKET_OUTBOX.c.generation + 1, state="pending", requested_at=now)
        )


async def _load(connection: AsyncConnection, finding_id: str) -> Any:
    statement = select(FINDINGS).where(FINDINGS.c.finding_id == finding_id)
    if connection.dialect.name == "postgresql":
        statement = statement.with_for_update()
    return (await connection.execute(statement)).first()


def _new_row(detection: Detection, evidence: tuple[str, ...], now: datetime) -> dict[str, Any]:
    return {
        "finding_id": detection.finding_id,
        "tenant": detection.tenant,
        "kind": detection.kind,
        "severity": detection.severity.value,
        "status": FindingStatus.OPEN.value,
        "subject": detection.subject,
        "owner": detection.owner,
        "title": detection.title,
        "facts_json": json.dumps(detection.facts),
        "interpretation": detection.interpretation,
        "evidence_json": json.dumps(evidence),
        "revision": 1,
        "opened_at": now,
        "updated_at": now,
        "status_changed_by": DETECTOR,
        "status_changed_at": now,
        "status_note": None,
        "reopen_count": 0,
        "ticket_requested": detection.ticket_requested,
        "occurrence": detection.occurrence,
    }


async def _add_change(
    connection: AsyncConnection,
    finding_id: str,
    tenant: str,
    revision: int,
    from_status: str | None,
    to_status: str,
    actor: str,
    note: str | None,
    at: datetime,
) -> None:
    await connection.execute(
        CHANGES.insert().values(
            finding_id=finding_id,
            tenant=tenant,
            revision=revision,
            from_status=from_status,
            to_status=to_status,
            actor=actor,
            note=note,
            changed_at=at,
        )
    )
