"""Value's handlers: store cost entries and outcomes, then recompute unit economics of what changed.

Cost per outcome is the use case's cost in the month divided by its outcomes,
rounded half-even to 6 decimal places (AI unit costs are often fractions of a cent).
A use case with cost and no outcomes gets a record with no cost per outcome,
which marks spend not yet linked to value.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncConnection

from services.value.tables import ValueCostEntry, ValueOutcome, ValueUnitEconomics
from shared.consumer import Incoming
from shared.db import Database, insert_new_rows, replace_older_revisions, upsert
from shared.events import CostAllocated, CostStatus, Money, OutcomeRecorded, ValueMapped, utc_now
from shared.kafka import OutgoingEvent
from shared.logging import get_logger
from shared.outbox import Outbox
from shared.topics import Topic

log = get_logger(__name__)

NO_OUTCOME = "(none)"
UNIT_COST_PLACES = Decimal("0.000001")


class ValueHandler:
    def __init__(self, database: Database, outbox: Outbox, reporting_currency: str) -> None:
        self.database = database
        self.outbox = outbox
        self.currency = reporting_currency

    async def handle_costs(self, batch: Sequence[Incoming[CostAllocated]]) -> None:
        rows = [
            {
                "usage_event_id": cost.usage_event_id,
                "share_index": index,
                "cost_event_id": cost.event_id,
                "revision": cost.revision,
                "tenant": cost.tenant,
                "use_case": share.allocation.use_case,
                "month": cost.period_start.strftime("%Y-%m"),
                "status": cost.status.value,
                "cost_amount": share.amount.amount if share.amount else None,
                "cost_currency": share.amount.currency if share.amount else None,
            }
            for cost in (item.event for item in batch)
            for index, share in enumerate(cost.shares)
        ]
        async with self.database.transaction() as connection:
            fresh, replaced = await replace_older_revisions(
                connection, ValueCostEntry.__table__, rows, key="usage_event_id"
            )  # type: ignore[attr-defined]
            touched = {(row["tenant"], row["use_case"], row["month"]) for row in fresh}
            touched |= {(row.tenant, row.use_case, row.month) for row in replaced}
            outgoing = await self._recompute_and_queue(connection, touched)
        await self.outbox.send_now(outgoing)

    async def handle_outcomes(self, batch: Sequence[Incoming[OutcomeRecorded]]) -> None:
        rows = [
            {
                "event_id": outcome.event_id,
                "tenant": outcome.tenant,
                "use_case": outcome.use_case,
                "outcome_kind": outcome.outcome_kind,
                "month": outcome.occurred_at.strftime("%Y-%m"),
                "quantity": outcome.quantity,
                "unit": outcome.unit,
                "value_amount": outcome.value.amount if outcome.value else None,
                "value_currency": outcome.value.currency if outcome.value else None,
                "occurred_at": outcome.occurred_at,
            }
            for outcome in (item.event for item in batch)
        ]
        await self._store_and_recompute(ValueOutcome.__table__, rows, ["event_id"])  # type: ignore[attr-defined]

    async def _store_and_recompute(self, table: Any, rows: list[dict[str, Any]], key: list[str]) -> None:
        if not rows:
            return
        async with self.database.transaction() as connection:
            inserted = await insert_new_rows(connection, table, rows, key)
            new_keys = {k[0] for k in inserted}
            touched = {(row["tenant"], row["use_case"], row["month"]) for row in rows if row[key[0]] in new_keys}
            outgoing = await self._recompute_and_queue(connection, touched)
        await self.outbox.send_now(outgoing)

    async def _recompute_and_queue(
        self, connection: AsyncConnection, touched: set[tuple[str, str | None, str]]
    ) -> list[OutgoingEvent]:
        """Recompute the touched use case months and store their events in the outbox; return the events."""
        mapped: list[ValueMapped] = []
        for tenant, use_case, month in sorted((t, u, m) for t, u, m in touched if u is not None):
            mapped += await self._recompute(connection, tenant, use_case, month)
        outgoing = [OutgoingEvent.of(Topic.VALUE_MAPPED, item, key=f"use_case:{item.use_case}") for item in mapped]
        await self.outbox.add(connection, outgoing)
        return outgoing

    async def _recompute(
        self, connection: AsyncConnection, tenant: str, use_case: str, month: str
    ) -> list[ValueMapped]:
        costs = ValueCostEntry.__table__  # type: ignore[attr-defined]
        cost_rows = (
            await connection.execute(
                select(costs.c.cost_amount, costs.c.cost_currency, costs.c.status).where(
                    costs.c.tenant == tenant, costs.c.use_case == use_case, costs.c.month == month
                )
            )
        ).all()
        cost = sum(
            (
                row.cost_amount
                for row in cost_rows
                if row.status != CostStatus.UNPRICED.value and row.cost_currency == self.currency
            ),
            Decimal(0),
        )
        cost_events = sum(1 for row in cost_rows if row.status != CostStatus.UNPRICED.value)

        outcomes = ValueOutcome.__table__  # type: ignore[attr-defined]
        outcome_rows = (
            await connection.execute(
                select(
                    outcomes.c.outcome_kind,
                    outcomes.c.quantity,
                    outcomes.c.unit,
                    outcomes.c.value_amount,
                    outcomes.c.value_currency,
                ).where(outcomes.c.tenant == tenant, outcomes.c.use_case == use_case, outcomes.c.month == month)
            )
        ).all()
        by_kind: dict[tuple[str, str], list[Any]] = defaultdict(list)
        for row in outcome_rows:
            by_kind[(row.outcome_kind, row.unit)].append(row)
        if by_kind:
            await self._drop_placeholder(connection, tenant, use_case, month)
        elif cost_events:
            by_kind[(NO_OUTCOME, NO_OUTCOME)] = []

        results = []
        for (kind, unit), rows in sorted(by_kind.items()):
            count = sum((row.quantity for row in rows), Decimal(0))
            value_rows = [row for row in rows if row.value_amount is not None and row.value_currency == self.currency]
            value = sum((row.value_amount for row in value_rows), Decimal(0)) if value_rows else None
            per_outcome = (cost / count).quantize(UNIT_COST_PLACES, rounding=ROUND_HALF_EVEN) if count else None
            results.append(
                await self._save(
                    connection, tenant, use_case, month, kind, unit, cost, count, per_outcome, value, cost_events
                )
            )
        return [item for item in results if item is not None]

    async def _drop_placeholder(self, connection: AsyncConnection, tenant: str, use_case: str, month: str) -> None:
        """Remove the no-outcome record of a month once outcomes for it arrive."""
        table = ValueUnitEconomics.__table__  # type: ignore[attr-defined]
        await connection.execute(
            delete(table).where(
                table.c.tenant == tenant,
                table.c.use_case == use_case,
                table.c.period == month,
                table.c.outcome_kind == NO_OUTCOME,
            )
        )

    async def _save(
        self,
        connection: AsyncConnection,
        tenant: str,
        use_case: str,
        month: str,
        kind: str,
        unit: str,
        cost: Decimal,
        count: Decimal,
        per_outcome: Decimal | None,
        value: Decimal | None,
        cost_events: int,
    ) -> ValueMapped | None:
        table = ValueUnitEconomics.__table__  # type: ignore[attr-defined]
        previous = (
            await connection.execute(
                select(table).where(
                    table.c.tenant == tenant,
                    table.c.use_case == use_case,
                    table.c.period == month,
                    table.c.outcome_kind == kind,
                )
            )
        ).first()
        figures = (cost, count, per_outcome, value, cost_events)
        if (
            previous is not None
            and (
                previous.cost_amount,
                previous.outcomes,
                previous.cost_per_outcome,
                previous.value_amount,
                previous.cost_event_count,
            )
            == figures
        ):
            return None
        revision = previous.revision + 1 if previous is not None else 1
        await connection.execute(
            upsert(
                connection,
                table,
                ["tenant", "use_case", "period", "outcome_kind"],
                [
                    "cost_amount",
                    "currency",
                    "outcomes",
                    "outcome_unit",
                    "cost_per_outcome",
                    "value_amount",
                    "cost_event_count",
                    "revision",
                    "updated_at",
                ],
            ),
            [
                {
                    "tenant": tenant,
                    "use_case": use_case,
                    "period": month,
                    "outcome_kind": kind,
                    "cost_amount": cost,
                    "currency": self.currency,
                    "outcomes": count,
                    "outcome_unit": unit,
                    "cost_per_outcome": per_outcome,
                    "value_amount": value,
                    "cost_event_count": cost_events,
                    "revision": revision,
                    "updated_at": utc_now(),
                }
            ],
        )
        identifier = f"value:{tenant}:{use_case}:{month}:{kind}"
        return ValueMapped(
            event_id=f"{identifier}:r{revision}",
            occurred_at=utc_now(),
            source="value",
            tenant=tenant,
            correlation_id=identifier,
            use_case=use_case,
            period=month,
            cost=Money(amount=cost, currency=self.currency),
            outcome_kind=kind,
            outcomes=count,
            outcome_unit=unit,
            cost_per_outcome=Money(amount=per_outcome, currency=self.currency) if per_outcome is not None else None,
            value=Money(amount=value, currency=self.currency) if value is not None else None,
            cost_event_count=cost_events,
            value_linked=kind != NO_OUTCOME,
        )
