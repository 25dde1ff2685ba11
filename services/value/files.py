"""Outcome files, as imported by ``aifinops outcomes import``: CSV rows become outcome-recorded events."""

from __future__ import annotations

import uuid
from pathlib import Path

from services.value.intake import OutcomeIntake
from services.value.outcomes import OutcomeRejected, rows_from_csv
from services.value.tables import TABLES
from shared.db import Database
from shared.kafka import EventPublisher, ensure_topics
from shared.outbox import Outbox
from shared.settings import ServiceSettings


async def import_outcomes_file(
    path: Path, settings: ServiceSettings, tenant: str
) -> tuple[int, int, list[OutcomeRejected]]:
    """Validate every row, then record the valid ones; return (new, duplicate, rejected rows)."""
    rows = list(rows_from_csv(path.read_bytes()))
    database = Database(settings.database_url_for("value"))
    publisher = EventPublisher(settings.kafka_bootstrap_servers, client_id="aifinops-outcomes-import")
    try:
        await database.create_tables(TABLES)
        await ensure_topics(settings.kafka_bootstrap_servers)
        await publisher.start()
        intake = OutcomeIntake(Outbox("value", database, publisher))
        events, rejected = intake.validate(
            rows, tenant=tenant, correlation_id=f"outcomes:{uuid.uuid4()}", source="value.file"
        )
        new, duplicate = await intake.accept(events)
        return new, duplicate, rejected
    finally:
        await publisher.stop()
        await database.dispose()
