"""Batch import of a provider export file, as run by ``aifinops import``.

The command writes to the ingest service's database and outbox directly, so an
import works while the ingest service is down. The service's relay sends any
event the command could not send.
"""

from __future__ import annotations

import io
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import IO, Any

from aiokafka.errors import KafkaError

from services.ingest.bulk import CopyingOutbox
from services.ingest.import_owners import mark_interrupted_imports
from services.ingest.importer import ImportSummary, Recorder, file_sha256, validate_tenant
from services.ingest.normalisers import FormatError, ImportContext, Normaliser, detect_format, normaliser_for
from services.ingest.tables import TABLES
from shared.consumer import DeadLetters
from shared.db import Database
from shared.events import utc_now
from shared.kafka import EventPublisher, ensure_topics
from shared.logging import get_logger
from shared.settings import ServiceSettings

log = get_logger(__name__)

DETECTION_BYTES = 64 * 1024
PROGRESS_READ_BYTES = 1024 * 1024


class CountingReader(io.RawIOBase):
    """A binary reader that reports how many bytes were read, for a progress bar."""

    def __init__(self, inner: IO[bytes], on_read: Callable[[int], None]) -> None:
        self.inner = inner
        self.on_read = on_read

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self.inner.read(len(buffer))
        buffer[: len(data)] = data
        self.on_read(len(data))
        return len(data)


@dataclass(frozen=True)
class FileImport:
    normaliser: Normaliser
    detected: bool
    summary: ImportSummary


def choose_normaliser(path: Path, format_name: str | None) -> tuple[Normaliser, bool]:
    """Return the normaliser for a file and whether it was detected rather than named."""
    if not path.is_file():
        raise FormatError("not a regular file: pass a file, not a device, pipe or folder")
    if format_name:
        return normaliser_for(format_name), False
    with path.open("rb") as handle:
        head = handle.read(DETECTION_BYTES)
    return detect_format(head, path.name), True


async def import_file(
    path: Path,
    *,
    settings: ServiceSettings,
    tenant: str,
    format_name: str | None = None,
    on_bytes: Callable[[int], None] | None = None,
    observed_at: datetime | None = None,
    currency: str | None = None,
) -> FileImport:
    """Import one provider file into the ingest tables and send its new events.

    ``observed_at`` dates snapshots whose rows carry no time (seat lists, metric scrapes
    without timestamps). ``currency`` names the currency of exports without a currency
    column. Formats that do not need them ignore them.
    """
    validate_tenant(tenant)
    normaliser, detected = choose_normaliser(path, format_name)
    database = Database(settings.database_url_for("ingest"))
    publisher = EventPublisher(settings.kafka_bootstrap_servers, client_id="aifinops-import")
    try:
        await database.create_tables(TABLES)
        await mark_interrupted_imports(database)
        connected = await _connect(publisher, settings)
        outbox = CopyingOutbox("ingest", database, publisher)
        recorder = Recorder(
            database, outbox, DeadLetters(publisher, "ingest.import") if connected else None, send=connected
        )
        context = ImportContext(
            tenant=tenant,
            correlation_id=f"import:{uuid.uuid4()}",
            received_at=utc_now(),
            file_name=path.name,
            channel="file",
            observed_at=observed_at,
            currency=currency,
        )
        with path.open("rb") as raw:
            # A large buffer calls the progress callback once a MiB instead of once every 8 KiB.
            stream: IO[bytes] = (
                io.BufferedReader(CountingReader(raw, on_bytes), buffer_size=PROGRESS_READ_BYTES) if on_bytes else raw
            )
            summary = await recorder.record(
                stream, normaliser=normaliser, context=context, input_sha256=file_sha256(path)
            )
        return FileImport(normaliser, detected, summary)
    finally:
        await publisher.stop()
        await database.dispose()


async def _connect(publisher: EventPublisher, settings: ServiceSettings) -> bool:
    try:
        await ensure_topics(settings.kafka_bootstrap_servers)
        await publisher.start()
    except KafkaError as error:
        log.warning(
            "import.broker_unreachable",
            bootstrap_servers=settings.kafka_bootstrap_servers,
            error=repr(error)[:200],
            hint="events stay in the ingest outbox until the ingest service sends them",
        )
        return False
    return True
