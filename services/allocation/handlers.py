"""Allocation's handlers: price and attribute usage, keep provider cost statements, reconcile the two.

Before each batch the handler checks whether its source files (prices, aliases,
tenant terms, rules) changed. If they did, it reloads them and re-prices what the
change affects before it prices anything new. A file that fails validation is
reported, and the last valid version stays in force.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from services.allocation.costing import BuiltCost, build_cost
from services.allocation.ledger import outgoing, store_new_costs
from services.allocation.pricing import PriceBook
from services.allocation.reconciliation import Tolerance, reconcile, store_statements, utc_day
from services.allocation.repricing import SweepResult, proportional_pools, resplit_months, sweep
from services.allocation.rules import AllocationRules
from services.allocation.sources import AllocationSources, Loaded
from shared.catalogue import PriceCatalogue
from shared.consumer import Incoming
from shared.db import Database
from shared.events import CostAllocated, CostStatus, ProviderCostReported, UsageRecorded
from shared.logging import get_logger
from shared.outbox import Outbox

log = get_logger(__name__)


def allocate(event: UsageRecorded, catalogue: PriceCatalogue | PriceBook, rules: AllocationRules) -> CostAllocated:
    """Price one usage event and decide who owns it (without usage metrics, so proportional splits are even)."""
    book = catalogue if isinstance(catalogue, PriceBook) else PriceBook(catalogue)
    return build_cost(event, book, rules).cost


class AllocationHandler:
    def __init__(
        self,
        database: Database,
        outbox: Outbox,
        sources: AllocationSources,
        tolerance: Tolerance | None = None,
    ) -> None:
        self.database = database
        self.outbox = outbox
        self.sources = sources
        self.tolerance = tolerance or Tolerance()
        self._stamp = sources.stamp()
        self.loaded: Loaded = sources.load()
        self._sweep_lock = asyncio.Lock()
        self._sweep_pending = False

    async def start(self) -> None:
        """Re-price what was stored under other files; a failure leaves the sweep to the next batch."""
        try:
            await self.reprice()
        except Exception as error:  # the service must start even when the database is briefly unavailable
            log.error("allocation.start_reprice_failed", error=repr(error)[:300], retry="before the next batch")
            self._sweep_pending = True

    async def refresh(self) -> SweepResult | None:
        """Reload the source files if they changed, then re-price; return the sweep's result, if one ran.

        A sweep that fails (the database unavailable, say) raises, and runs again before the next batch.
        """
        stamp = self.sources.stamp()
        if stamp != self._stamp:
            self._stamp = stamp
            try:
                loaded = self.sources.load()
            except ValueError as error:
                log.error("allocation.sources_invalid", error=str(error)[:500], kept_version=self.loaded.version)
                return None
            log.info("allocation.sources_changed", previous=self.loaded.version, version=loaded.version)
            self.loaded = loaded
            self._sweep_pending = True
        if not self._sweep_pending:
            return None
        result = await self.reprice()
        self._sweep_pending = False
        return result

    async def reprice(self) -> SweepResult:
        async with self._sweep_lock:
            result = await sweep(self.database, self.outbox, self.loaded)
            if result.touched:
                await self._reconcile(result.touched)
            return result

    async def handle(self, batch: Sequence[Incoming[UsageRecorded]]) -> None:
        await self.refresh()
        events = [item.event for item in batch]
        async with self.database.transaction() as connection:
            fresh = await store_new_costs(connection, self.outbox, events, self.loaded)
            resplit = await resplit_months(connection, self.outbox, self.loaded, self._owner_months(fresh))
            touched = {(item.cost.tenant, item.cost.provider, utc_day(item.cost.period_start)) for item in fresh}
            touched |= resplit.touched
            variances = await reconcile(connection, touched, self.loaded.book, self.tolerance)
            await self.outbox.add(connection, variances)
        _log_unpriced(fresh)
        if resplit.corrected:
            log.info("allocation.shared_costs_resplit", corrected=resplit.corrected)
        await self.outbox.send_now([*(outgoing(item) for item in fresh), *resplit.outgoing, *variances])

    def _owner_months(self, fresh: list[BuiltCost]) -> set[tuple[str, str]]:
        """Return the tenant months whose proportional splits the new costs can change."""
        if not proportional_pools(self.loaded):
            return set()
        months: set[tuple[str, str]] = set()
        for item in fresh:
            cost = item.cost
            if item.split_pool is None and self.loaded.rules.owner_name(cost.allocation) is not None:
                zone = self.loaded.book.terms_for(cost.tenant).time_zone
                middle = cost.period_start + (cost.period_end - cost.period_start) / 2
                months.add((cost.tenant, middle.astimezone(zone).strftime("%Y-%m")))
        return months

    async def handle_statements(self, batch: Sequence[Incoming[ProviderCostReported]]) -> None:
        await self.refresh()
        async with self.database.transaction() as connection:
            touched = await store_statements(connection, [item.event for item in batch], self.loaded.book)
            variances = await reconcile(connection, touched, self.loaded.book, self.tolerance)
            await self.outbox.add(connection, variances)
        if variances:
            log.info("allocation.variance_detected", days=len(touched), events=len(variances))
        await self.outbox.send_now(variances)

    async def _reconcile(self, touched: set[tuple[str, str, str]]) -> None:
        async with self.database.transaction() as connection:
            variances = await reconcile(connection, touched, self.loaded.book, self.tolerance)
            await self.outbox.add(connection, variances)
        await self.outbox.send_now(variances)


def _log_unpriced(fresh: list[BuiltCost]) -> None:
    unpriced = [item.cost for item in fresh if item.cost.status is CostStatus.UNPRICED]
    if unpriced:
        log.warning(
            "allocation.unpriced_usage",
            events=len(unpriced),
            reasons=";".join(sorted({cost.unpriced_reason or "" for cost in unpriced}))[:500],
        )
