"""Recording normalised rows: claim each event id, keep the evidence, queue the event, report the counts.

Files and webhook payloads take the same path. Rows are stored in batches. Each
batch claims its event ids in the same transaction that writes the evidence and
the outbox rows, and a duplicate key means the event was recorded before. So a
failed write followed by a retry still records each event once.

An id that was claimed before is a duplicate when the stored row is byte for byte
the same, and a conflict when it differs: the provider restated a row it had sent
before. A conflict is rejected with its reason and kept with the rejected rows,
never applied over the first version and never counted twice.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import hashlib
import re
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import IO, Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from services.ingest.bulk import copy_new_rows
from services.ingest.import_owners import process_owner
from services.ingest.normalisers import ImportContext, Normaliser, RowResult
from services.ingest.normalisers.base import IngestEvent
from services.ingest.tables import IngestImport, IngestRejectedRow, IngestUsageEvent
from shared.consumer import DeadLetters
from shared.db import Database, insert_new_rows
from shared.events import GpuUtilisationReported, SeatActivityReported, SeatEntitlementReported, utc_now
from shared.kafka import OutgoingEvent
from shared.logging import get_logger
from shared.outbox import Outbox
from shared.topics import EVENT_TOPICS, partition_key

log = get_logger(__name__)

# Tenant names: letters, digits and . _ : @ - after a letter or digit, at most 128 characters.
TENANT_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}")
BATCH_ROWS = 2000
MAX_REPORTED_REJECTIONS = 50
PROGRESS_LOG_ROWS = 100_000
CONFLICT_FIELD = "(event identity)"

_EVENTS = IngestUsageEvent.__table__  # type: ignore[attr-defined]
_REJECTED = IngestRejectedRow.__table__  # type: ignore[attr-defined]
_IMPORTS = IngestImport.__table__  # type: ignore[attr-defined]


@dataclass(frozen=True, slots=True)
class Rejection:
    row_number: int
    field_path: str
    reason: str


@dataclass
class ImportSummary:
    """Counts of one import: rows read, rejected and empty; events accepted, duplicate and conflicting.

    A row may yield several events (a billing row and its credits), so ``accepted``
    and ``duplicates`` count events while the other counts are rows. Conflicting
    events are also counted in ``rejected``.
    """

    format_name: str
    file_name: str | None
    input_sha256: str
    rows_read: int = 0
    accepted: int = 0
    duplicates: int = 0
    rejected: int = 0
    conflicts: int = 0
    empty: int = 0
    rejections: list[Rejection] = field(default_factory=list)
    accepted_event_ids: list[str] = field(default_factory=list)

    def reject(self, row_number: int, field_path: str, reason: str) -> None:
        self.rejected += 1
        if len(self.rejections) < MAX_REPORTED_REJECTIONS:
            self.rejections.append(Rejection(row_number, field_path, reason))

    def as_dict(self) -> dict[str, object]:
        return {
            "format": self.format_name,
            "file": self.file_name,
            "read": self.rows_read,
            "accepted": self.accepted,
            "duplicate": self.duplicates,
            "rejected": self.rejected,
            "conflicting": self.conflicts,
            "empty": self.empty,
            "rejections": [
                {"row": item.row_number, "field": item.field_path, "reason": item.reason} for item in self.rejections
            ],
        }


class ConflictingEvents(Exception):
    """An all-or-nothing input restates events that were recorded before with other content."""

    def __init__(self, summary: ImportSummary) -> None:
        super().__init__(f"{summary.conflicts} events were recorded before with different content")
        self.summary = summary


@dataclass(slots=True)
class _Candidate:
    row: RowResult
    event: IngestEvent
    raw_sha256: str
    event_json: str  # serialised once: stored as evidence and sent as the message value

    def outgoing(self) -> OutgoingEvent:
        event = self.event
        return OutgoingEvent(
            topic=str(EVENT_TOPICS[event.EVENT_TYPE]),
            key=partition_key(event.tenant, stable_key(event)),
            value=self.event_json.encode(),
            event_id=event.event_id,
            event_type=event.EVENT_TYPE,
            correlation_id=event.correlation_id,
        )


@dataclass(slots=True)
class _PreparedBatch:
    """One batch of rows with the CPU work done: events serialised, invalid rows sorted out, not yet stored."""

    rows: int = 0
    empty: int = 0
    candidates: list[_Candidate] = field(default_factory=list)
    invalid: list[RowResult] = field(default_factory=list)


def _prepare(batch: list[RowResult]) -> _PreparedBatch:
    prepared = _PreparedBatch(rows=len(batch))
    for row in batch:
        if row.error is not None:
            prepared.invalid.append(row)
        elif row.events:
            raw_sha256 = hashlib.sha256(row.raw).hexdigest()
            prepared.candidates.extend(
                _Candidate(row, event, raw_sha256, event.model_dump_json()) for event in row.events
            )
        else:
            prepared.empty += 1
    return prepared


def _read_and_prepare(batches: Iterator[list[RowResult]]) -> _PreparedBatch | None:
    """Read the next batch of rows and prepare it; return None at the end of the input. Runs in a worker thread."""
    batch = next(batches, None)
    return None if batch is None else _prepare(batch)


def _close(*iterators: Iterator[Any]) -> None:
    """Close generators in the thread that ran them, so that their clean-up runs there too."""
    for iterator in iterators:
        close = getattr(iterator, "close", None)
        if close is not None:
            close()


class OutboxSender:
    """Sends committed outbox events in the background, in order, and marks them sent.

    Events queued while a send is in flight go out together in the next one, so a
    busy webhook sends a few large batches instead of one small batch a request. A
    failed or timed-out send is logged and its events stay unsent in the outbox, where
    the ingest service's relay finds them.
    """

    def __init__(self, outbox: Outbox, *, timeout_s: float, max_batch: int = 5000) -> None:
        self.outbox = outbox
        self.timeout_s = timeout_s
        self.max_batch = max_batch
        self._queue: list[OutgoingEvent] = []
        self._task: asyncio.Task[None] | None = None

    @property
    def queued(self) -> int:
        return len(self._queue)

    def submit(self, events: list[OutgoingEvent]) -> None:
        if not events:
            return
        self._queue.extend(events)
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._send_queued())

    async def flush(self) -> None:
        """Wait until every submitted event was sent or given up on."""
        while self._task is not None and not self._task.done():
            await asyncio.shield(self._task)

    async def _send_queued(self) -> None:
        while self._queue:
            batch, self._queue = self._queue[: self.max_batch], self._queue[self.max_batch :]
            try:
                await asyncio.wait_for(self.outbox.send_now(batch), timeout=self.timeout_s)
            except Exception as error:  # stored in the outbox: the ingest service's relay sends it later
                log.warning("import.send_deferred", events=len(batch), error=repr(error)[:300])


class InvalidTenant(ValueError):
    """A tenant name that is empty, too long or has characters outside TENANT_PATTERN."""


def validate_tenant(tenant: str) -> str:
    """Return the tenant name, or raise InvalidTenant saying what a valid name looks like."""
    if not TENANT_PATTERN.fullmatch(tenant):
        raise InvalidTenant(
            f"invalid tenant {tenant[:64]!r}: use 1 to 128 letters, digits and . _ : @ -, "
            "starting with a letter or digit"
        )
    return tenant


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1024 * 1024), b""):
            digest.update(block)
    return digest.hexdigest()


def stable_key(event: IngestEvent) -> str:
    """Pick the partition key of an ingest event: its most specific owner, so one owner's events stay in order."""
    if isinstance(event, SeatActivityReported | SeatEntitlementReported):
        return f"{event.vendor}:{event.product}"
    if isinstance(event, GpuUtilisationReported):
        return f"gpu:{event.host}:{event.gpu_id}"
    dimensions = event.dimensions
    for name in ("api_key_id", "project_id", "workspace_id", "account_id"):
        value = getattr(dimensions, name)
        if value:
            return f"{event.provider}:{name}:{value}"
    return f"{event.provider}:-"


