"""Tables owned by the allocation service."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from sqlalchemy import Column, Index, Text
from sqlmodel import Field, SQLModel

from shared.db import ExactDecimal, UtcDateTime
from shared.outbox import outbox_table


class CostLedgerEntry(SQLModel, table=True):
    """The priced and allocated cost of one usage event; amounts are exact Decimals."""

    __tablename__ = "allocation_cost_ledger"
    __table_args__ = (
        Index("ix_allocation_cost_ledger_tenant_period", "tenant", "period_start"),
        Index("ix_allocation_cost_ledger_team", "tenant", "team"),
    )

    usage_event_id: str = Field(primary_key=True, max_length=64)
    cost_event_id: str = Field(max_length=128)
    tenant: str = Field(max_length=512)
    provider: str = Field(max_length=128)
    service: str | None = Field(default=None, max_length=512)
    model: str | None = Field(default=None, max_length=512)
    priced_model: str | None = Field(default=None, max_length=512)
    service_tier: str = Field(max_length=16)
    period_start: datetime = Field(sa_column=Column(UtcDateTime, nullable=False))
    period_end: datetime = Field(sa_column=Column(UtcDateTime, nullable=False))
    charge_category: str = Field(max_length=16)
    status: str = Field(max_length=16)
    unpriced_reason: str | None = Field(default=None, sa_column=Column(Text))
    cost_amount: Decimal | None = Field(default=None, sa_column=Column(ExactDecimal))
    cost_currency: str | None = Field(default=None, max_length=3)
    provider_cost_amount: Decimal | None = Field(default=None, sa_column=Column(ExactDecimal))
    provider_cost_currency: str | None = Field(default=None, max_length=3)
    team: str = Field(max_length=255)
    cost_centre: str = Field(max_length=255)
    use_case: str | None = Field(default=None, max_length=255)
    environment: str | None = Field(default=None, max_length=64)
    rule_id: str = Field(max_length=255)
    catalogue_version: str | None = Field(default=None, max_length=64)
    lines_json: str = Field(sa_column=Column(Text, nullable=False))
    quantities_json: str = Field(sa_column=Column(Text, nullable=False))
    dimensions_json: str = Field(sa_column=Column(Text, nullable=False))
    shares_json: str = Field(sa_column=Column(Text, nullable=False))
    revision: int = 1
    recorded_at: datetime = Field(sa_column=Column(UtcDateTime, nullable=False))


OUTBOX = outbox_table("allocation")
TABLES = [CostLedgerEntry.__table__, OUTBOX]  # type: ignore[attr-defined]
