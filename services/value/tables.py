"""Tables owned by the value service."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from sqlalchemy import Column, Index
from sqlmodel import Field, SQLModel

from shared.db import ExactDecimal, UtcDateTime
from shared.outbox import outbox_table


class ValueCostEntry(SQLModel, table=True):
    """One share of a cost event at its latest revision, with the use case that carries it (if any)."""

    __tablename__ = "value_cost_entries"
    __table_args__ = (Index("ix_value_cost_entries_use_case", "tenant", "use_case", "month"),)

    usage_event_id: str = Field(primary_key=True, max_length=64)
    share_index: int = Field(primary_key=True)
    cost_event_id: str = Field(max_length=128)
    revision: int = 1
    tenant: str = Field(max_length=512)
    use_case: str | None = Field(default=None, max_length=255)
    month: str = Field(max_length=7)
    status: str = Field(max_length=16)
    cost_amount: Decimal | None = Field(default=None, sa_column=Column(ExactDecimal))
    cost_currency: str | None = Field(default=None, max_length=3)


class ValueOutcome(SQLModel, table=True):
    """One outcome event: how many outcomes a use case produced, and their value when known."""

    __tablename__ = "value_outcomes"
    __table_args__ = (Index("ix_value_outcomes_use_case", "tenant", "use_case", "month"),)

    event_id: str = Field(primary_key=True, max_length=128)
    tenant: str = Field(max_length=512)
    use_case: str = Field(max_length=255)
    outcome_kind: str = Field(max_length=255)
    month: str = Field(max_length=7)
    quantity: Decimal = Field(sa_column=Column(ExactDecimal, nullable=False))
    unit: str = Field(max_length=64)
    value_amount: Decimal | None = Field(default=None, sa_column=Column(ExactDecimal))
    value_currency: str | None = Field(default=None, max_length=3)
    occurred_at: datetime = Field(sa_column=Column(UtcDateTime, nullable=False))


class ValueUnitEconomics(SQLModel, table=True):
    """Latest unit economics of one use case, outcome kind and month."""

    __tablename__ = "value_unit_economics"

    tenant: str = Field(primary_key=True, max_length=512)
    use_case: str = Field(primary_key=True, max_length=255)
    period: str = Field(primary_key=True, max_length=7)
    outcome_kind: str = Field(primary_key=True, max_length=255)
    cost_amount: Decimal = Field(sa_column=Column(ExactDecimal, nullable=False))
    currency: str = Field(max_length=3)
    outcomes: Decimal = Field(sa_column=Column(ExactDecimal, nullable=False))
    outcome_unit: str = Field(max_length=64)
    cost_per_outcome: Decimal | None = Field(default=None, sa_column=Column(ExactDecimal))
    value_amount: Decimal | None = Field(default=None, sa_column=Column(ExactDecimal))
    cost_event_count: int = 0
    revision: int = 1
    updated_at: datetime = Field(sa_column=Column(UtcDateTime, nullable=False))
    owner: str | None = Field(default=None, max_length=512)
    value_source: str | None = Field(default=None, max_length=128)
    net_benefit: Decimal | None = Field(default=None, sa_column=Column(ExactDecimal))
    roi_percent: Decimal | None = Field(default=None, sa_column=Column(ExactDecimal))
    payback_months: Decimal | None = Field(default=None, sa_column=Column(ExactDecimal))
    baseline_cost_per_outcome: Decimal | None = Field(default=None, sa_column=Column(ExactDecimal))
    previous_period: str | None = Field(default=None, max_length=7)
    previous_cost_per_outcome: Decimal | None = Field(default=None, sa_column=Column(ExactDecimal))
    cost_per_outcome_change_percent: Decimal | None = Field(default=None, sa_column=Column(ExactDecimal))
    previous_roi_percent: Decimal | None = Field(default=None, sa_column=Column(ExactDecimal))


OUTBOX = outbox_table("value")
TABLES = [ValueCostEntry.__table__, ValueOutcome.__table__, ValueUnitEconomics.__table__, OUTBOX]  # type: ignore[attr-defined]
