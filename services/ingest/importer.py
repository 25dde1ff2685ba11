"""Recording normalised rows: claim each event id, keep the evidence, queue the event, report the counts.

Files and webhook payloads take the same path. Rows are stored in batches; in
each batch the event ids are claimed (a duplicate key means the event was
recorded before) in the same transaction that writes the evidence and the
outbox rows, so a failed write followed by a retry still records each event once.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from sqlalchemy import update

from services.ingest.normalisers import ImportContext, Normaliser, RowResult
from services.ingest.normalisers.base import IngestEvent
from services.ingest.tables import IngestImport, IngestRejectedRow, IngestUsageEvent
from shared.consumer import DeadLetters
from shared.db import Database, insert_new_rows
from shared.events import GpuUtilisationReported, SeatActivityReported, SeatEntitlementReported, utc_now
from shared.kafka import OutgoingEvent
from shared.logging import get_logger
from shared.outbox import Outbox
from shared.topics import EVENT_TOPICS

log = get_logger(__name__)

BATCH_ROWS = 2000
MAX_REPORTED_REJECTIONS = 50


@dataclass(frozen=True, slots=True)
class Rejection:
    row_number: int
    field_path: str
    reason: str


@dataclass
class ImportSummary:
    format_name: str
    file_name: str | None
    input_sha256: str
    rows_read: int = 0
    accepted: int = 0
    duplicates: int = 0
    rejected: int = 0
    empty: int = 0
    rejections: list[Rejection] = field(default_factory=list)
    accepted_event_ids: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, object]:
        return {
            "format": self.format_name,
            "file": self.file_name,
            "read": self.rows_read,
            "accepted": self.accepted,
            "duplicate": self.duplicates,
            "rejected": self.rejected,
            "empty": self.empty,
            "rejections": [
                {"row": item.row_number, "field": item.field_path, "reason": item.reason} for item in self.rejections
            ],
        }


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
    """Stores normalised rows for one tenant's input and sends the new events."""

    def __init__(
        self, database: Database, outbox: Outbox, dead_letters: DeadLetters | None, *, send: bool = True
    ) -> None:
        self.database = database
        self.outbox = outbox
        self.dead_letters = dead_letters
        self.send = send

    async def record(
        self,
        stream: IO[bytes],
        *,
        normaliser: Normaliser,
        context: ImportContext,
        input_sha256: str,
        on_progress: Callable[[int], None] | None = None,
        all_or_nothing: bool = False,
    ) -> ImportSummary:
        """Read every row of the input and record it; with ``all_or_nothing`` a single bad row records nothing."""
        summary = ImportSummary(normaliser.format_name, context.file_name, input_sha256)
        import_id = str(uuid.uuid4())
        await self._start_import(import_id, summary, context)
        rows = normaliser.rows(stream, context)
        if all_or_nothing:
            rows = iter(self._validated_whole(rows, summary))
        try:
            for batch in _batches(rows, BATCH_ROWS):
                await self._record_batch(batch, summary, context, normaliser.format_name)
                if on_progress is not None:
                    on_progress(len(batch))
        finally:
            await self._finish_import(import_id, summary)
        log.info(
            "import.finished",
            format=summary.format_name,
            file=summary.file_name,
            tenant=context.tenant,
            read=summary.rows_read,
            accepted=summary.accepted,
            duplicate=summary.duplicates,
            rejected=summary.rejected,
            empty=summary.empty,
        )
        return summary

    def _validated_whole(self, rows: Iterator[RowResult], summary: ImportSummary) -> list[RowResult]:
        materialised = list(rows)
        failures = [row for row in materialised if row.error is not None]
        if failures:
            summary.rows_read = len(materialised)
            summary.rejected = len(failures)
            summary.rejections = [
                Rejection(row.row_number, row.error.field_path, row.error.reason)  # type: ignore[union-attr]
                for row in failures[:MAX_REPORTED_REJECTIONS]
            ]
            return []
        return materialised

    async def _record_batch(
        self, batch: list[RowResult], summary: ImportSummary, context: ImportContext, format_name: str
    ) -> None:
        received_at = context.received_at
        event_rows: list[dict[str, object]] = []
        outgoing: dict[str, OutgoingEvent] = {}
        rejected_rows: list[dict[str, object]] = []
        for row in batch:
            summary.rows_read += 1
            if row.empty:
                summary.empty += 1
            elif row.error is not None:
                summary.rejected += 1
                if len(summary.rejections) < MAX_REPORTED_REJECTIONS:
                    summary.rejections.append(Rejection(row.row_number, row.error.field_path, row.error.reason))
                rejected_rows.append(
                    {
                        "tenant": context.tenant,
                        "input_sha256": summary.input_sha256,
                        "source_format": format_name,
                        "channel": context.channel,
                        "file_name": context.file_name,
                        "row_number": row.row_number,
                        "field_path": row.error.field_path,
                        "reason": row.error.reason,
                        "raw": row.raw,
                        "received_at": received_at,
                    }
                )
            elif row.event is not None:
                event = row.event
                event_json = event.model_dump_json()
                event_rows.append(
                    {
                        "event_id": event.event_id,
                        "event_type": event.EVENT_TYPE,
                        "tenant": event.tenant,
                        "source_format": format_name,
                        "channel": context.channel,
                        "file_name": context.file_name,
                        "row_number": row.row_number,
                        "raw": row.raw,
                        "raw_sha256": event.evidence.raw_sha256 or "",
                        "event_json": event_json,
                        "received_at": received_at,
                        "occurred_at": event.occurred_at,
                    }
                )
                outgoing[event.event_id] = OutgoingEvent.of(EVENT_TOPICS[event.EVENT_TYPE], event, stable_key(event))

        async with self.database.transaction() as connection:
            new_keys = await insert_new_rows(connection, IngestUsageEvent.__table__, event_rows, ["event_id"])  # type: ignore[attr-defined]
            new_ids = {key[0] for key in new_keys}
            fresh = [outgoing[event_id] for event_id in outgoing if event_id in new_ids]
            await self.outbox.add(connection, fresh)
            await insert_new_rows(
                connection,
                IngestRejectedRow.__table__,
                rejected_rows,  # type: ignore[attr-defined]
                ["tenant", "input_sha256", "row_number"],
            )
        summary.accepted += len(fresh)
        summary.duplicates += len(outgoing) - len(fresh)
        summary.accepted_event_ids.extend(event.event_id for event in fresh)

        if not self.send:
            return
        try:
            await self.outbox.send_now(fresh)
        except Exception as error:  # stored in the outbox: the ingest service's relay sends it later
            log.warning("import.send_deferred", events=len(fresh), error=repr(error)[:300])
        if self.dead_letters is not None and rejected_rows:
            try:
                for rejected in rejected_rows:
                    await self.dead_letters.send(
                        original=rejected["raw"],  # type: ignore[arg-type]
                        reason=f"{rejected['file_name'] or 'input'} row {rejected['row_number']}: "
                        f"{rejected['field_path']}: {rejected['reason']}",
                        tenant=context.tenant,
                        field_path=str(rejected["field_path"]),
                        correlation_id=context.correlation_id,
                    )
            except Exception as error:  # the rows are kept in ingest_rejected_rows either way
                log.warning("import.dead_letter_failed", rows=len(rejected_rows), error=repr(error)[:300])

    async def _start_import(self, import_id: str, summary: ImportSummary, context: ImportContext) -> None:
        async with self.database.transaction() as connection:
            await connection.execute(
                IngestImport.__table__.insert().values(  # type: ignore[attr-defined]
                    import_id=import_id,
                    tenant=context.tenant,
                    channel=context.channel,
                    file_name=context.file_name,
                    input_sha256=summary.input_sha256,
                    source_format=summary.format_name,
                    started_at=utc_now(),
                    status="running",
                )
            )

    async def _finish_import(self, import_id: str, summary: ImportSummary) -> None:
        table = IngestImport.__table__  # type: ignore[attr-defined]
        async with self.database.transaction() as connection:
            await connection.execute(
                update(table)
                .where(table.c.import_id == import_id)
                .values(
                    finished_at=utc_now(),
                    rows_read=summary.rows_read,
                    accepted=summary.accepted,
                    duplicates=summary.duplicates,
                    rejected=summary.rejected,
                    empty=summary.empty,
                    status="rejected" if summary.rejected else "done",
                )
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