class Recorder:
    """Stores normalised rows for one tenant's input and sends the new events.

    Sending waits at most ``send_timeout_s`` per batch; events not sent by then stay in
    the outbox, and the ingest service's relay sends them later.
    """

    def __init__(
        self,
        database: Database,
        outbox: Outbox,
        dead_letters: DeadLetters | None,
        *,
        send: bool = True,
        send_timeout_s: float = 60.0,
    ) -> None:
        self.database = database
        self.outbox = outbox
        self.dead_letters = dead_letters
        self.send = send
        self.send_timeout_s = send_timeout_s
        self.sender = OutboxSender(outbox, timeout_s=send_timeout_s)

    async def record(
        self,
        stream: IO[bytes],
        *,
        normaliser: Normaliser,
        context: ImportContext,
        input_sha256: str,
        on_progress: Callable[[int], None] | None = None,
        all_or_nothing: bool = False,
        collect_event_ids: bool = False,
    ) -> ImportSummary:
        """Read every row of the input and record it.

        With ``all_or_nothing`` (webhooks) one bad row records nothing, and an event
        that conflicts with a stored one raises ConflictingEvents after rolling back.
        ``collect_event_ids`` keeps the accepted ids in the summary; file imports leave
        it off so that memory stays bounded however long the file is.

        Events are sent after their batch is committed, by a background sender. A file
        import waits for the last send before it returns. A webhook returns as soon as
        its events are committed, and the sender or the relay sends them afterwards.
        """
        validate_tenant(context.tenant)
        summary = ImportSummary(normaliser.format_name, context.file_name, input_sha256)
        import_id = str(uuid.uuid4())
        if all_or_nothing:
            await self._record_whole(normaliser.rows(stream, context), summary, context, import_id, collect_event_ids)
        else:
            await self._start_import(import_id, summary, context)
            outcome = "failed"
            try:
                rows = normaliser.rows(stream, context)
                await self._record_batches(rows, summary, context, collect_event_ids, on_progress)
                outcome = "completed"
            except (asyncio.CancelledError, KeyboardInterrupt, SystemExit):
                outcome = "interrupted"
                raise
            finally:
                await self._finish_import(import_id, summary, outcome)
        log.info(
            "import.finished",
            format=summary.format_name,
            file=summary.file_name,
            tenant=context.tenant,
            channel=context.channel,
            read=summary.rows_read,
            accepted=summary.accepted,
            duplicate=summary.duplicates,
            rejected=summary.rejected,
            conflicting=summary.conflicts,
            empty=summary.empty,
        )
        return summary

    async def _record_batches(
        self,
        rows: Iterator[RowResult],
        summary: ImportSummary,
        context: ImportContext,
        collect_event_ids: bool,
        on_progress: Callable[[int], None] | None,
    ) -> None:
        """Store batch after batch while a worker thread reads and prepares the next one.

        Parsing is CPU work in this process while storing waits mostly on the database and
        the broker, so overlapping them keeps both busy. Only one thread ever advances the
        row iterator, and only one batch is read ahead, so memory stays bounded.
        """
        batches = _batches(rows, BATCH_ROWS)
        loop = asyncio.get_running_loop()
        # One dedicated thread, so that the normaliser's state (such as an SQLite file) always meets the same thread.
        reader = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="import-reader")
        ahead = loop.run_in_executor(reader, _read_and_prepare, batches)
        try:
            while (prepared := await ahead) is not None:
                ahead = loop.run_in_executor(reader, _read_and_prepare, batches)
                before = summary.rows_read
                await self._record_batch(prepared, summary, context, collect_event_ids, all_or_nothing=False)
                if on_progress is not None:
                    on_progress(prepared.rows)
                if summary.rows_read // PROGRESS_LOG_ROWS > before // PROGRESS_LOG_ROWS:
                    log.info(
                        "import.progress",
                        format=summary.format_name,
                        file=summary.file_name,
                        read=summary.rows_read,
                        accepted=summary.accepted,
                        rejected=summary.rejected,
                    )
        finally:
            if not ahead.done():  # a failed batch: let the reader thread finish before the input is closed
                await asyncio.wait([ahead])
            if ahead.done() and not ahead.cancelled():
                ahead.exception()  # retrieved so that asyncio does not report it; the first error is raised
            await loop.run_in_executor(reader, _close, batches, rows)
            reader.shutdown(wait=False)
            if self.send:
                await self.sender.flush()

    async def _record_whole(
        self,
        rows: Iterator[RowResult],
        summary: ImportSummary,
        context: ImportContext,
        import_id: str,
        collect_event_ids: bool,
    ) -> None:
        """Record a payload all or nothing, with its import row in the same transaction as its events.

        One commit per payload keeps a webhook's latency low. A payload that stores nothing
        (invalid rows, a conflict, a syntax error) still gets its import row, written afterwards.
        """
        started_at = utc_now()
        stored = False
        outcome = "failed"
        try:
            whole = self._validated_whole(rows, summary)
            if whole:
                await self._record_batch(
                    _prepare(whole),
                    summary,
                    context,
                    collect_event_ids,
                    all_or_nothing=True,
                    import_row=(import_id, started_at),
                )
                stored = True
            outcome = "completed"
        except ConflictingEvents:
            outcome = "completed"  # the input was read to the end and rejected as a whole
            raise
        except (asyncio.CancelledError, KeyboardInterrupt, SystemExit):
            outcome = "interrupted"
            raise
        finally:
            if not stored:
                async with self.database.transaction() as connection:
                    await connection.execute(_import_row(import_id, summary, context, started_at, outcome=outcome))

    def _validated_whole(self, rows: Iterator[RowResult], summary: ImportSummary) -> list[RowResult]:
        materialised = list(rows)
        failures = [row for row in materialised if row.error is not None]
        if failures:
            summary.rows_read = len(materialised)
            for row in failures:
                assert row.error is not None
                summary.reject(row.row_number, row.error.field_path, row.error.reason)
            return []
        return materialised

    async def _record_batch(
        self,
        prepared: _PreparedBatch,
        summary: ImportSummary,
        context: ImportContext,
        collect_event_ids: bool,
        *,
        all_or_nothing: bool,
        import_row: tuple[str, datetime] | None = None,
    ) -> None:
        """Store one batch in one transaction and hand its new events to the sender.

        ``import_row`` (id and start time) also stores the input's import row, with its final
        counts, in the same transaction.
        """
        summary.rows_read += prepared.rows
        summary.empty += prepared.empty
        rejected_rows: list[dict[str, object]] = []
        for row in prepared.invalid:
            assert row.error is not None
            summary.reject(row.row_number, row.error.field_path, row.error.reason)
            rejected_rows.append(_rejected_row(summary, context, row, row.error.field_path, row.error.reason))

        async with self.database.transaction() as connection:
            fresh, duplicates, conflicts = await self._claim(connection, prepared.candidates, summary, context)
            if conflicts and all_or_nothing:
                for candidate, reason in conflicts:
                    summary.conflicts += 1
                    summary.reject(candidate.row.row_number, CONFLICT_FIELD, reason)
                raise ConflictingEvents(summary)
            outgoing = [item.outgoing() for item in fresh]
            await self.outbox.add(connection, outgoing)
            for candidate, reason in conflicts:
                summary.conflicts += 1
                summary.reject(candidate.row.row_number, CONFLICT_FIELD, reason)
                rejected_rows.append(_rejected_row(summary, context, candidate.row, CONFLICT_FIELD, reason))
            await insert_new_rows(connection, _REJECTED, rejected_rows, ["tenant", "input_sha256", "row_number"])
            if import_row is not None:
                counts = {"accepted": summary.accepted + len(fresh), "duplicates": summary.duplicates + duplicates}
                await connection.execute(_import_row(import_row[0], summary, context, import_row[1], **counts))
        summary.accepted += len(fresh)
        summary.duplicates += duplicates
        if collect_event_ids:
            summary.accepted_event_ids.extend(item.event.event_id for item in fresh)

        if not self.send:
            return
        self.sender.submit(outgoing)
        await self._dead_letter(rejected_rows, context)
        # A file import reads faster than the broker may take its events: wait while two batches wait to be sent.
        while self.sender.queued > 2 * BATCH_ROWS and not all_or_nothing:
            await asyncio.sleep(0.01)

    async def _claim(
        self, connection: AsyncConnection, candidates: list[_Candidate], summary: ImportSummary, context: ImportContext
    ) -> tuple[list[_Candidate], int, list[tuple[_Candidate, str]]]:
        """Insert the events whose ids are new; sort the others into duplicates and conflicts."""
        first_in_batch: dict[str, _Candidate] = {}
        repeats: list[_Candidate] = []
        for candidate in candidates:
            if candidate.event.event_id in first_in_batch:
                repeats.append(candidate)
            else:
                first_in_batch[candidate.event.event_id] = candidate
        rows = [_event_row(summary, context, candidate) for candidate in first_in_batch.values()]
        inserted = {key[0] for key in await copy_new_rows(connection, _EVENTS, rows, ["event_id"])}
        stored_before = [event_id for event_id in first_in_batch if event_id not in inserted]
        previous = await _stored_versions(connection, stored_before)

        fresh = [candidate for event_id, candidate in first_in_batch.items() if event_id in inserted]
        duplicates = 0
        conflicts: list[tuple[_Candidate, str]] = []
        for event_id in stored_before:
            candidate = first_in_batch[event_id]
            stored_sha256, where = previous[event_id]
            if stored_sha256 == candidate.raw_sha256:
                duplicates += 1
            else:
                conflicts.append((candidate, _conflict_reason(event_id, where)))
        for candidate in repeats:
            first = first_in_batch[candidate.event.event_id]
            if first.raw_sha256 == candidate.raw_sha256:
                duplicates += 1
            else:
                where = f"row {first.row.row_number} of this input"
                conflicts.append((candidate, _conflict_reason(candidate.event.event_id, where)))
        return fresh, duplicates, conflicts

    async def _dead_letter(self, rejected_rows: list[dict[str, object]], context: ImportContext) -> None:
        if self.dead_letters is None or not rejected_rows:
            return
        try:
            async with asyncio.timeout(self.send_timeout_s):
                await self._send_dead_letters(rejected_rows, context)
        except Exception as error:  # the rows are kept in ingest_rejected_rows either way
            log.warning("import.dead_letter_failed", rows=len(rejected_rows), error=repr(error)[:300])

    async def _send_dead_letters(self, rejected_rows: list[dict[str, object]], context: ImportContext) -> None:
        assert self.dead_letters is not None
        for rejected in rejected_rows:
            await self.dead_letters.send(
                original=rejected["raw"],  # type: ignore[arg-type]
                reason=f"{rejected['file_name'] or 'input'} row {rejected['row_number']}: "
                f"{rejected['field_path']}: {rejected['reason']}",
                tenant=context.tenant,
                field_path=str(rejected["field_path"]),
                correlation_id=context.correlation_id,
            )

    async def _start_import(self, import_id: str, summary: ImportSummary, context: ImportContext) -> None:
        async with self.database.transaction() as connection:
            await connection.execute(
                _IMPORTS.insert().values(
                    import_id=import_id,
                    tenant=context.tenant,
                    channel=context.channel,
                    file_name=context.file_name,
                    input_sha256=summary.input_sha256,
                    source_format=summary.format_name,
                    started_at=utc_now(),
                    status="running",
                    owner=process_owner(),
                )
            )

    async def _finish_import(self, import_id: str, summary: ImportSummary, outcome: str) -> None:
        """Store the counts, and a status: done or rejected when the input was read to the end, else the outcome."""
        status = _final_status(summary, outcome)
        async with self.database.transaction() as connection:
            await connection.execute(
                update(_IMPORTS)
                .where(_IMPORTS.c.import_id == import_id)
                .values(
                    finished_at=utc_now(),
                    rows_read=summary.rows_read,
                    accepted=summary.accepted,
                    duplicates=summary.duplicates,
                    rejected=summary.rejected,
                    empty=summary.empty,
                    status=status,
                )
            )


