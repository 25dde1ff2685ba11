"""Group commit for webhook payloads: payloads that arrive together share one database transaction.

One transaction per request costs a BEGIN, four or five statements and a COMMIT
(with its WAL flush) for a payload of one event. In profiles of ``bench.pipeline_rate``
that overhead, not the event, took most of the webhook's time. ``GroupCommitter``
queues validated payloads and writes each group with one bulk statement per table:
claimed event ids, outbox rows and import rows. Up to ``max_groups_in_flight``
writers each take the payloads waiting at that moment as one group, so an idle
server adds no wait and a busy one writes larger groups.

Each payload keeps its own all-or-nothing result, as if it had been written alone
after the payloads that arrived before it:

- a payload that restates an event of the database or of an earlier payload in its
  group with other content is left out of the group. It is recorded alone after the
  group commits, so it gets the 409 it would get alone;
- an event repeated with the same content is a duplicate of the payload that claimed
  it first;
- a transient database error (the database is down) fails every payload of the
  group with that error, so each request gets 503;
- any other error in the group write records each payload alone, so one bad
  payload cannot fail the others.

Each caller's result is set only after the group's commit, so a 202 still means stored.
"""

from __future__ import annotations

import asyncio
import io
import uuid
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncConnection

from services.ingest.bulk import copy_new_rows
from services.ingest.importer import (
    _EVENTS,
    _IMPORTS,
    ImportSummary,
    Recorder,
    _Candidate,
    _event_row,
    _import_values,
    _prepare,
    _PreparedBatch,
    _stored_versions,
)
from services.ingest.normalisers import ImportContext, Normaliser, RowResult
from shared.db import is_transient_error
from shared.events import utc_now
from shared.kafka import OutgoingEvent
from shared.logging import get_logger

log = get_logger(__name__)


@dataclass(slots=True, eq=False)
class _Pending:
    """One validated payload waiting for its group, with the future its request awaits."""

    body: bytes
    normaliser: Normaliser
    context: ImportContext
    summary: ImportSummary
    prepared: _PreparedBatch
    started_at: datetime
    future: asyncio.Future[ImportSummary]
    import_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    fresh: list[_Candidate] = field(default_factory=list)
    duplicates: int = 0


class _Conflicts(Exception):
    """Payloads of a group that restate stored events with other content, so the group is written without them."""

    def __init__(self, payloads: list[_Pending]) -> None:
        super().__init__(f"{len(payloads)} payloads restate stored events")
        self.payloads = payloads


