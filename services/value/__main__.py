"""Run the value service: outcomes HTTP API, cost and outcome subscribers, value-mapped events."""

from __future__ import annotations

from services.value.handlers import ValueHandler
from services.value.http import build_outcomes_app
from services.value.intake import OutcomeIntake
from services.value.ops import registration
from services.value.settings import ValueSettings
from services.value.tables import TABLES
from services.value.use_cases import UseCaseRegister
from shared.events import CostAllocated, OutcomeRecorded
from shared.logging import get_logger
from shared.service import COST_BATCH_RECORDS, ServiceRuntime, run_service
from shared.topics import Topic

log = get_logger(__name__)


async def main() -> None:
    settings = ValueSettings()
    runtime = ServiceRuntime("value", settings)
    use_cases = UseCaseRegister.load(settings.use_cases_file)
    log.info("value.configured", use_cases=",".join(use_cases.names()), currency=settings.reporting_currency)
    handler = ValueHandler(runtime.database, runtime.outbox, settings.reporting_currency, use_cases)
    # Each batch recomputes the figures its costs touch once, whatever its size, so larger batches do less work
    # per cost when costs arrive faster than they are recomputed.
    runtime.subscribe(Topic.COST_ALLOCATED, CostAllocated, handler.handle_costs, max_records=COST_BATCH_RECORDS)
    runtime.subscribe(Topic.OUTCOME_RECORDED, OutcomeRecorded, handler.handle_outcomes)
    app = build_outcomes_app(OutcomeIntake(runtime.outbox), settings)

    async def apply_register() -> None:
        try:
            await handler.recompute_all()
        except Exception as error:  # stored figures stay as they were; the next cost or outcome recomputes them
            log.warning("unit_economics.recompute_failed", error=repr(error)[:300])

    await runtime.run(
        TABLES,
        http_app=app,
        http_port=settings.http_port,
        on_started=apply_register,
        registrations=[registration(runtime.database)],
    )


if __name__ == "__main__":
    run_service(main)