def _final_status(summary: ImportSummary, outcome: str) -> str:
    """Return an import's stored status: done or rejected when its input was read to the end, else the outcome."""
    if outcome != "completed":
        return outcome
    if summary.rejected:
        return "rejected"
    return "done"


def _import_row(
    import_id: str,
    summary: ImportSummary,
    context: ImportContext,
    started_at: datetime,
    *,
    accepted: int | None = None,
    duplicates: int | None = None,
    outcome: str = "completed",
) -> Any:
    """Build the INSERT of a finished import's row, with the summary's counts unless others are given."""
    return _IMPORTS.insert().values(
        **_import_values(
            import_id, summary, context, started_at, accepted=accepted, duplicates=duplicates, outcome=outcome
        )
    )


def _import_values(
    import_id: str,
    summary: ImportSummary,
    context: ImportContext,
    started_at: datetime,
    *,
    accepted: int | None = None,
    duplicates: int | None = None,
    outcome: str = "completed",
) -> dict[str, Any]:
    """Return the column values of a finished import's row, with the summary's counts unless others are given.

    The status is done or rejected when the input was read to the end, else the outcome (failed, interrupted).
    """
    return dict(
        import_id=import_id,
        tenant=context.tenant,
        channel=context.channel,
        file_name=context.file_name,
        input_sha256=summary.input_sha256,
        source_format=summary.format_name,
        started_at=started_at,
        finished_at=utc_now(),
        rows_read=summary.rows_read,
        accepted=summary.accepted if accepted is None else accepted,
        duplicates=summary.duplicates if duplicates is None else duplicates,
        rejected=summary.rejected,
        empty=summary.empty,
        status=_final_status(summary, outcome),
        owner=process_owner(),
    )