class GroupCommitter:
    """Records validated webhook payloads all or nothing, each group of them in one transaction.

    ``max_events`` bounds the events of one group, except that a group always takes at
    least one payload, however large. Committed events wait ``send_delay_s`` before they
    go to the recorder's sender. Events not sent before the service stops stay in the
    outbox, where the relay finds them.
    """

    def __init__(
        self,
        recorder: Recorder,
        *,
        max_groups_in_flight: int = 2,
        max_payloads: int = 500,
        max_events: int = 2000,
        send_delay_s: float = 0.05,
    ) -> None:
        self.recorder = recorder
        self.max_groups_in_flight = max_groups_in_flight
        self.max_payloads = max_payloads
        self.max_events = max_events
        self._pending: list[_Pending] = []
        self._in_flight = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self.send_delay_s = send_delay_s
        self._unsent: list[OutgoingEvent] = []
        self._send_timer: asyncio.TimerHandle | None = None

    async def record(
        self, body: bytes, rows: list[RowResult], *, normaliser: Normaliser, context: ImportContext, input_sha256: str
    ) -> ImportSummary:
        """Store a payload's rows, which must all be valid, and return its summary once its group is committed.

        ``body`` is kept to record the payload alone if its group cannot take it. Raises
        ConflictingEvents like ``Recorder.record`` and the database's error when it is unavailable.
        """
        assert all(row.error is None for row in rows), "invalid payloads take Recorder.record"
        pending = _Pending(
            body=body,
            normaliser=normaliser,
            context=context,
            summary=ImportSummary(normaliser.format_name, context.file_name, input_sha256),
            prepared=_prepare(rows),
            started_at=utc_now(),
            future=asyncio.get_running_loop().create_future(),
        )
        self._pending.append(pending)
        self._start_groups()
        return await pending.future

    def _send_later(self, outgoing: list[OutgoingEvent]) -> None:
        """Hand committed events to the sender after ``send_delay_s``, so that one send carries several groups."""
        if not self.recorder.send or not outgoing:
            return
        self._unsent.extend(outgoing)
        if self._send_timer is None:
            self._send_timer = asyncio.get_running_loop().call_later(self.send_delay_s, self._send_unsent)

    def _send_unsent(self) -> None:
        self._send_timer = None
        unsent, self._unsent = self._unsent, []
        self.recorder.sender.submit(unsent)

    def _start_groups(self) -> None:
        while self._pending and self._in_flight < self.max_groups_in_flight:
            group = self._take_group()
            self._in_flight += 1
            task = asyncio.create_task(self._run_writer(group))
            self._tasks.add(task)
            task.add_done_callback(self._writer_done)

    def _writer_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        self._in_flight -= 1
        if not task.cancelled() and task.exception() is not None:
            log.error("webhook.group_writer_failed", error=repr(task.exception())[:300])
        self._start_groups()

    def _take_group(self) -> list[_Pending]:
        events = 0
        count = 0
        for pending in self._pending:
            size = len(pending.prepared.candidates)
            if count and (count >= self.max_payloads or events + size > self.max_events):
                break
            events += size
            count += 1
        group, self._pending = self._pending[:count], self._pending[count:]
        return group

    async def _run_writer(self, group: list[_Pending]) -> None:
        """Write groups on one connection while payloads wait, then return the connection to the pool.

        Keeping the connection between groups saves the pool's liveness check (three round trips
        on asyncpg) for each group after the first.
        """
        try:
            connection = await self.recorder.database.engine.connect()
        except Exception as error:
            await self._write_failed(group, error)
            return
        try:
            while await self._write(connection, group) and self._pending:
                group = self._take_group()
        finally:
            for pending in group:  # only a cancelled or failed writer leaves futures unresolved
                if not pending.future.done():
                    pending.future.cancel()
            try:
                await connection.close()
            except Exception as error:  # the pool discards a broken connection
                log.warning("webhook.group_connection_close_failed", error=repr(error)[:300])

    async def _write(self, connection: AsyncConnection, group: list[_Pending]) -> bool:
        """Record every payload of a group and return whether the connection may write another group."""
        alone: list[_Pending] = []
        remaining = group
        reusable = True
        while remaining:
            try:
                left_out = await self._store(connection, remaining)
            except _Conflicts as conflicts:
                alone += conflicts.payloads
                remaining = [pending for pending in remaining if pending not in conflicts.payloads]
                continue
            except Exception as error:
                reusable = False
                await self._write_failed(remaining, error)
                break
            alone += left_out
            self._finish(remaining, left_out)
            break
        if alone:
            await asyncio.gather(*(self._record_alone(pending) for pending in alone))
        return reusable

    async def _write_failed(self, group: list[_Pending], error: Exception) -> None:
        """Fail a group with a transient error (each request gets 503), or record each payload alone."""
        if is_transient_error(error):
            log.warning("webhook.store_unavailable", payloads=len(group), error=repr(error)[:300])
            for pending in group:
                _fail(pending, error)
            return
        log.warning("webhook.group_commit_failed", payloads=len(group), error=repr(error)[:300])
        await asyncio.gather(*(self._record_alone(pending) for pending in group))

    async def _store(self, connection: AsyncConnection, group: list[_Pending]) -> list[_Pending]:
        """Write a group in one transaction and return the payloads left out for restating a group event.

        Raises _Conflicts, after rolling back, when payloads restate events stored before the group.
        """
        claimed: dict[str, _Candidate] = {}
        included: list[_Pending] = []
        left_out: list[_Pending] = []
        for pending in group:
            if _claim_in_memory(pending, claimed):
                included.append(pending)
            else:
                left_out.append(pending)

        async with connection.begin():
            await self._claim_stored(connection, included)
            outgoing = [candidate.outgoing() for pending in included for candidate in pending.fresh]
            await self.recorder.outbox.add(connection, outgoing)
            for pending in included:
                _summarise(pending)
            import_rows = [
                _import_values(pending.import_id, pending.summary, pending.context, pending.started_at)
                for pending in included
            ]
            if import_rows:
                await connection.execute(_IMPORTS.insert(), import_rows)
        self._send_later(outgoing)
        log.debug("webhook.group_committed", payloads=len(included), events=len(outgoing), left_out=len(left_out))
        return left_out

    async def _claim_stored(self, connection: AsyncConnection, included: list[_Pending]) -> None:
        """Insert the group's new event ids, and count ids stored before with the same content as duplicates."""
        rows = [
            _event_row(pending.summary, pending.context, candidate)
            for pending in included
            for candidate in pending.fresh
        ]
        inserted = {key[0] for key in await copy_new_rows(connection, _EVENTS, rows, ["event_id"])}
        stored_before = [row["event_id"] for row in rows if row["event_id"] not in inserted]
        if not stored_before:
            return
        previous = await _stored_versions(connection, stored_before)
        conflicting: list[_Pending] = []
        for pending in included:
            fresh: list[_Candidate] = []
            for candidate in pending.fresh:
                event_id = candidate.event.event_id
                if event_id in inserted:
                    fresh.append(candidate)
                elif event_id in previous and previous[event_id][0] == candidate.raw_sha256:
                    pending.duplicates += 1
                else:
                    conflicting.append(pending)
                    break
            pending.fresh = fresh
        if conflicting:
            # Leaving the transaction by an exception rolls the group back, and _write retries it without these.
            raise _Conflicts(conflicting)

    def _finish(self, included_and_left_out: list[_Pending], left_out: list[_Pending]) -> None:
        for pending in included_and_left_out:
            if pending not in left_out and not pending.future.done():
                pending.future.set_result(pending.summary)

    async def _record_alone(self, pending: _Pending) -> None:
        """Record a payload in a transaction of its own, with the same results as a request without grouping."""
        try:
            summary = await self.recorder.record(
                io.BytesIO(pending.body),
                normaliser=pending.normaliser,
                context=pending.context,
                input_sha256=pending.summary.input_sha256,
                all_or_nothing=True,
                collect_event_ids=True,
            )
        except Exception as error:
            _fail(pending, error)
        else:
            if not pending.future.done():
                pending.future.set_result(summary)


