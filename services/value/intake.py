"""Accepting outcomes from HTTP and files: validate all, store them in the outbox, then publish.

The value service's own subscriber reads them back from Kafka like outcomes that
other systems publish there directly, so every path ends in the same handler.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from services.value.outcomes import OutcomeRejected, outcome_event, same_content
from shared.events import OutcomeRecorded
from shared.kafka import OutgoingEvent
from shared.logging import get_logger
from shared.outbox import Outbox
from shared.topics import Topic

log = get_logger(__name__)


class ConflictingOutcomes(Exception):
    """Outcomes that restate an outcome id recorded before with other content; nothing of the request is stored."""

    def __init__(self, event_ids: list[str]) -> None:
        super().__init__(f"{len(event_ids)} outcomes restate recorded outcomes with other content")
        self.event_ids = event_ids


class OutcomeIntake:
    def __init__(self, outbox: Outbox) -> None:
        self.outbox = outbox

    def validate(
        self, items: Iterable[Any], *, tenant: str, correlation_id: str, source: str
    ) -> tuple[list[OutcomeRecorded], list[OutcomeRejected]]:
        events: list[OutcomeRecorded] = []
        errors: list[OutcomeRejected] = []
        for index, item in enumerate(items):
            try:
                events.append(outcome_event(item, index, tenant=tenant, correlation_id=correlation_id, source=source))
            except OutcomeRejected as error:
                errors.append(error)
        return events, errors

    async def accept(self, events: list[OutcomeRecorded]) -> tuple[int, int]:
        """Store the events durably and send them; return (new, duplicate) counts.

        Raise ConflictingOutcomes, storing nothing, when an event id was recorded before with other content or
        appears twice in ``events`` with different content.
        """
        unique: dict[str, OutcomeRecorded] = {}
        for event in events:
            first = unique.setdefault(event.event_id, event)
            if not same_content(first, event):
                raise ConflictingOutcomes([event.event_id])
        events = list(unique.values())
        outgoing = [
            OutgoingEvent.of(Topic.OUTCOME_RECORDED, event, key=f"use_case:{event.use_case}") for event in events
        ]
        async with self.outbox.database.transaction() as connection:
            new_ids = await self.outbox.add(connection, outgoing)
            seen = [event for event in events if event.event_id not in new_ids]
            conflicting = await self._conflicting(connection, seen)
            if conflicting:
                # Raising inside the transaction rolls back the outcomes stored above: a request is all or nothing.
                raise ConflictingOutcomes(conflicting)
        fresh = [item for item in outgoing if item.event_id in new_ids]
        try:
            await self.outbox.send_now(fresh)
        except Exception as error:  # stored in the outbox: the value service's relay sends it later
            log.warning("outcomes.send_deferred", events=len(fresh), error=repr(error)[:300])
        log.info("outcomes.accepted", new=len(fresh), duplicate=len(outgoing) - len(fresh))
        return len(fresh), len(outgoing) - len(fresh)

    async def _conflicting(self, connection: AsyncConnection, seen: list[OutcomeRecorded]) -> list[str]:
        """Return the ids among ``seen`` whose stored outcome differs in content from the new one."""
        if not seen:
            return []
        table = self.outbox.table
        stored = {
            row.event_id: row.value
            for row in (
                await connection.execute(
                    select(table.c.event_id, table.c.value).where(table.c.event_id.in_([e.event_id for e in seen]))
                )
            ).all()
        }
        conflicting = []
        for event in seen:
            earlier = stored.get(event.event_id)
            if earlier is not None and not same_content(OutcomeRecorded.model_validate_json(earlier), event):
                conflicting.append(event.event_id)
        return conflicting
