"""Accepting outcomes from HTTP and files: validate all, store them in the outbox, then publish.

The value service's own subscriber reads them back from Kafka like outcomes that
other systems publish there directly, so every path ends in the same handler.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from services.value.outcomes import OutcomeRejected, outcome_event
from shared.events import OutcomeRecorded
from shared.kafka import OutgoingEvent
from shared.logging import get_logger
from shared.outbox import Outbox
from shared.topics import Topic

log = get_logger(__name__)


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
        """Store the events durably and send them; return (new, duplicate) counts."""
        outgoing = [
            OutgoingEvent.of(Topic.OUTCOME_RECORDED, event, key=f"use_case:{event.use_case}") for event in events
        ]
        async with self.outbox.database.transaction() as connection:
            new_ids = await self.outbox.add(connection, outgoing)
        fresh = [item for item in outgoing if item.event_id in new_ids]
        try:
            await self.outbox.send_now(fresh)
        except Exception as error:  # stored in the outbox: the value service's relay sends it later
            log.warning("outcomes.send_deferred", events=len(fresh), error=repr(error)[:300])
        log.info("outcomes.accepted", new=len(fresh), duplicate=len(outgoing) - len(fresh))
        return len(fresh), len(outgoing) - len(fresh)
