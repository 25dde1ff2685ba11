"""The dead-letter store: every service's dead letters, kept by ingest so operators can list, inspect and replay them.

Ingest consumes the dead-letter topic into ``ingest_dead_letters`` (keyed by the dead letter's event id, so a
redelivered letter is stored once). Replaying sends the original bytes back to the original topic unchanged and
records when; the consumer that gave up on them processes them again, idempotently.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import Column, Index, LargeBinary, Text, update
from sqlmodel import Field, SQLModel

from shared.consumer import Incoming
from shared.db import Database, UtcDateTime, insert_new_rows
from shared.events import DeadLetterRecorded, utc_now
from shared.kafka import EventPublisher
from shared.logging import get_logger

log = get_logger(__name__)


class IngestDeadLetter(SQLModel, table=True):
    """A message or input row some service could not process, with the reason and the original bytes."""

    __tablename__ = "ingest_dead_letters"
    __table_args__ = (Index("ix_ingest_dead_letters_failed", "failed_at"),)

    dead_letter_id: str = Field(primary_key=True, max_length=512)
    consumer: str = Field(max_length=255)
    tenant: str = Field(max_length=512)
    original_topic: str | None = Field(default=None, max_length=255)
    original_partition: int | None = None
    original_offset: int | None = None
    original_key: bytes | None = Field(default=None, sa_column=Column(LargeBinary))
    original_bytes: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    reason: str = Field(sa_column=Column(Text, nullable=False))
    field_path: str | None = Field(default=None, max_length=512)
    attempts: int = 1
    failed_at: datetime = Field(sa_column=Column(UtcDateTime, nullable=False))
    replayed_at: datetime | None = Field(default=None, sa_column=Column(UtcDateTime))


DEAD_LETTERS = IngestDeadLetter.__table__  # type: ignore[attr-defined]


class DeadLetterStore:
    def __init__(self, database: Database, publisher: EventPublisher) -> None:
        self.database = database
        self.publisher = publisher

    async def handle(self, batch: Sequence[Incoming[DeadLetterRecorded]]) -> None:
        rows = [
            {
                "dead_letter_id": letter.event_id,
                "consumer": letter.consumer,
                "tenant": letter.tenant,
                "original_topic": letter.original_topic,
                "original_partition": letter.original_partition,
                "original_offset": letter.original_offset,
                "original_key": base64.b64decode(letter.original_key_b64) if letter.original_key_b64 else None,
                "original_bytes": base64.b64decode(letter.original_bytes_b64),
                "reason": letter.reason,
                "field_path": letter.field_path,
                "attempts": letter.attempts,
                "failed_at": letter.occurred_at,
            }
            for letter in (item.event for item in batch)
        ]
        async with self.database.transaction() as connection:
            await insert_new_rows(connection, DEAD_LETTERS, rows, ["dead_letter_id"])

    async def replay(self, dead_letter_id: str) -> tuple[str, datetime]:
        """Send a dead letter's original bytes to its original topic; raise LookupError or ValueError if it cannot."""
        async with self.database.engine.connect() as connection:
            row = (
                await connection.execute(DEAD_LETTERS.select().where(DEAD_LETTERS.c.dead_letter_id == dead_letter_id))
            ).first()
        if row is None:
            raise LookupError(f"dead letter {dead_letter_id!r} not found")
        if not row.original_topic:
            raise ValueError(f"dead letter {dead_letter_id!r} came from an import, not a topic; import the file again")
        await self.publisher.send_raw(row.original_topic, row.original_bytes, key=row.original_key)
        replayed_at = utc_now()
        async with self.database.transaction() as connection:
            await connection.execute(
                update(DEAD_LETTERS)
                .where(DEAD_LETTERS.c.dead_letter_id == dead_letter_id)
                .values(replayed_at=replayed_at)
            )
        log.info("dead_letter.replayed", dead_letter_id=dead_letter_id, topic=row.original_topic)
        return row.original_topic, replayed_at
