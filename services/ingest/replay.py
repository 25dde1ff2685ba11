"""Replaying stored events after a broker lost its data.

Every event a service sends stays in its outbox after it is sent: ingest's hold what
providers sent (usage, provider costs, seats, GPU utilisation), the other services'
hold what they derived (costs, findings, unit economics, recommendations, outcomes).
A replay marks them unsent and sends them again in their original order, service by
service along the pipeline. Consumers skip event ids they have already stored, so only
what the broker lost takes effect. Replaying ingest alone is not enough: an event a
service derived and sent before the loss, but that its consumers had not read yet,
lives only in that service's outbox.
"""

from __future__ import annotations

from datetime import timedelta

from shared.db import Database
from shared.kafka import EventPublisher, ensure_topics
from shared.logging import get_logger
from shared.outbox import Outbox
from shared.settings import ServiceSettings

log = get_logger(__name__)


PIPELINE_ORDER = ("ingest", "allocation", "risk", "value", "optimizer")


async def replay_outboxes(settings: ServiceSettings, services: tuple[str, ...] = PIPELINE_ORDER) -> dict[str, int]:
    """Send every stored event of the given services again; return how many each sent."""
    sent: dict[str, int] = {}
    for service in services:
        sent[service] = await _replay_outbox(settings, service)
    return sent


async def replay_usage_events(settings: ServiceSettings) -> int:
    """Send every stored ingest event again."""
    return await _replay_outbox(settings, "ingest")


async def _replay_outbox(settings: ServiceSettings, service: str) -> int:
    database = Database(settings.database_url_for(service))
    publisher = EventPublisher(settings.kafka_bootstrap_servers, client_id="aifinops-replay")
    try:
        await ensure_topics(settings.kafka_bootstrap_servers)
        await publisher.start()
        outbox = Outbox(service, database, publisher)
        await outbox.mark_all_unsent()
        sent = 0
        while batch := await outbox.send_pending(min_age=timedelta(0)):
            sent += batch
        log.info("replay.finished", service=service, events=sent)
        return sent
    finally:
        await publisher.stop()
        await database.dispose()
