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

    usage_event_id: str = Field(primary_key=True, max_length=128)
    cost_event_id: str = Field(max_length=160)
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
    product: str | None = Field(default=None, max_length=255)
    usage_json: str = Field(default="", sa_column=Column(Text, nullable=False, server_default=""))
    pricing_version: str | None = Field(default=None, max_length=64)
    list_cost_amount: Decimal | None = Field(default=None, sa_column=Column(ExactDecimal))
    share_lines_json: str = Field(default="[]", sa_column=Column(Text, nullable=False, server_default="[]"))
    split_pool: str | None = Field(default=None, max_length=255)
    token_count: int = 0
    request_count: int = 0
    local_month: str = Field(default="", max_length=7, description="Month of the usage in the tenant's time zone.")


class CostRevision(SQLModel, table=True):
    """Every revision of every cost, so corrections can be audited and exported as deltas."""

    __tablename__ = "allocation_cost_revisions"
    __table_args__ = (Index("ix_allocation_cost_revisions_tenant", "tenant", "usage_event_id"),)

    usage_event_id: str = Field(primary_key=True, max_length=128)
    revision: int = Field(primary_key=True)
    cost_event_id: str = Field(max_length=160)
    tenant: str = Field(max_length=512)
    status: str = Field(max_length=16)
    cost_amount: Decimal | None = Field(default=None, sa_column=Column(ExactDecimal))
    cost_currency: str | None = Field(default=None, max_length=3)
    list_cost_amount: Decimal | None = Field(default=None, sa_column=Column(ExactDecimal))
    lines_json: str = Field(sa_column=Column(Text, nullable=False))
    shares_json: str = Field(sa_column=Column(Text, nullable=False))
    share_lines_json: str = Field(sa_column=Column(Text, nullable=False))
    pricing_version: str | None = Field(default=None, max_length=64)
    reason: str | None = Field(default=None, sa_column=Column(Text))
    recorded_at: datetime = Field(sa_column=Column(UtcDateTime, nullable=False))


class ProviderCostStatement(SQLModel, table=True):
    """A provider's own statement of what it charged, kept for reconciliation and never added to spend."""

    __tablename__ = "allocation_provider_costs"
    __table_args__ = (Index("ix_allocation_provider_costs_key", "tenant", "provider", "day"),)

    event_id: str = Field(primary_key=True, max_length=512)
    tenant: str = Field(max_length=512)
    provider: str = Field(max_length=128)
    day: str = Field(max_length=10, description="UTC day of the statement's period start, YYYY-MM-DD.")
    model: str | None = Field(default=None, max_length=512, description="Model as the provider reported it.")
    priced_model: str | None = Field(default=None, max_length=512, description="Catalogue id after aliases.")
    line_item: str | None = Field(default=None, sa_column=Column(Text))
    scope: str = Field(default="", max_length=1024, description="Attribution keys the statement is for, or ''.")
    amount: Decimal = Field(sa_column=Column(ExactDecimal, nullable=False))
    currency: str = Field(max_length=3)
    period_start: datetime = Field(sa_column=Column(UtcDateTime, nullable=False))
    period_end: datetime = Field(sa_column=Column(UtcDateTime, nullable=False))
    recorded_at: datetime = Field(sa_column=Column(UtcDateTime, nullable=False))


class Reconciliation(SQLModel, table=True):
    """Computed against reported cost for one tenant, provider, UTC day, scope and model ('' for all)."""

    __tablename__ = "allocation_reconciliation"

    tenant: str = Field(primary_key=True, max_length=512)
    provider: str = Field(primary_key=True, max_length=128)
    day: str = Field(primary_key=True, max_length=10)
    scope: str = Field(primary_key=True, max_length=1024, description="Attribution keys, such as 'project_id=p1'.")
    model: str = Field(primary_key=True, max_length=512)
    currency: str = Field(max_length=3)
    computed_amount: Decimal = Field(sa_column=Column(ExactDecimal, nullable=False))
    reported_amount: Decimal = Field(sa_column=Column(ExactDecimal, nullable=False))
    variance_amount: Decimal = Field(sa_column=Column(ExactDecimal, nullable=False))
    variance_percent: Decimal | None = Field(default=None, sa_column=Column(ExactDecimal))
    within_tolerance: bool
    likely_cause: str = Field(sa_column=Column(Text, nullable=False))
    unpriced_events: int = 0
    published_event_id: str | None = Field(default=None, max_length=160)
    updated_at: datetime = Field(sa_column=Column(UtcDateTime, nullable=False))


OUTBOX = outbox_table("allocation")
TABLES = [
    CostLedgerEntry.__table__,  # type: ignore[attr-defined]
    CostRevision.__table__,  # type: ignore[attr-defined]
    ProviderCostStatement.__table__,  # type: ignore[attr-defined]
    Reconciliation.__table__,  # type: ignore[attr-defined]
    OUTBOX,
]
