"""Run the ingest service: webhook HTTP API, outbox relay and ops gRPC server."""

from __future__ import annotations

from services.ingest.importer import Recorder
from services.ingest.settings import IngestSettings
from services.ingest.tables import TABLES
from services.ingest.webhook import build_webhook_app
from shared.service import ServiceRuntime, run_service


async def main() -> None:
    settings = IngestSettings()
    runtime = ServiceRuntime("ingest", settings)
    # A webhook responds with 202 once its events are stored. Sending waits briefly, then the relay takes over.
    recorder = Recorder(runtime.database, runtime.outbox, runtime.dead_letters, send_timeout_s=5.0)
    await runtime.run(TABLES, http_app=build_webhook_app(recorder, settings), http_port=settings.http_port)


if __name__ == "__main__":
    run_service(main)
