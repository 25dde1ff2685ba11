"""Run the ingest service: webhook HTTP API, outbox relay and ops gRPC server."""

from __future__ import annotations

from services.ingest.bulk import CopyingOutbox
from services.ingest.dead_letters import DEAD_LETTERS, DeadLetterStore
from services.ingest.import_owners import mark_interrupted_imports
from services.ingest.importer import Recorder
from services.ingest.ops import registration
from services.ingest.settings import IngestSettings
from services.ingest.tables import TABLES
from services.ingest.webhook import build_webhook_app
from shared.events import DeadLetterRecorded
from shared.service import ServiceRuntime, run_service
from shared.topics import Topic


async def main() -> None:
    settings = IngestSettings()
    runtime = ServiceRuntime("ingest", settings)
    # A webhook responds with 202 once its events are committed. The recorder's sender sends them after the
    # response, waiting at most 5 s a send; whatever it could not send, the relay sends later.
    outbox = CopyingOutbox("ingest", runtime.database, runtime.publisher)
    recorder = Recorder(runtime.database, outbox, runtime.dead_letters, send_timeout_s=5.0)
    dead_letters = DeadLetterStore(runtime.database, runtime.publisher)
    runtime.subscribe(Topic.DEAD_LETTER, DeadLetterRecorded, dead_letters.handle)

    async def mark_interrupted() -> None:
        await mark_interrupted_imports(runtime.database)

    await runtime.run(
        [*TABLES, DEAD_LETTERS],
        http_app=build_webhook_app(recorder, settings),
        http_port=settings.http_port,
        registrations=[registration(runtime.database, dead_letters)],
        on_started=mark_interrupted,
    )


if __name__ == "__main__":
    run_service(main)
