"""Budgets set over the ops API, stored beside the budgets file and applied over it.

A budget set over the API is kept in ``risk_budget_overrides`` in the shape of a budgets file entry, so it
outlives restarts and every risk replica reads it. An override replaces the file's budget of the same id;
any other id is added. Setting a budget checks the spend already recorded against it at once. Without that
check a lowered budget would raise nothing until the next cost arrived.

NOTE: a sandbox budget set here applies to costs recorded after it. Costs already recorded keep the sandbox
decision they were stored with.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Column, Text, delete, select
from sqlmodel import Field, SQLModel

from services.risk.budgets import (
    ENTRIES,
    Budget,
    budget_periods,
    budget_spend,
    forecast_detections,
    parse_budget,
    threshold_detections,
)
from services.risk.findings import FindingStore
from services.risk.handlers import _data_clock  # the forecast's clock must match the detector's
from services.risk.periods import Period
from shared.db import Database, UtcDateTime
from shared.events import Severity, utc_now
from shared.logging import get_logger
from shared.outbox import Outbox

log = get_logger(__name__)


class RiskBudgetOverride(SQLModel, table=True):
    """A budget set over the ops API, as the mapping an entry of the budgets file contains."""

    __tablename__ = "risk_budget_overrides"

    budget_id: str = Field(primary_key=True, max_length=512)
    definition_json: str = Field(sa_column=Column(Text, nullable=False))
    set_by: str = Field(max_length=255)
    set_at: datetime = Field(sa_column=Column(UtcDateTime, nullable=False))


OVERRIDES = RiskBudgetOverride.__table__  # type: ignore[attr-defined]


@dataclass(frozen=True, slots=True)
class StoredBudget:
    budget: Budget
    set_by: str
    set_at: datetime


async def stored_budgets(database: Database) -> list[StoredBudget]:
    """Read every budget set over the API, ordered by id."""
    async with database.engine.connect() as connection:
        rows = (await connection.execute(select(OVERRIDES).order_by(OVERRIDES.c.budget_id))).all()
    return [
        StoredBudget(
            parse_budget(json.loads(row.definition_json), f"risk_budget_overrides[{row.budget_id}]"),
            row.set_by,
            row.set_at,
        )
        for row in rows
    ]


def merge_budgets(from_file: Sequence[Budget], overrides: Sequence[StoredBudget]) -> list[Budget]:
    """Return the file's budgets with overrides replacing those of the same id, then the new ones."""
    replaced = {item.budget.budget_id: item.budget for item in overrides}
    merged = [replaced.pop(budget.budget_id, budget) for budget in from_file]
    return merged + list(replaced.values())


async def store_budget(database: Database, definition: dict[str, Any], set_by: str) -> StoredBudget:
    """Validate a budget mapping and store it, replacing a stored budget of the same id."""
    budget = parse_budget(definition, "budget")
    stored = StoredBudget(budget, set_by, utc_now())
    async with database.transaction() as connection:
        await connection.execute(delete(OVERRIDES).where(OVERRIDES.c.budget_id == budget.budget_id))
        await connection.execute(
            OVERRIDES.insert().values(
                budget_id=budget.budget_id,
                definition_json=json.dumps(definition, sort_keys=True),
                set_by=set_by,
                set_at=stored.set_at,
            )
        )
    log.info("budget.set", budget_id=budget.budget_id, set_by=set_by, amount=str(budget.amount))
    return stored


async def check_budget(
    database: Database,
    outbox: Outbox,
    budget: Budget,
    zone_for: Callable[[str], ZoneInfo],
    min_ticket_severity: Severity,
) -> int:
    """Check the spend already recorded in every period the budget covers; return the findings raised or revised."""
    store = FindingStore(min_ticket_severity)
    async with database.transaction() as connection:
        conditions = [ENTRIES.c[budget.column] == budget.scope_value]
        if budget.tenant is not None:
            conditions.append(ENTRIES.c.tenant == budget.tenant)
        tenants = (await connection.execute(select(ENTRIES.c.tenant).where(*conditions).distinct())).scalars()
        zones = {tenant: zone_for(tenant) for tenant in tenants}
        result = await connection.stream(
            select(ENTRIES.c.tenant, ENTRIES.c.usage_start, ENTRIES.c.sandbox_id, ENTRIES.c[budget.column]).where(
                *conditions
            )
        )
        periods: dict[tuple[str, str], tuple[Budget, str, Period]] = {}
        async for chunk in result.mappings().partitions(5000):
            periods.update(budget_periods([budget], [dict(row) for row in chunk], zones))
        detections = []
        for _, tenant, period in sorted(periods.values(), key=lambda item: (item[1], item[2].key)):
            spent = await budget_spend(connection, budget, tenant, period)
            detections += threshold_detections(budget, tenant, period, spent)
            detections += forecast_detections(budget, tenant, period, spent, await _data_clock(connection, tenant))
        for detection in sorted(detections, key=lambda item: item.finding_id):
            await store.record(connection, detection)
        events = store.take_published()
        await outbox.add(connection, events)
    await outbox.send_now(events)
    return len(events)
