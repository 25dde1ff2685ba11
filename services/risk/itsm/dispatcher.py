"""The ticket loop: sends findings from the ticket outbox to every ITSM system and reads ticket states back.

Sending. Each pass takes the due rows of ``risk_ticket_outbox`` and claims each with a short lease, so two
risk replicas never work on one finding at once. It reads the finding as it is now and brings its ticket in
every system up to date. It creates the ticket when the finding needs one, after looking for a ticket that an
unanswered earlier create may have opened, then sends new figures and status. Progress is stored after every successful
request, so a later failure never repeats a create. A row is deleted only when every system is in sync and no
newer request arrived meanwhile. A retryable failure schedules the row again after the Retry-After delay, or
after a delay that doubles with each attempt, and pauses that system for the rest of the pass, so an outage
costs one request per pass rather than one per finding. A permanent failure marks the row failed.

Reading back. Each poll reads the state of the tickets polled longest ago. A state that differs from the one
last sent or read is a change made in the ITSM system; it moves the finding to the matching status, with the
ITSM user as the actor, and is not echoed back to the system it came from.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from services.risk.findings import ACTIVE, CLOSED, FINDINGS, TICKET_OUTBOX, TICKETS, FindingStore
from services.risk.itsm.base import Connector, FindingView, PermanentError, RemoteState, RetryableError
from shared.db import Database, insert_new_rows, is_transient_error
from shared.events import FindingStatus, Severity, utc_now
from shared.logging import get_logger
from shared.outbox import Outbox

log = get_logger(__name__)

LEASE = timedelta(seconds=60)
BATCH_SIZE = 200
POLL_BATCH_SIZE = 100


@dataclass
class TicketState:
    """The stored state of one ticket, as connectors read it."""

    external_id: str
    external_key: str
    url: str | None
    synced_revision: int
    synced_status: str
    remote_state: str | None


@dataclass
class PassReport:
    sent: int = 0
    retried: int = 0
    failed: int = 0
    errors: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class RetryPolicy:
    base_s: float = 2.0
    max_s: float = 300.0

    def delay(self, attempts: int, retry_after_s: float | None) -> float:
        if retry_after_s is not None:
            return min(max(retry_after_s, 0.0), self.max_s)
        return float(min(self.max_s, self.base_s * 2 ** max(attempts - 1, 0)))


class TicketDispatcher:
    def __init__(
        self,
        database: Database,
        outbox: Outbox,
        connectors: Sequence[Connector],
        *,
        min_ticket_severity: Severity = Severity.MEDIUM,
        retry: RetryPolicy | None = None,
        interval_s: float = 1.0,
        poll_interval_s: float = 30.0,
    ) -> None:
        self.database = database
        self.outbox = outbox
        self.connectors = list(connectors)
        self.min_ticket_severity = min_ticket_severity
        self.retry = retry or RetryPolicy()
        self.interval_s = interval_s
        self.poll_interval_s = poll_interval_s

    async def run(self, stop: asyncio.Event) -> None:
        """Send due tickets every interval and poll ticket states every poll interval until stopped."""
        log.info("itsm.started", systems=",".join(c.system for c in self.connectors))
        next_poll = 0.0
        loop = asyncio.get_running_loop()
        try:
            while not stop.is_set():
                try:
                    await self.send_due()
                    if loop.time() >= next_poll:
                        await self.poll_states()
                        next_poll = loop.time() + self.poll_interval_s
                except Exception as error:  # the loop must outlive a database outage; the work stays stored
                    log.warning("itsm.pass_failed", error=repr(error)[:300])
                try:
                    await asyncio.wait_for(stop.wait(), timeout=self.interval_s)
                except TimeoutError:
                    pass
        finally:
            for connector in self.connectors:
                await connector.close()
            log.info("itsm.stopped")

    async def send_due(self, now: datetime | None = None) -> PassReport:
        """Work through the due rows of the ticket outbox once."""
        moment = now or utc_now()
        report = PassReport()
        paused: dict[str, datetime] = {}
        async with self.database.engine.connect() as connection:
            rows = (
                await connection.execute(
                    select(TICKET_OUTBOX)
                    .where(TICKET_OUTBOX.c.state == "pending", TICKET_OUTBOX.c.next_attempt_at <= moment)
                    .order_by(TICKET_OUTBOX.c.next_attempt_at, TICKET_OUTBOX.c.finding_id)
                    .limit(BATCH_SIZE)
                )
            ).all()
        for row in rows:
            if await self._claim(row, moment):
                await self._send_one(row, moment, paused, report)
        return report

    async def _claim(self, row: Any, now: datetime) -> bool:
        async with self.database.transaction() as connection:
            result = await connection.execute(
                update(TICKET_OUTBOX)
                .where(
                    TICKET_OUTBOX.c.finding_id == row.finding_id,
                    TICKET_OUTBOX.c.generation == row.generation,
                    TICKET_OUTBOX.c.next_attempt_at == row.next_attempt_at,
                )
                .values(next_attempt_at=now + LEASE)
            )
            return bool(result.rowcount)

    async def _send_one(self, row: Any, now: datetime, paused: dict[str, datetime], report: PassReport) -> None:
        async with self.database.engine.connect() as connection:
            finding = (
                await connection.execute(select(FINDINGS).where(FINDINGS.c.finding_id == row.finding_id))
            ).first()
            tickets = {
                ticket.system: _state_of(ticket)
                for ticket in await connection.execute(select(TICKETS).where(TICKETS.c.finding_id == row.finding_id))
            }
        if finding is None:
            await self._finish(row)
            return
        view = FindingView.from_row(finding)
        wants = FindingStore(self.min_ticket_severity).wants_ticket(finding.severity, finding.ticket_requested)
        retry_at: datetime | None = None
        errors: list[str] = []
        permanent = False
        for connector in self.connectors:
            if paused.get(connector.system, now) > now:
                retry_at = min(retry_at or paused[connector.system], paused[connector.system])
                continue
            try:
                await self._sync(connector, view, tickets.get(connector.system), wants)
            except RetryableError as error:
                delay = self.retry.delay(row.attempts + 1, error.retry_after_s)
                paused[connector.system] = now + timedelta(seconds=delay)
                retry_at = min(retry_at or paused[connector.system], paused[connector.system])
                errors.append(str(error))
                log.warning(
                    "itsm.retry_scheduled",
                    system=connector.system,
                    finding_id=row.finding_id,
                    attempt=row.attempts + 1,
                    delay_s=round(delay, 3),
                    error=str(error)[:300],
                )
            except PermanentError as error:
                permanent = True
                errors.append(str(error))
                log.error("itsm.request_rejected", system=connector.system, finding_id=row.finding_id, error=str(error))
            except Exception as error:  # a bug or a stored row the connector cannot read; the work is kept
                if is_transient_error(error):
                    delay = self.retry.delay(row.attempts + 1, None)
                    retry_at = min(retry_at or now + timedelta(seconds=delay), now + timedelta(seconds=delay))
                else:
                    permanent = True
                errors.append(f"{connector.system}: {error!r}"[:500])
                log.exception("itsm.sync_failed", system=connector.system, finding_id=row.finding_id)

        if not errors and retry_at is None:
            await self._finish(row)
            report.sent += 1
        elif permanent:
            await self._reschedule(row, state="failed", at=now, error="; ".join(errors))
            report.failed += 1
        else:
            await self._reschedule(row, state="pending", at=retry_at or now, error="; ".join(errors) or None)
            report.retried += 1
        report.errors += errors

    async def _sync(self, connector: Connector, view: FindingView, ticket: TicketState | None, wants: bool) -> None:
        system = connector.system
        if ticket is None:
            if not wants:
                return
            remote = await connector.find(view)
            adopted = remote is not None
            if remote is None:
                remote = await connector.create(view)
            ticket = TicketState(
                external_id=remote.external_id,
                external_key=remote.key,
                url=remote.url,
                synced_revision=0 if adopted else view.revision,
                synced_status="" if adopted else FindingStatus.OPEN.value,
                remote_state=remote.state,
            )
            await self._store_ticket(view, system, ticket)
            log.info(
                "itsm.ticket_adopted" if adopted else "itsm.ticket_created",
                system=system,
                finding_id=view.finding_id,
                ticket=remote.key,
            )
        if ticket.synced_revision >= view.revision and ticket.synced_status == view.status.value:
            return
        remote_state = await connector.update(ticket, view)
        async with self.database.transaction() as connection:
            await connection.execute(
                update(TICKETS)
                .where(TICKETS.c.finding_id == view.finding_id, TICKETS.c.system == system)
                .values(
                    synced_revision=view.revision,
                    synced_status=view.status.value,
                    remote_state=remote_state or ticket.remote_state,
                    updated_at=utc_now(),
                )
            )
        log.info(
            "itsm.ticket_updated",
            system=system,
            finding_id=view.finding_id,
            ticket=ticket.external_key,
            revision=view.revision,
            status=view.status.value,
        )

    async def _store_ticket(self, view: FindingView, system: str, ticket: TicketState) -> None:
        now = utc_now()
        async with self.database.transaction() as connection:
            await insert_new_rows(
                connection,
                TICKETS,
                [
                    {
                        "finding_id": view.finding_id,
                        "system": system,
                        "tenant": view.tenant,
                        "external_id": ticket.external_id,
                        "external_key": ticket.external_key,
                        "url": ticket.url,
                        "synced_revision": ticket.synced_revision,
                        "synced_status": ticket.synced_status,
                        "remote_state": ticket.remote_state,
                        "created_at": now,
                        "updated_at": now,
                        "polled_at": None,
                    }
                ],
                ["finding_id", "system"],
            )

    async def _finish(self, row: Any) -> None:
        """Delete a row that is in sync; a newer request that arrived meanwhile keeps it, due at once."""
        async with self.database.transaction() as connection:
            result = await connection.execute(
                delete(TICKET_OUTBOX).where(
                    TICKET_OUTBOX.c.finding_id == row.finding_id, TICKET_OUTBOX.c.generation == row.generation
                )
            )
            if not result.rowcount:
                await connection.execute(
                    update(TICKET_OUTBOX)
                    .where(TICKET_OUTBOX.c.finding_id == row.finding_id)
                    .values(next_attempt_at=utc_now(), attempts=0, last_error=None)
                )

    async def _reschedule(self, row: Any, *, state: str, at: datetime, error: str | None) -> None:
        async with self.database.transaction() as connection:
            await connection.execute(
                update(TICKET_OUTBOX)
                .where(TICKET_OUTBOX.c.finding_id == row.finding_id)
                .values(state=state, next_attempt_at=at, attempts=row.attempts + 1, last_error=error)
            )

    async def poll_states(self) -> int:
        """Read back the state of the tickets polled longest ago; return how many findings changed status."""
        by_system = {connector.system: connector for connector in self.connectors}
        async with self.database.engine.connect() as connection:
            tickets = (
                await connection.execute(
                    select(TICKETS)
                    .where(TICKETS.c.system.in_(list(by_system)))
                    .order_by(TICKETS.c.polled_at.is_not(None), TICKETS.c.polled_at, TICKETS.c.finding_id)
                    .limit(POLL_BATCH_SIZE)
                )
            ).all()
        changed = 0
        unavailable: set[str] = set()
        for ticket in tickets:
            if ticket.system in unavailable:
                continue
            try:
                remote = await by_system[ticket.system].read_state(ticket)
            except RetryableError as error:
                unavailable.add(ticket.system)
                log.warning("itsm.poll_failed", system=ticket.system, error=str(error)[:300])
                continue
            except PermanentError as error:
                log.warning("itsm.poll_rejected", system=ticket.system, ticket=ticket.external_key, error=str(error))
                remote = None
            changed += await self._apply_remote_state(ticket, remote)
        return changed

    async def _apply_remote_state(self, ticket: Any, remote: RemoteState | None) -> int:
        store = FindingStore(self.min_ticket_severity)
        async with self.database.transaction() as connection:
            values: dict[str, Any] = {"polled_at": utc_now()}
            if remote is not None and remote.state != ticket.remote_state:
                values["remote_state"] = remote.state
            await connection.execute(
                update(TICKETS)
                .where(TICKETS.c.finding_id == ticket.finding_id, TICKETS.c.system == ticket.system)
                .values(**values)
            )
            if "remote_state" not in values or remote is None:
                return 0
            target = await _target_status(connection, ticket.finding_id, remote)
            if target is None:
                return 0
            await store.change_status(
                connection,
                tenant=ticket.tenant,
                finding_id=ticket.finding_id,
                to_status=target,
                actor=remote.changed_by,
                note=f"{ticket.system} ticket {ticket.external_key} moved to {remote.state}",
                synced_system=ticket.system,
            )
            events = store.take_published()
            await self.outbox.add(connection, events)
        await self.outbox.send_now(events)
        return 1


async def _target_status(connection: AsyncConnection, finding_id: str, remote: RemoteState) -> FindingStatus | None:
    """Return the finding status that a changed remote state calls for, or None to leave the finding as it is."""
    row = (await connection.execute(select(FINDINGS.c.status).where(FINDINGS.c.finding_id == finding_id))).first()
    if row is None or remote.status is None:
        return None
    current = FindingStatus(row.status)
    if remote.status is current:
        return None
    if current in CLOSED:
        # Reopened in the ITSM system: reopen here; a closed-to-closed change of reason is left as it is.
        return FindingStatus.OPEN if remote.status in ACTIVE else None
    return remote.status


def _state_of(row: Any) -> TicketState:
    return TicketState(
        external_id=row.external_id,
        external_key=row.external_key,
        url=row.url,
        synced_revision=row.synced_revision,
        synced_status=row.synced_status,
        remote_state=row.remote_state,
    )
