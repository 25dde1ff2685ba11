"""Run the optimizer service: consume costs, seat reports and GPU telemetry, publish savings recommendations."""

from __future__ import annotations

from services.optimizer.handlers import OptimizerHandler
from services.optimizer.ops import registration
from services.optimizer.policy import OptimizerPolicy, SeatPrices, load_alternatives, load_gpu_prices
from services.optimizer.settings import OptimizerSettings
from services.optimizer.tables import TABLES
from shared.catalogue import PriceCatalogue
from shared.events import CostAllocated, GpuUtilisationReported, SeatActivityReported, SeatEntitlementReported
from shared.logging import get_logger
from shared.service import COST_BATCH_RECORDS, ServiceRuntime, run_service
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
        commitment_offers=",".join(offer.offer_id for offer in policy.commitment_offers),
    )
    handler = OptimizerHandler(
        runtime.database,
        runtime.outbox,
        catalogue,
        policy,
        load_alternatives(),
        seat_prices=SeatPrices.load(),
        gpu_prices=load_gpu_prices(),
    )
    # Each batch recomputes the figures its costs touch once, whatever its size, so larger batches do less work
    # per cost when costs arrive faster than they are recomputed.
    runtime.subscribe(Topic.COST_ALLOCATED, CostAllocated, handler.handle, max_records=COST_BATCH_RECORDS)
    runtime.subscribe(Topic.SEAT_ACTIVITY_REPORTED, SeatActivityReported, handler.handle_seat_activity)
    runtime.subscribe(Topic.SEAT_ENTITLEMENT_REPORTED, SeatEntitlementReported, handler.handle_seat_entitlements)
    runtime.subscribe(Topic.GPU_UTILISATION_REPORTED, GpuUtilisationReported, handler.handle_gpu_utilisation)
    await runtime.run(TABLES, registrations=[registration(runtime.database, runtime.outbox)])


if __name__ == "__main__":
    run_service(main)
