"""Run the risk service: consume cost-allocated events, raise findings, publish risk-flagged events."""

from __future__ import annotations

from services.risk.budgets import load_budgets
from services.risk.handlers import RiskHandler
from services.risk.settings import RiskSettings
from services.risk.tables import TABLES
from shared.events import CostAllocated
from shared.logging import get_logger
from shared.service import ServiceRuntime, run_service
from shared.topics import Topic

log = get_logger(__name__)


async def main() -> None:
    settings = RiskSettings()
    runtime = ServiceRuntime("risk", settings)
    budgets = load_budgets(settings.budgets_file) if settings.budgets_file else []
    log.info("risk.configured", budgets=len(budgets))
    handler = RiskHandler(runtime.database, runtime.outbox, budgets)
    runtime.subscribe(Topic.COST_ALLOCATED, CostAllocated, handler.handle)
    await runtime.run(TABLES)


if __name__ == "__main__":
    run_service(main)
