"""Re-pricing: after prices, terms or rules change, cost again what the change affects and publish corrections.

The sweep reads every ledger row priced under another version of the price book
and rules, prices its stored usage event again, and compares. A row whose cost,
lines and owners come out the same only takes the new version. A row that differs
gets the next revision, published as a cost event whose correction names the
amount it replaces and why, so the past is never edited silently. Running the sweep
twice changes nothing the second time.

Contract credits are costs too: each credit in the tenant terms is kept as a cost
line of its own (charge category credit), and a credit changed or removed in the
terms is corrected the same way.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from services.allocation.costing import (
    BuiltCost,
    cost_event_id,
    lines_json,
    revision_row,
    shares_json,
    split_pool_of,
)
from services.allocation.ledger import (
    LEDGER,
    REVISIONS,
    build_with_metrics,
    outgoing,
    replace_with_revision,
    store_new_costs,
)
from services.allocation.pricing import PriceBook
from services.allocation.sources import Loaded
from shared.db import Database, insert_new_rows
from shared.events import (
    ChargeCategory,
    CostCorrection,
    CostStatus,
    Evidence,
    Money,
    PricingBasis,
    UsageRecorded,
)
from shared.kafka import OutgoingEvent
from shared.logging import get_logger
from shared.outbox import Outbox

log = get_logger(__name__)

CREDIT_PREFIX = "credit:"
CREDIT_NAMESPACE = uuid.UUID("5d0c3f5e-2b7a-5c55-9a51-6f0c2e8d4b17")


def credit_usage_id(tenant: str, contract_id: str, credit_id: str) -> str:
    """Return the stable usage id of a contract credit; short enough for every consumer's key columns."""
    return f"{CREDIT_PREFIX}{uuid.uuid5(CREDIT_NAMESPACE, f'{tenant}|{contract_id}|{credit_id}')}"


@dataclass
class SweepResult:
    examined: int = 0
    corrected: int = 0
    restamped: int = 0
    credits_added: int = 0
    touched: set[tuple[str, str, str]] = field(default_factory=set)  # (tenant, provider, UTC day) for reconciliation
    outgoing: list[OutgoingEvent] = field(default_factory=list)  # the corrections queued in the outbox
    _restamps: dict[tuple[int, str | None], list[str]] = field(default_factory=dict)
    _revision_rows: list[dict[str, Any]] = field(default_factory=list)
    _unqueued: list[OutgoingEvent] = field(default_factory=list)

    async def flush(self, connection: AsyncConnection, outbox: Outbox, version: str) -> None:
        """Write what the rows examined since the last flush need: new versions, revision rows, events."""
        for (revision, old_version), ids in self._restamps.items():
            for start in range(0, len(ids), 500):
                await connection.execute(
                    update(LEDGER)
                    .where(
                        LEDGER.c.usage_event_id.in_(ids[start : start + 500]),
                        LEDGER.c.revision == revision,
                        _version_is(old_version),
                    )
                    .values(pricing_version=version)
                )
        await insert_new_rows(connection, REVISIONS, self._revision_rows, ["usage_event_id", "revision"])
        await outbox.add(connection, self._unqueued)
        self._restamps, self._revision_rows, self._unqueued = {}, [], []

    def as_dict(self) -> dict[str, int]:
        return {
            "examined": self.examined,
            "corrected": self.corrected,
            "unchanged": self.restamped,
            "credits_added": self.credits_added,
        }


def credit_events(book: PriceBook) -> dict[str, UsageRecorded]:
    """Return the credits of every tenant's contracts as bill lines, keyed by their stable usage id."""
    events: dict[str, UsageRecorded] = {}
    for tenant, terms in book.terms.items():
        for contract in terms.contracts:
            for credit in contract.credits:
                usage_id = credit_usage_id(tenant, contract.contract_id, credit.credit_id)
                events[usage_id] = UsageRecorded(
                    event_id=usage_id,
                    occurred_at=credit.applied_on,
                    produced_at=credit.applied_on,  # fixed, so the same credit always gives the same event
                    source="allocation.contract-terms",
                    tenant=tenant,
                    correlation_id=usage_id,
                    provider=contract.provider,
                    period_start=credit.applied_on,
                    period_end=credit.applied_on,
                    charge_category=ChargeCategory.CREDIT,
                    pricing_basis=PricingBasis.PROVIDER_BILLED,
                    provider_cost=credit.amount,
                    description=f"{credit.description} (contract {contract.contract_id}, credit {credit.credit_id})",
                    evidence=Evidence(format="contract-terms", file_name=None),
                )
    return events


