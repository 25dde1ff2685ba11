"""Run the allocation service: price usage, keep the cost ledger, reconcile with provider statements."""

from __future__ import annotations

from services.allocation.handlers import AllocationHandler
from services.allocation.ops import registration
from services.allocation.reconciliation import Tolerance
from services.allocation.settings import AllocationSettings
from services.allocation.sources import AllocationSources
from services.allocation.tables import TABLES
from shared.events import ProviderCostReported, UsageRecorded
from shared.logging import get_logger
from shared.service import ServiceRuntime, run_service
from shared.topics import Topic

log = get_logger(__name__)


async def main() -> None:
    settings = AllocationSettings()
    runtime = ServiceRuntime("allocation", settings)
    tolerance = Tolerance(settings.reconciliation_tolerance_percent, settings.reconciliation_tolerance_amount)
    handler = AllocationHandler(runtime.database, runtime.outbox, AllocationSources.from_settings(settings), tolerance)
    log.info(
        "allocation.configured",
        version=handler.loaded.version,
        catalogue_version=handler.loaded.book.catalogue.version,
        rules=len(handler.loaded.rules.rules),
        tenants_with_terms=len(handler.loaded.book.terms),
    )
    runtime.subscribe(Topic.USAGE_RECORDED, UsageRecorded, handler.handle)
    runtime.subscribe(Topic.PROVIDER_COST_REPORTED, ProviderCostReported, handler.handle_statements)

    # Costs stored under other prices, terms or rules than the ones now in force are corrected at start.
    await runtime.run(
        TABLES,
        on_started=handler.start,
        registrations=[registration(runtime.database, runtime.outbox, settings, tolerance)],
    )


if __name__ == "__main__":
    run_service(main)
