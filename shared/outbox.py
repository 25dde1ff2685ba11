"""The transactional outbox: events are stored with the state change that caused them, then sent.

A handler writes its derived events to its service's outbox table in the same
transaction as its own rows. After the commit it sends them at once and marks
them sent; a relay loop sends whatever a crash left unsent. A crash between
sending and marking sends an event twice, which consumers absorb because they
skip event ids they have already stored.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Index,
    Integer,
    LargeBinary,
    String,
    Table,
    func,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlmodel import SQLModel

from shared.db import Database, UtcDateTime, insert_new_rows
from shared.events import utc_now
from shared.kafka import EventPublisher, OutgoingEvent
from shared.logging import get_logger

log = get_logger(__name__)

_tables: dict[str, Table] = {}


def outbox_table(service: str) -> Table:
    """Return the outbox table of one service, defining it on first use."""
    name = f"{service}_outbox"
    if name not in _tables:
        _tables[name] = Table(
            name,
            SQLModel.metadata,
            Column("seq", Integer().with_variant(BigInteger(), "postgresql"), primary_key=True, autoincrement=True),
            Column("event_id", String(512), nullable=False, unique=True),
            Column("topic", String(255), nullable=False),
            Column("key", LargeBinary, nullable=False),
            Column("value", LargeBinary, nullable=False),
            Column("event_type", String(64), nullable=False),
            Column("correlation_id", String(512), nullable=False),
            Column("created_at", UtcDateTime, nullable=False),
            Column("published", Boolean, nullable=False, default=False),
            Index(f"ix_{name}_pending", "published", "seq"),
        )
    return _tables[name]


async def count_unsent(database: Database, service: str) -> int:
    """Count the events in one service's outbox that were not sent yet."""
    table = outbox_table(service)
    async with database.engine.connect() as connection:
        result = await connection.execute(select(func.count()).select_from(table).where(table.c.published.is_(False)))
        return int(result.scalar_one())


class Outbox:
    def __init__(self, service: str, database: Database, publisher: EventPublisher) -> None:
        self.service = service
        self.table = outbox_table(service)
        self.database = database
        self.publisher = publisher

    @staticmethod
    def rows_of(events: Sequence[OutgoingEvent]) -> list[dict[str, Any]]:
        """Build the unsent outbox rows of events, all created now."""
        now = utc_now()
        return [
            {
                "event_id": event.event_id,
                "topic": event.topic,
                "key": event.key,
                "value": event.value,
                "event_type": event.event_type,
                "correlation_id": event.correlation_id,
                "created_at": now,
                "published": False,
            }
            for event in events
        ]

    async def add(self, connection: AsyncConnection, events: Sequence[OutgoingEvent]) -> set[str]:
        """Store events inside the caller's transaction; return the ids that were not stored before."""
        inserted = await insert_new_rows(connection, self.table, self.rows_of(events), ["event_id"])
        return {key[0] for key in inserted}

    async def send_now(self, events: Sequence[OutgoingEvent]) -> None:
        """Send events that were just committed and mark them sent."""
        if not events:
            return
        await self.publisher.publish(events)
        await self._mark_sent([event.event_id for event in events])

    async def send_pending(self, *, limit: int = 5000, min_age: timedelta = timedelta(seconds=2)) -> int:
        """Send stored events that are still unsent, oldest first; return how many were sent."""
        cutoff = utc_now() - min_age
        columns = self.table.c
        async with self.database.engine.connect() as connection:
            result = await connection.execute(
                select(
                    columns.event_id,
                    columns.topic,
                    columns.key,
                    columns.value,
                    columns.event_type,
                    columns.correlation_id,
                )
                .where(columns.published.is_(False), columns.created_at <= cutoff)
                .order_by(columns.seq)
                .limit(limit)
            )
            pending = [
                OutgoingEvent(
                    topic=row.topic,
                    key=row.key,
                    value=row.value,
                    event_id=row.event_id,
                    event_type=row.event_type,
                    correlation_id=row.correlation_id,
                )
                for row in result
            ]
        if pending:
            await self.send_now(pending)
            log.info("outbox.sent_pending", service=self.service, events=len(pending))
        return len(pending)

    async def pending_count(self) -> int:
        return await count_unsent(self.database, self.service)

    async def mark_all_unsent(self) -> int:
        """Mark every stored event unsent so the relay sends it again (recovery after a broker loss)."""
        async with self.database.transaction() as connection:
            result = await connection.execute(update(self.table).values(published=False))
            return int(result.rowcount or 0)

    async def run_relay(self, stop: asyncio.Event, interval_s: float = 1.0) -> None:
        while not stop.is_set():
            try:
                while await self.send_pending() > 0:
                    pass
            except Exception as error:  # the relay must outlive a broker or database outage
                log.warning("outbox.relay_failed", service=self.service, error=repr(error)[:300])
            try:
                await asyncio.wait_for(stop.wait(), timeout=interval_s)
            except TimeoutError:
                pass

    async def _mark_sent(self, event_ids: list[str]) -> None:
        async with self.database.transaction() as connection:
            for start in range(0, len(event_ids), 1000):
                chunk = event_ids[start : start + 1000]
                await connection.execute(
                    update(self.table).where(self.table.c.event_id.in_(chunk)).values(published=True)
                )