def _same(row: Any, built: BuiltCost) -> bool:
    cost = built.cost
    amount = cost.cost.amount if cost.cost else None
    currency = cost.cost.currency if cost.cost else None
    return (
        row.status == cost.status.value
        and row.cost_amount == amount
        and row.cost_currency == currency
        and row.lines_json == lines_json(cost)
        and row.shares_json == shares_json(cost)
    )


def _money_text(amount: Decimal | None, currency: str | None) -> str:
    return "no cost" if amount is None else f"{format(amount.normalize(), 'f')} {currency}"


def correction_reason(row: Any, built: BuiltCost, version: str) -> str:
    """Say what changed between the stored cost and the new one, and under which versions."""
    cost = built.cost
    changes: list[str] = []
    if row.status != cost.status.value:
        changes.append(f"status {row.status} → {cost.status.value}")
    new_amount = cost.cost.amount if cost.cost else None
    if row.cost_amount != new_amount or row.cost_currency != (cost.cost.currency if cost.cost else None):
        changes.append(
            f"cost {_money_text(row.cost_amount, row.cost_currency)} → "
            f"{_money_text(new_amount, cost.cost.currency if cost.cost else None)}"
        )
    old_owners = [(share["allocation"], share["fraction"]) for share in json.loads(row.shares_json)]
    new_owners = [(share.allocation.model_dump(mode="json"), str(share.fraction)) for share in cost.shares]
    if old_owners != new_owners:
        owners = ", ".join(f"{share.allocation.team} {share.fraction}" for share in cost.shares)
        changes.append(f"owners now {owners}")
    if not changes and row.lines_json != lines_json(cost):
        changes.append("price rows changed, amounts unchanged")
    return f"re-priced under {version} (was {row.pricing_version}): {'; '.join(changes)}"


def _version_is(version: str | None) -> Any:
    return LEDGER.c.pricing_version.is_(None) if version is None else LEDGER.c.pricing_version == version


async def _reprice_row(
    connection: AsyncConnection, row: Any, event: UsageRecorded, loaded: Loaded, result: SweepResult
) -> None:
    """Price one stored cost again; queue its new version, or its next revision, in ``result`` until a flush."""
    result.examined += 1
    candidate = await build_with_metrics(connection, event, loaded)

    if _same(row, candidate) and row.usage_json == event.model_dump_json():
        result._restamps.setdefault((row.revision, row.pricing_version), []).append(row.usage_event_id)
        result.restamped += 1
        return

    reason = correction_reason(row, candidate, loaded.version)
    if row.usage_event_id.startswith(CREDIT_PREFIX) and row.usage_json != event.model_dump_json():
        reason = f"contract terms changed the credit: {reason}"
    correction = CostCorrection(
        previous_revision=row.revision,
        previous_status=CostStatus(row.status),
        previous_cost=Money(amount=row.cost_amount, currency=row.cost_currency)
        if row.cost_amount is not None
        else None,
        reason=reason[:2000],
    )
    revision = row.revision + 1
    cost = candidate.cost.model_copy(
        update={"revision": revision, "correction": correction, "event_id": cost_event_id(row.usage_event_id, revision)}
    )
    built = BuiltCost(cost, candidate.share_lines, candidate.split_pool, candidate.list_cost)

    if not await replace_with_revision(connection, built, event, loaded):
        return  # another sweep revised this row first, and its revision is kept
    result._revision_rows.append(revision_row(built, loaded.version, reason))
    result._unqueued.append(outgoing(built))
    result.outgoing.append(outgoing(built))
    result.corrected += 1
    result.touched.add((row.tenant, row.provider, row.period_start.date().isoformat()))
    log.debug(
        "allocation.cost_corrected",
        usage_event_id=row.usage_event_id,
        revision=revision,
        previous=_money_text(row.cost_amount, row.cost_currency),
        now=_money_text(cost.cost.amount if cost.cost else None, cost.cost.currency if cost.cost else None),
    )


