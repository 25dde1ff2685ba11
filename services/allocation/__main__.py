"""Run the allocation service: consume usage-recorded events, store the cost ledger, publish cost-allocated events."""

from __future__ import annotations

from services.allocation.handlers import AllocationHandler
from services.allocation.rules import AllocationRules
from services.allocation.settings import AllocationSettings
from services.allocation.tables import TABLES
from shared.catalogue import PriceCatalogue
from shared.events import UsageRecorded
from shared.logging import get_logger
from shared.service import ServiceRuntime, run_service
from shared.topics import Topic

log = get_logger(__name__)


async def main() -> None:
    settings = AllocationSettings()
    runtime = ServiceRuntime("allocation", settings)
    catalogue = PriceCatalogue.load(settings.prices_file, settings.aliases_file)
    rules = AllocationRules.load(settings.rules_file) if settings.rules_file else AllocationRules.empty()
    log.info("allocation.configured", catalogue_version=catalogue.version, rules=len(rules.rules))
    handler = AllocationHandler(runtime.database, runtime.outbox, catalogue, rules)
    runtime.subscribe(Topic.USAGE_RECORDED, UsageRecorded, handler.handle)
    await runtime.run(TABLES)


if __name__ == "__main__":
    run_service(main)
