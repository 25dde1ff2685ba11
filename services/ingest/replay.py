"""Replaying stored ingest events after a broker lost its data.

Every accepted event (usage, provider costs, seats, GPU utilisation) stays in the
ingest outbox after it is sent. A replay marks them all unsent and sends them again
in their original order. Consumers skip event ids they have already stored, so only
what the broker lost takes effect.
"""

from __future__ import annotations

from datetime import timedelta

from shared.db import Database
from shared.kafka import EventPublisher, ensure_topics
from shared.logging import get_logger
from shared.outbox import Outbox
from shared.settings import ServiceSettings

log = get_logger(__name__)


async def replay_usage_events(settings: ServiceSettings) -> int:
    database = Database(settings.database_url_for("ingest"))
    publisher = EventPublisher(settings.kafka_bootstrap_servers, client_id="aifinops-replay")
    try:
        await ensure_topics(settings.kafka_bootstrap_servers)
        await publisher.start()
        outbox = Outbox("ingest", database, publisher)
        await outbox.mark_all_unsent()
        sent = 0
        while batch := await outbox.send_pending(min_age=timedelta(0)):
            sent += batch
        log.info("replay.finished", events=sent)
        return sent
    finally:
        await publisher.stop()
        await database.dispose()
