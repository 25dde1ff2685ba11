"""Value's handlers: store cost entries and outcomes, then recompute unit economics of what changed.

A use case month is recomputed whenever one of its costs or outcomes changes,
and so is the following month when it has figures, because its trend compares
with this one. A use case with cost and no outcomes gets a record with no cost
per outcome and ``value_linked`` false, which marks spend not yet linked to value;
the risk service turns those into findings. ``services.value.economics`` defines
every figure.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from sqlalchemy import case, delete, func, select, union
from sqlalchemy.ext.asyncio import AsyncConnection

from services.value.economics import (
    OutcomeTotals,
    PreviousPeriod,
    UnitEconomics,
    compute_unit_economics,
    next_month,
    previous_month,
)
from services.value.tables import ValueCostEntry, ValueOutcome, ValueUnitEconomics
from services.value.use_cases import UseCaseRegister
from shared.consumer import Incoming
from shared.db import Database, insert_new_rows, lock_keys, replace_older_revisions, upsert
from shared.events import CostAllocated, CostStatus, Money, OutcomeRecorded, ValueMapped, utc_now
from shared.kafka import OutgoingEvent
from shared.logging import get_logger
from shared.outbox import Outbox
from shared.topics import Topic

log = get_logger(__name__)

NO_OUTCOME = "(none)"

# Columns compared to decide whether a recomputed record changed; an unchanged record publishes nothing.
FIGURE_COLUMNS = (
    "cost_amount",
    "outcomes",
    "cost_per_outcome",
    "value_amount",
    "cost_event_count",
    "owner",
    "value_source",
    "net_benefit",
    "roi_percent",
    "payback_months",
    "baseline_cost_per_outcome",
    "previous_period",
    "previous_cost_per_outcome",
    "cost_per_outcome_change_percent",
    "previous_roi_percent",
)

UseCaseMonth = tuple[str, str, str]  # (tenant, use case, month)


class ValueHandler:
    def __init__(
        self,
        database: Database,
        outbox: Outbox,
        reporting_currency: str,
        use_cases: UseCaseRegister | None = None,
    ) -> None:
        self.database = database
        self.outbox = outbox
        self.currency = reporting_currency
        self.use_cases = use_cases or UseCaseRegister([])
        # Serialises this process's recomputations, so the start-up pass and a batch never race on one record.
        self._lock = asyncio.Lock()

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
        async with self._lock, self.database.transaction() as connection:
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

    async def recompute_all(self) -> int:
        """Recompute every use case month, so that a changed use case register reaches stored figures.

        Returns how many records changed; each change is published as a new revision.
        """
        costs = ValueCostEntry.__table__  # type: ignore[attr-defined]
        outcomes = ValueOutcome.__table__  # type: ignore[attr-defined]
        async with self._lock, self.database.transaction() as connection:
            keys = (
                await connection.execute(
                    union(
                        select(costs.c.tenant, costs.c.use_case, costs.c.month).where(costs.c.use_case.is_not(None)),
                        select(outcomes.c.tenant, outcomes.c.use_case, outcomes.c.month),
                    )
                )
            ).all()
            outgoing = await self._recompute_and_queue(connection, {tuple(key) for key in keys})
        await self.outbox.send_now(outgoing)
        log.info("unit_economics.recomputed", use_case_months=len(keys), changed=len(outgoing))
        return len(outgoing)

    async def _store_and_recompute(self, table: Any, rows: list[dict[str, Any]], key: list[str]) -> None:
        if not rows:
            return
        async with self._lock, self.database.transaction() as connection:
            inserted = await insert_new_rows(connection, table, rows, key)
            new_keys = {k[0] for k in inserted}
            touched = {(row["tenant"], row["use_case"], row["month"]) for row in rows if row[key[0]] in new_keys}
            outgoing = await self._recompute_and_queue(connection, touched)
        await self.outbox.send_now(outgoing)

    async def _recompute_and_queue(
        self, connection: AsyncConnection, touched: set[tuple[str, str | None, str]]
    ) -> list[OutgoingEvent]:
        """Recompute the touched use case months and store their events in the outbox; return the events."""
        pending = {(tenant, use_case, month) for tenant, use_case, month in touched if use_case is not None}
        done: set[UseCaseMonth] = set()
        mapped: list[ValueMapped] = []
        # Months are recomputed oldest first, so each trend reads the month before it as just stored.
        while pending:
            key = min(pending)
            pending.discard(key)
            done.add(key)
            tenant, use_case, month = key
            # Keys come in increasing order, so two transactions locking several of them cannot deadlock.
            await lock_keys(connection, [f"value|{tenant}|{use_case}|{month}"])
            mapped += await self._recompute(connection, tenant, use_case, month)
            following = (tenant, use_case, next_month(month))
            if following not in done and await self._has_figures(connection, *following):
                pending.add(following)
        outgoing = [OutgoingEvent.of(Topic.VALUE_MAPPED, item, key=f"use_case:{item.use_case}") for item in mapped]
        await self.outbox.add(connection, outgoing)
        return outgoing

    async def _has_figures(self, connection: AsyncConnection, tenant: str, use_case: str, month: str) -> bool:
        table = ValueUnitEconomics.__table__  # type: ignore[attr-defined]
        row = (
            await connection.execute(
                select(table.c.period)
                .where(table.c.tenant == tenant, table.c.use_case == use_case, table.c.period == month)
                .limit(1)
            )
        ).first()
        return row is not None

    async def _recompute(
        self, connection: AsyncConnection, tenant: str, use_case: str, month: str
    ) -> list[ValueMapped]:
        cost, cost_events = await self._month_cost(connection, tenant, use_case, month)

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

        register = self.use_cases.get(use_case)
        results = []
        for (kind, unit), rows in sorted(by_kind.items()):
            totals = self._outcome_totals(rows)
            previous = await self._previous(connection, tenant, use_case, month, kind)
            economics = compute_unit_economics(
                cost=cost,
                outcomes=totals,
                outcome_kind=kind,
                use_case=register if kind != NO_OUTCOME else None,
                currency=self.currency,
                previous=previous,
                month=month,
            )
            results.append(
                await self._save(
                    connection,
                    (tenant, use_case, month),
                    kind=kind,
                    unit=unit,
                    cost=cost,
                    count=totals.quantity,
                    economics=economics,
                    cost_events=cost_events,
                    owner=register.owner if register is not None else None,
                )
            )
        return [item for item in results if item is not None]

    async def _month_cost(
        self, connection: AsyncConnection, tenant: str, use_case: str, month: str
    ) -> tuple[Decimal, int]:
        """Return a use case month's cost in the reporting currency and how many priced cost rows it has."""
        costs = ValueCostEntry.__table__  # type: ignore[attr-defined]
        conditions = (
            costs.c.tenant == tenant,
            costs.c.use_case == use_case,
            costs.c.month == month,
            costs.c.status != CostStatus.UNPRICED.value,
        )
        if connection.dialect.name == "postgresql":
            # NUMERIC sums are exact, so PostgreSQL adds up the month instead of sending every row here.
            in_currency = costs.c.cost_currency == self.currency
            row = (
                await connection.execute(
                    select(
                        func.sum(case((in_currency, costs.c.cost_amount))),
                        func.count(),
                    ).where(*conditions)
                )
            ).one()
            return (row[0] if row[0] is not None else Decimal(0)), int(row[1])
        # SQLite stores amounts as text, which its SUM would turn into binary floats.
        cost_rows = (
            await connection.execute(select(costs.c.cost_amount, costs.c.cost_currency).where(*conditions))
        ).all()
        cost = sum((row.cost_amount for row in cost_rows if row.cost_currency == self.currency), Decimal(0))
        return cost, len(cost_rows)

    def _outcome_totals(self, rows: list[Any]) -> OutcomeTotals:
        valued = [row for row in rows if row.value_amount is not None and row.value_currency == self.currency]
        return OutcomeTotals(
            quantity=sum((row.quantity for row in rows), Decimal(0)),
            value_from_events=sum((row.value_amount for row in valued), Decimal(0)) if valued else None,
            # An outcome valued in another currency keeps that value out of the total and gets no register value.
            quantity_without_value=sum((row.quantity for row in rows if row.value_amount is None), Decimal(0)),
        )

    async def _previous(
        self, connection: AsyncConnection, tenant: str, use_case: str, month: str, kind: str
    ) -> PreviousPeriod | None:
        if kind == NO_OUTCOME:
            return None
        table = ValueUnitEconomics.__table__  # type: ignore[attr-defined]
        period = previous_month(month)
        row = (
            await connection.execute(
                select(table.c.cost_per_outcome, table.c.roi_percent).where(
                    table.c.tenant == tenant,
                    table.c.use_case == use_case,
                    table.c.period == period,
                    table.c.outcome_kind == kind,
                )
            )
        ).first()
        if row is None:
            return None
        return PreviousPeriod(period=period, cost_per_outcome=row.cost_per_outcome, roi_percent=row.roi_percent)

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
        key: UseCaseMonth,
        *,
        kind: str,
        unit: str,
        cost: Decimal,
        count: Decimal,
        economics: UnitEconomics,
        cost_events: int,
        owner: str | None,
    ) -> ValueMapped | None:
        tenant, use_case, month = key
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
        figures = {
            "cost_amount": cost,
            "outcomes": count,
            "cost_per_outcome": economics.cost_per_outcome,
            "value_amount": economics.value,
            "cost_event_count": cost_events,
            "owner": owner,
            "value_source": economics.value_source,
            "net_benefit": economics.net_benefit,
            "roi_percent": economics.roi_percent,
            "payback_months": economics.payback_months,
            "baseline_cost_per_outcome": economics.baseline_cost_per_outcome,
            "previous_period": economics.previous_period if kind != NO_OUTCOME else None,
            "previous_cost_per_outcome": economics.previous_cost_per_outcome,
            "cost_per_outcome_change_percent": economics.cost_per_outcome_change_percent,
            "previous_roi_percent": economics.previous_roi_percent,
        }
        if previous is not None and all(previous._mapping[name] == figures[name] for name in FIGURE_COLUMNS):
            return None
        revision = previous.revision + 1 if previous is not None else 1
        await connection.execute(
            upsert(
                connection,
                table,
                ["tenant", "use_case", "period", "outcome_kind"],
                [*FIGURE_COLUMNS, "currency", "outcome_unit", "revision", "updated_at"],
            ),
            [
                {
                    "tenant": tenant,
                    "use_case": use_case,
                    "period": month,
                    "outcome_kind": kind,
                    "currency": self.currency,
                    "outcome_unit": unit,
                    "revision": revision,
                    "updated_at": utc_now(),
                    **figures,
                }
            ],
        )
        return self._event(key, kind, unit, figures, revision)

    def _event(self, key: UseCaseMonth, kind: str, unit: str, figures: dict[str, Any], revision: int) -> ValueMapped:
        tenant, use_case, month = key

        def money(name: str) -> Money | None:
            amount = figures[name]
            return Money(amount=amount, currency=self.currency) if amount is not None else None

        identifier = f"value:{tenant}:{use_case}:{month}:{kind}"
        return ValueMapped(
            event_id=f"{identifier}:r{revision}",
            occurred_at=utc_now(),
            source="value",
            tenant=tenant,
            correlation_id=identifier,
            use_case=use_case,
            period=month,
            cost=Money(amount=figures["cost_amount"], currency=self.currency),
            outcome_kind=kind,
            outcomes=figures["outcomes"],
            outcome_unit=unit,
            cost_per_outcome=money("cost_per_outcome"),
            value=money("value_amount"),
            cost_event_count=figures["cost_event_count"],
            value_linked=kind != NO_OUTCOME,
            owner=figures["owner"],
            value_source=figures["value_source"],
            net_benefit=money("net_benefit"),
            roi_percent=figures["roi_percent"],
            payback_months=figures["payback_months"],
            baseline_cost_per_outcome=money("baseline_cost_per_outcome"),
            previous_period=figures["previous_period"],
            previous_cost_per_outcome=money("previous_cost_per_outcome"),
            cost_per_outcome_change_percent=figures["cost_per_outcome_change_percent"],
            previous_roi_percent=figures["previous_roi_percent"],
        )
