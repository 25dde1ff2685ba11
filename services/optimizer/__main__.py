"""Run the optimizer service: consume cost-allocated events, publish savings recommendations."""

from __future__ import annotations

from services.optimizer.handlers import OptimizerHandler
from services.optimizer.policy import OptimizerPolicy, load_alternatives
from services.optimizer.settings import OptimizerSettings
from services.optimizer.tables import TABLES
from shared.catalogue import PriceCatalogue
from shared.events import CostAllocated
from shared.logging import get_logger
from shared.service import ServiceRuntime, run_service
from shared.topics import Topic

log = get_logger(__name__)


async def main() -> None:
    settings = OptimizerSettings()
    runtime = ServiceRuntime("optimizer", settings)
    policy = OptimizerPolicy.load(settings.config_file)
    catalogue = PriceCatalogue.load()
    log.info(
        "optimizer.configured",
        catalogue_version=catalogue.version,
        non_interactive_use_cases=",".join(sorted(policy.non_interactive_use_cases)),
    )
    handler = OptimizerHandler(runtime.database, runtime.outbox, catalogue, policy, load_alternatives())
    runtime.subscribe(Topic.COST_ALLOCATED, CostAllocated, handler.handle)
    await runtime.run(TABLES)


if __name__ == "__main__":
    run_service(main)
