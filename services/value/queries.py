"""Reading unit economics back for the report, the command line and, later, an API."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from services.value.handlers import NO_OUTCOME
from services.value.tables import ValueUnitEconomics
from shared.db import Database

TABLE = ValueUnitEconomics.__table__  # type: ignore[attr-defined]
AMOUNT_COLUMNS = (
    "cost_per_outcome",
    "value_amount",
    "net_benefit",
    "roi_percent",
    "payback_months",
    "baseline_cost_per_outcome",
    "previous_cost_per_outcome",
    "cost_per_outcome_change_percent",
    "previous_roi_percent",
)


async def read_unit_economics(database: Database, tenant: str, use_case: str | None = None) -> list[dict[str, Any]]:
    """Return the tenant's unit economics by use case, month and outcome kind, with exact figures as strings."""
    conditions = [TABLE.c.tenant == tenant]
    if use_case is not None:
        conditions.append(TABLE.c.use_case == use_case)
    async with database.engine.connect() as connection:
        rows = (
            await connection.execute(
                select(TABLE).where(*conditions).order_by(TABLE.c.use_case, TABLE.c.period, TABLE.c.outcome_kind)
            )
        ).all()
    results = []
    for row in rows:
        exact = {name: str(row._mapping[name]) if row._mapping[name] is not None else None for name in AMOUNT_COLUMNS}
        results.append(
            {
                "use_case": row.use_case,
                "period": row.period,
                "owner": row.owner,
                "cost": str(row.cost_amount),
                "currency": row.currency,
                "outcome_kind": row.outcome_kind,
                "outcomes": str(row.outcomes),
                "outcome_unit": row.outcome_unit,
                "cost_per_outcome": exact["cost_per_outcome"],
                "value": exact["value_amount"],
                "value_source": row.value_source,
                "net_benefit": exact["net_benefit"],
                "roi_percent": exact["roi_percent"],
                "payback_months": exact["payback_months"],
                "baseline_cost_per_outcome": exact["baseline_cost_per_outcome"],
                "previous_period": row.previous_period,
                "previous_cost_per_outcome": exact["previous_cost_per_outcome"],
                "cost_per_outcome_change_percent": exact["cost_per_outcome_change_percent"],
                "previous_roi_percent": exact["previous_roi_percent"],
                "cost_events": row.cost_event_count,
                "value_linked": row.outcome_kind != NO_OUTCOME,
                "revision": row.revision,
            }
        )
    return results
