"""Allocation's handler: price and attribute a batch of usage events, store the ledger rows, emit cost events."""

from __future__ import annotations

import json
from collections.abc import Sequence

from services.allocation.pricing import price_usage
from services.allocation.rules import AllocationRules
from services.allocation.tables import CostLedgerEntry
from shared.catalogue import PriceCatalogue
from shared.consumer import Incoming
from shared.db import Database, insert_new_rows
from shared.events import CostAllocated, CostStatus, UsageRecorded, utc_now
from shared.kafka import OutgoingEvent
from shared.logging import get_logger
from shared.outbox import Outbox
from shared.topics import Topic

log = get_logger(__name__)


def cost_event_id(usage_event_id: str, revision: int = 1) -> str:
    return f"cost:{usage_event_id}:r{revision}"


def allocate(event: UsageRecorded, catalogue: PriceCatalogue, rules: AllocationRules) -> CostAllocated:
    """Price one usage event and decide who owns it."""
    priced = price_usage(event, catalogue)
    allocation = rules.allocate(event.provider, event.dimensions)
    return CostAllocated(
        event_id=cost_event_id(event.event_id),
        occurred_at=event.occurred_at,
        source="allocation",
        tenant=event.tenant,
        correlation_id=event.correlation_id,
        usage_event_id=event.event_id,
        provider=event.provider,
        service=event.service,
        model=event.model,
        priced_model=priced.priced_model,
        service_tier=event.service_tier,
        period_start=event.period_start,
        period_end=event.period_end,
        dimensions=event.dimensions,
        quantities=event.quantities,
        request_count=event.request_count,
        charge_category=event.charge_category,
        status=priced.status,
        unpriced_reason=priced.unpriced_reason,
        lines=priced.lines,
        cost=priced.cost,
        provider_cost=event.provider_cost,
        catalogue_version=catalogue.version if priced.status is CostStatus.PRICED else None,
        allocation=allocation,
        region=event.region,
    )


def ledger_row(cost: CostAllocated) -> dict[str, object]:
    return {
        "usage_event_id": cost.usage_event_id,
        "cost_event_id": cost.event_id,
        "tenant": cost.tenant,
        "provider": cost.provider,
        "service": cost.service,
        "model": cost.model,
        "priced_model": cost.priced_model,
        "service_tier": cost.service_tier.value,
        "period_start": cost.period_start,
        "period_end": cost.period_end,
        "charge_category": cost.charge_category.value,
        "status": cost.status.value,
        "unpriced_reason": cost.unpriced_reason,
        "cost_amount": cost.cost.amount if cost.cost else None,
        "cost_currency": cost.cost.currency if cost.cost else None,
        "provider_cost_amount": cost.provider_cost.amount if cost.provider_cost else None,
        "provider_cost_currency": cost.provider_cost.currency if cost.provider_cost else None,
        "team": cost.allocation.team,
        "cost_centre": cost.allocation.cost_centre,
        "use_case": cost.allocation.use_case,
        "environment": cost.allocation.environment,
        "rule_id": cost.allocation.rule_id,
        "catalogue_version": cost.catalogue_version,
        "lines_json": json.dumps([line.model_dump(mode="json") for line in cost.lines]),
        "quantities_json": json.dumps({bucket.value: str(value) for bucket, value in cost.quantities.items()}),
        "dimensions_json": cost.dimensions.model_dump_json(),
        "shares_json": json.dumps([share.model_dump(mode="json") for share in cost.shares]),
        "revision": cost.revision,
        "recorded_at": utc_now(),
    }


class AllocationHandler:
    def __init__(self, database: Database, outbox: Outbox, catalogue: PriceCatalogue, rules: AllocationRules) -> None:
        self.database = database
        self.outbox = outbox
        self.catalogue = catalogue
        self.rules = rules

    async def handle(self, batch: Sequence[Incoming[UsageRecorded]]) -> None:
        costs = [allocate(item.event, self.catalogue, self.rules) for item in batch]
        async with self.database.transaction() as connection:
            inserted = await insert_new_rows(
                connection,
                CostLedgerEntry.__table__,
                [ledger_row(cost) for cost in costs],  # type: ignore[attr-defined]
                ["usage_event_id"],
            )
            new_usage_ids = {key[0] for key in inserted}
            fresh = [cost for cost in costs if cost.usage_event_id in new_usage_ids]
            outgoing = [
                OutgoingEvent.of(Topic.COST_ALLOCATED, cost, key=f"usage:{cost.usage_event_id}") for cost in fresh
            ]
            await self.outbox.add(connection, outgoing)
        unpriced = sum(1 for cost in fresh if cost.status is CostStatus.UNPRICED)
        if unpriced:
            log.warning(
                "allocation.unpriced_usage",
                events=unpriced,
                reasons=";".join(sorted({cost.unpriced_reason or "" for cost in fresh if cost.unpriced_reason}))[:500],
            )
        await self.outbox.send_now(outgoing)