async def sweep(
    database: Database,
    outbox: Outbox,
    loaded: Loaded,
    *,
    only_stale: bool = True,
    page_size: int = 500,
    send: bool = True,
    progress: Callable[[SweepResult], None] | None = None,
) -> SweepResult:
    """Re-price every ledger row computed under another version; add, change or withdraw contract credits.

    With ``send`` false the corrections stay in the outbox for the service's relay to send. ``progress`` is
    called with the counts so far after every page that was committed.
    """
    result = SweepResult()
    await _sync_credits(database, outbox, loaded, result)
    if progress is not None:
        progress(result)
    deferred: list[str] = []
    for split_pass in (False, True):
        after = ""
        while True:
            async with database.transaction() as connection:
                query = select(LEDGER).where(LEDGER.c.usage_event_id > after)
                if only_stale:
                    query = query.where(
                        (LEDGER.c.pricing_version != loaded.version) | LEDGER.c.pricing_version.is_(None)
                    )
                if split_pass:
                    if not deferred:
                        break
                    query = query.where(LEDGER.c.usage_event_id.in_(deferred[:page_size]))
                    deferred = deferred[page_size:]
                rows = (await connection.execute(query.order_by(LEDGER.c.usage_event_id).limit(page_size))).all()
                if not rows:
                    break
                after = rows[-1].usage_event_id if not split_pass else ""
                for row in rows:
                    if not row.usage_json:
                        log.warning("allocation.reprice_skipped", usage_event_id=row.usage_event_id, reason="no usage")
                        continue
                    event = UsageRecorded.model_validate_json(row.usage_json)
                    if not split_pass and split_pool_of(event, loaded.rules) is not None:
                        deferred.append(row.usage_event_id)  # split after every direct cost has its new amount
                        continue
                    await _reprice_row(connection, row, event, loaded, result)
                await result.flush(connection, outbox, loaded.version)
            if progress is not None:
                progress(result)
    if send:
        while await outbox.send_pending(min_age=timedelta(0)) > 0:
            pass
    log.info("allocation.repriced", version=loaded.version, **result.as_dict())
    return result


async def _sync_credits(database: Database, outbox: Outbox, loaded: Loaded, result: SweepResult) -> None:
    wanted = credit_events(loaded.book)
    async with database.transaction() as connection:
        stored = {
            row.usage_event_id: row
            for row in (
                await connection.execute(select(LEDGER).where(LEDGER.c.usage_event_id.like(f"{CREDIT_PREFIX}%")))
            ).all()
        }
        new = [event for usage_id, event in wanted.items() if usage_id not in stored]
        if new:
            fresh = await store_new_costs(connection, outbox, new, loaded)
            result.credits_added += len(fresh)
        for usage_id, row in stored.items():
            event = wanted.get(usage_id) or _withdrawn(UsageRecorded.model_validate_json(row.usage_json))
            if row.usage_json != event.model_dump_json():
                await _reprice_row(connection, row, event, loaded, result)
        await result.flush(connection, outbox, loaded.version)


def _withdrawn(event: UsageRecorded) -> UsageRecorded:
    currency = event.provider_cost.currency if event.provider_cost else "USD"
    return event.model_copy(
        update={
            "provider_cost": Money(amount=Decimal(0), currency=currency),
            "description": f"{event.description or 'credit'} (withdrawn from the contract terms)",
        }
    )


def proportional_pools(loaded: Loaded) -> list[str]:
    return [pool for pool in loaded.rules.pools if loaded.rules.proportional_metrics(pool)]


async def resplit_months(
    connection: AsyncConnection, outbox: Outbox, loaded: Loaded, months: set[tuple[str, str]]
) -> SweepResult:
    """Split shared costs again whose proportional weights changed because new usage arrived in their month.

    ``months`` are (tenant, local month) pairs that received usage of a declared owner. Each shared cost
    there is re-split with the month's current usage; only costs whose shares change get a revision.
    """
    result = SweepResult()
    pools = proportional_pools(loaded)
    for tenant, month in sorted(months):
        rows = (
            await connection.execute(
                select(LEDGER).where(
                    LEDGER.c.tenant == tenant, LEDGER.c.local_month == month, LEDGER.c.split_pool.in_(pools)
                )
            )
        ).all()
        for row in rows:
            if row.usage_json:
                await _reprice_row(connection, row, UsageRecorded.model_validate_json(row.usage_json), loaded, result)
    await result.flush(connection, outbox, loaded.version)
    return result