def _event_row(summary: ImportSummary, context: ImportContext, candidate: _Candidate) -> dict[str, Any]:
    event = candidate.event
    return {
        "event_id": event.event_id,
        "event_type": event.EVENT_TYPE,
        "tenant": event.tenant,
        "source_format": summary.format_name,
        "channel": context.channel,
        "file_name": context.file_name,
        "row_number": candidate.row.row_number,
        "raw": candidate.row.raw,
        "raw_sha256": candidate.raw_sha256,
        "event_json": candidate.event_json,
        "received_at": context.received_at,
        "occurred_at": event.occurred_at,
    }


def _rejected_row(
    summary: ImportSummary, context: ImportContext, row: RowResult, field_path: str, reason: str
) -> dict[str, object]:
    return {
        "tenant": context.tenant,
        "input_sha256": summary.input_sha256,
        "source_format": summary.format_name,
        "channel": context.channel,
        "file_name": context.file_name,
        "row_number": row.row_number,
        "field_path": field_path[:512],
        "reason": reason,
        "raw": row.raw,
        "received_at": context.received_at,
    }


async def _stored_versions(connection: AsyncConnection, event_ids: list[str]) -> dict[str, tuple[str, str]]:
    """Return the stored raw hash of each event id, and where that version came from."""
    found: dict[str, tuple[str, str]] = {}
    columns = _EVENTS.c
    for start in range(0, len(event_ids), 1000):
        chunk = event_ids[start : start + 1000]
        result = await connection.execute(
            select(
                columns.event_id,
                columns.raw_sha256,
                columns.file_name,
                columns.channel,
                columns.row_number,
                columns.received_at,
            ).where(columns.event_id.in_(chunk))
        )
        for row in result:
            found[row.event_id] = (row.raw_sha256, _origin(row.file_name, row.channel, row.row_number, row.received_at))
    return found


def _origin(file_name: str | None, channel: str, row_number: int | None, received_at: datetime) -> str:
    source = file_name or channel
    return f"{source} row {row_number} received {received_at.isoformat()}"


def _conflict_reason(event_id: str, where: str) -> str:
    return (
        f"event {event_id} was recorded before from {where} with different content; "
        "a restated row is not applied over the recorded one, so review both and correct at the source"
    )


def _batches(rows: Iterable[RowResult], size: int) -> Iterator[list[RowResult]]:
    batch: list[RowResult] = []
    for row in rows:
        batch.append(row)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch
