"""Storing costs: new costs, later revisions of them, and the usage metrics that proportional splits weigh by.

Every write happens inside the caller's transaction together with the outbox
rows of the events it causes, so a cost is published if and only if it is stored.
A revision replaces the ledger row only if the row still contains the revision it
was computed from, so two re-pricing runs at once can never publish two different
costs under one revision number.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Sequence
from decimal import Decimal
from types import EllipsisType

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from services.allocation.costing import BuiltCost, build_cost, ledger_row, local_month, revision_row, split_pool_of
from services.allocation.rules import AllocationRules
from services.allocation.sources import Loaded
from services.allocation.tables import CostLedgerEntry, CostRevision
from shared.db import insert_new_rows
from shared.events import Allocation, CostCorrection, UsageRecorded
from shared.kafka import OutgoingEvent
from shared.outbox import Outbox
from shared.topics import Topic

LEDGER = CostLedgerEntry.__table__  # type: ignore[attr-defined]
REVISIONS = CostRevision.__table__  # type: ignore[attr-defined]


def outgoing(built: BuiltCost) -> OutgoingEvent:
    return OutgoingEvent.of(Topic.COST_ALLOCATED, built.cost, key=f"usage:{built.cost.usage_event_id}")


async def usage_metrics(
    connection: AsyncConnection, rules: AllocationRules, tenant: str, month: str, currency: str | None
) -> dict[tuple[str, str], Decimal]:
    """Sum each declared owner's usage in one tenant month, from costs that are not themselves split."""
    result = await connection.execute(
        select(
            LEDGER.c.team,
            LEDGER.c.cost_centre,
            LEDGER.c.cost_amount,
            LEDGER.c.cost_currency,
            LEDGER.c.quantities_json,
            LEDGER.c.token_count,
            LEDGER.c.request_count,
        ).where(LEDGER.c.tenant == tenant, LEDGER.c.local_month == month, LEDGER.c.split_pool.is_(None))
    )
    metrics: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
    for row in result:
        owner = rules.owner_name(Allocation(team=row.team, cost_centre=row.cost_centre, rule_id="-"))
        if owner is None:
            continue
        metrics[(owner, "tokens")] += row.token_count
        metrics[(owner, "requests")] += row.request_count
        if row.cost_amount is not None and row.cost_currency == currency:
            metrics[(owner, "cost")] += row.cost_amount
        for bucket, quantity in json.loads(row.quantities_json).items():
            metrics[(owner, bucket)] += Decimal(quantity)
    return metrics


MetricsCache = dict[tuple[str, str, str | None], dict[tuple[str, str], Decimal]]


async def build_with_metrics(
    connection: AsyncConnection,
    event: UsageRecorded,
    loaded: Loaded,
    *,
    revision: int = 1,
    correction: CostCorrection | None = None,
    cache: MetricsCache | None = None,
    pool: str | None | EllipsisType = ...,
) -> BuiltCost:
    """Build a cost, reading the month's usage metrics from the ledger when its split needs them.

    ``cache`` keeps the metrics of each tenant month for the caller's transaction, so a batch of
    shared costs reads each month once. ``pool`` is the event's split pool when the caller already
    looked it up (``split_pool_of``).
    """
    if pool is ...:
        pool = split_pool_of(event, loaded.rules)
    if pool is None or not loaded.rules.proportional_metrics(pool):
        return build_cost(event, loaded.book, loaded.rules, revision=revision, correction=correction)
    first = build_cost(event, loaded.book, loaded.rules)
    currency = first.cost.cost.currency if first.cost.cost else None
    zone = loaded.book.terms_for(event.tenant).time_zone
    key = (event.tenant, local_month(event, zone), currency)
    cache = {} if cache is None else cache
    if key not in cache:
        cache[key] = await usage_metrics(connection, loaded.rules, key[0], key[1], currency)
    return build_cost(event, loaded.book, loaded.rules, cache[key], revision=revision, correction=correction)


async def store_new_costs(
    connection: AsyncConnection, outbox: Outbox, events: Sequence[UsageRecorded], loaded: Loaded
) -> list[BuiltCost]:
    """Price and store usage events not stored before; return the new costs, queued in the outbox.

    Costs owned directly are stored first, so that a proportional split in the same batch
    already weighs this batch's usage.
    """
    pools = {event.event_id: split_pool_of(event, loaded.rules) for event in events}
    direct = [event for event in events if pools[event.event_id] is None]
    shared = [event for event in events if pools[event.event_id] is not None]
    fresh: list[BuiltCost] = []
    cache: MetricsCache = {}
    for group in (direct, shared):
        built = [
            await build_with_metrics(connection, event, loaded, cache=cache, pool=pools[event.event_id])
            for event in group
        ]
        rows = [
            ledger_row(item, event, loaded.version, loaded.book.terms_for(event.tenant).time_zone)
            for item, event in zip(built, group, strict=True)
        ]
        inserted = {key[0] for key in await insert_new_rows(connection, LEDGER, rows, ["usage_event_id"])}
        fresh.extend(item for item in built if item.cost.usage_event_id in inserted)
    await insert_new_rows(
        connection,
        REVISIONS,
        [revision_row(item, loaded.version, None) for item in fresh],
        ["usage_event_id", "revision"],
    )
    await outbox.add(connection, [outgoing(item) for item in fresh])
    return fresh


async def replace_with_revision(
    connection: AsyncConnection, built: BuiltCost, event: UsageRecorded, loaded: Loaded
) -> bool:
    """Replace a ledger row by the next revision unless another run replaced it first; return whether it did.

    The caller stores the revision row and queues the event (``revision_row``, ``outgoing``) in the same
    transaction, so that many revisions can be written together.
    """
    row = ledger_row(built, event, loaded.version, loaded.book.terms_for(event.tenant).time_zone)
    previous = built.cost.revision - 1
    result = await connection.execute(
        update(LEDGER)
        .where(LEDGER.c.usage_event_id == built.cost.usage_event_id, LEDGER.c.revision == previous)
        .values(**{key: value for key, value in row.items() if key != "usage_event_id"})
    )
    return result.rowcount == 1