def _claim_in_memory(pending: _Pending, claimed: dict[str, _Candidate]) -> bool:
    """Claim a payload's event ids against those claimed by earlier payloads of its group.

    Returns False, claiming nothing, when the payload restates an event of the group with
    other content. ``claimed`` maps each event id to the first candidate that claimed it.
    """
    own: dict[str, _Candidate] = {}
    fresh: list[_Candidate] = []
    duplicates = 0
    for candidate in pending.prepared.candidates:
        event_id = candidate.event.event_id
        first = own.get(event_id) or claimed.get(event_id)
        if first is None:
            own[event_id] = candidate
            fresh.append(candidate)
        elif first.raw_sha256 == candidate.raw_sha256:
            duplicates += 1
        else:
            return False
    claimed.update(own)
    pending.fresh = fresh
    pending.duplicates = duplicates
    return True


def _summarise(pending: _Pending) -> None:
    summary = pending.summary
    summary.rows_read = pending.prepared.rows
    summary.empty = pending.prepared.empty
    summary.accepted = len(pending.fresh)
    summary.duplicates = pending.duplicates
    summary.accepted_event_ids = [candidate.event.event_id for candidate in pending.fresh]


def _fail(pending: _Pending, error: BaseException) -> None:
    if not pending.future.done():
        pending.future.set_exception(error)
