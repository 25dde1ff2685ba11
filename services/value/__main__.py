"""Run the value service: outcomes HTTP API, cost and outcome subscribers, value-mapped events."""

from __future__ import annotations

from services.value.handlers import ValueHandler
from services.value.http import build_outcomes_app
from services.value.intake import OutcomeIntake
from services.value.settings import ValueSettings
from services.value.tables import TABLES
from shared.events import CostAllocated, OutcomeRecorded
from shared.service import ServiceRuntime, run_service
from shared.topics import Topic


async def main() -> None:
    settings = ValueSettings()
    runtime = ServiceRuntime("value", settings)
    handler = ValueHandler(runtime.database, runtime.outbox, settings.reporting_currency)
    runtime.subscribe(Topic.COST_ALLOCATED, CostAllocated, handler.handle_costs)
    runtime.subscribe(Topic.OUTCOME_RECORDED, OutcomeRecorded, handler.handle_outcomes)
    app = build_outcomes_app(OutcomeIntake(runtime.outbox), settings)
    await runtime.run(TABLES, http_app=app, http_port=settings.http_port)


if __name__ == "__main__":
    run_service(main)
