"""Tables owned by the optimizer service."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from sqlalchemy import Column, Index, Text
from sqlmodel import Field, SQLModel

from shared.db import ExactDecimal, UtcDateTime
from shared.outbox import outbox_table


class OptimizerUsage(SQLModel, table=True):
    """Usage the optimizer studies, at the latest revision of its cost: quantities, tier, status and cost."""

    __tablename__ = "optimizer_usage"
    __table_args__ = (
        Index("ix_optimizer_usage_scope", "tenant", "team", "provider", "priced_model"),
        Index("ix_optimizer_usage_resource", "tenant", "resource_id"),
    )

    usage_event_id: str = Field(primary_key=True, max_length=64)
    cost_event_id: str = Field(max_length=128)
    revision: int = 1
    status: str = Field(max_length=16)
    tenant: str = Field(max_length=512)
    team: str = Field(max_length=255)
    use_case: str | None = Field(default=None, max_length=255)
    provider: str = Field(max_length=128)
    priced_model: str | None = Field(default=None, max_length=512)
    service_tier: str = Field(max_length=16)
    month: str = Field(max_length=7)
    period_start: datetime = Field(sa_column=Column(UtcDateTime, nullable=False))
    quantities_json: str = Field(sa_column=Column(Text, nullable=False))
    request_count: int | None = None
    cost_amount: Decimal | None = Field(default=None, sa_column=Column(ExactDecimal))
    cost_currency: str | None = Field(default=None, max_length=3)
    period_end: datetime | None = Field(default=None, sa_column=Column(UtcDateTime))
    charge_category: str = Field(default="usage", max_length=16)
    resource_id: str | None = Field(default=None, max_length=1024)
    tags_json: str = Field(default="{}", sa_column=Column(Text, nullable=False, server_default="{}"))


class OptimizerRecommendation(SQLModel, table=True):
    """A recommendation with its latest estimate, the arithmetic behind it and its status."""

    __tablename__ = "optimizer_recommendations"

    recommendation_id: str = Field(primary_key=True, max_length=64)
    tenant: str = Field(max_length=512)
    kind: str = Field(max_length=32)
    scope: str = Field(max_length=1024)
    savings_amount: Decimal = Field(sa_column=Column(ExactDecimal, nullable=False))
    currency: str = Field(max_length=3)
    confidence: str = Field(max_length=8)
    arithmetic: str = Field(sa_column=Column(Text, nullable=False))
    caveat: str | None = Field(default=None, sa_column=Column(Text))
    evidence_json: str = Field(sa_column=Column(Text, nullable=False))
    status: str = Field(default="open", max_length=16)
    revision: int = 1
    updated_at: datetime = Field(sa_column=Column(UtcDateTime, nullable=False))
    # The recomputation that owns the recommendation, such as 'tokens|team|provider|model'; a recomputation
    # that no longer finds one of its open recommendations sets its savings to zero.
    origin: str = Field(default="", max_length=1024)
    price_rows_json: str = Field(default="[]", sa_column=Column(Text, nullable=False, server_default="[]"))
    ticket_requested: bool = False
    status_reason: str | None = Field(default=None, sa_column=Column(Text))
    status_changed_by: str | None = Field(default=None, max_length=512)
    status_changed_at: datetime | None = Field(default=None, sa_column=Column(UtcDateTime))
    created_at: datetime | None = Field(default=None, sa_column=Column(UtcDateTime))
    implemented_at: datetime | None = Field(default=None, sa_column=Column(UtcDateTime))
    # The monthly cost of what the recommendation covers, before any change. `measure_json` describes how to
    # measure that cost again after implementation.
    baseline_amount: Decimal | None = Field(default=None, sa_column=Column(ExactDecimal))
    baseline_period: str | None = Field(default=None, max_length=7)
    measure_json: str = Field(default="{}", sa_column=Column(Text, nullable=False, server_default="{}"))
    realised_amount: Decimal | None = Field(default=None, sa_column=Column(ExactDecimal))
    realised_arithmetic: str | None = Field(default=None, sa_column=Column(Text))


class OptimizerRecommendationHistory(SQLModel, table=True):
    """Every status change of a recommendation: who made it, when and why."""

    __tablename__ = "optimizer_recommendation_history"

    recommendation_id: str = Field(primary_key=True, max_length=64)
    revision: int = Field(primary_key=True)
    status: str = Field(max_length=16)
    reason: str | None = Field(default=None, sa_column=Column(Text))
    changed_by: str | None = Field(default=None, max_length=512)
    changed_at: datetime = Field(sa_column=Column(UtcDateTime, nullable=False))


class OptimizerSeat(SQLModel, table=True):
    """The latest report of one assigned seat of an AI tool."""

    __tablename__ = "optimizer_seats"

    tenant: str = Field(primary_key=True, max_length=512)
    vendor: str = Field(primary_key=True, max_length=255)
    product: str = Field(primary_key=True, max_length=255)
    seat_holder: str = Field(primary_key=True, max_length=512)
    as_of: datetime = Field(sa_column=Column(UtcDateTime, nullable=False))
    event_id: str = Field(max_length=512)
    plan: str | None = Field(default=None, max_length=128)
    last_activity_at: datetime | None = Field(default=None, sa_column=Column(UtcDateTime))
    pending_cancellation_date: str | None = Field(default=None, max_length=10)
    assigning_team: str | None = Field(default=None, max_length=512)


class OptimizerSeatEntitlement(SQLModel, table=True):
    """The latest seat totals of one AI tool licence."""

    __tablename__ = "optimizer_seat_entitlements"

    tenant: str = Field(primary_key=True, max_length=512)
    vendor: str = Field(primary_key=True, max_length=255)
    product: str = Field(primary_key=True, max_length=255)
    as_of: datetime = Field(sa_column=Column(UtcDateTime, nullable=False))
    event_id: str = Field(max_length=512)
    entitled_seats: int
    active_seats: int | None = None
    inactive_seats: int | None = None
    pending_cancellation_seats: int | None = None
    seat_price_amount: Decimal | None = Field(default=None, sa_column=Column(ExactDecimal))
    seat_price_currency: str | None = Field(default=None, max_length=3)


class OptimizerGpuUtilisation(SQLModel, table=True):
    """Mean utilisation of one GPU over one telemetry window."""

    __tablename__ = "optimizer_gpu_utilisation"
    __table_args__ = (Index("ix_optimizer_gpu_utilisation_resource", "tenant", "resource_id"),)

    tenant: str = Field(primary_key=True, max_length=512)
    host: str = Field(primary_key=True, max_length=512)
    gpu_id: str = Field(primary_key=True, max_length=512)
    window_start: datetime = Field(sa_column=Column(UtcDateTime, primary_key=True))
    window_end: datetime = Field(sa_column=Column(UtcDateTime, nullable=False))
    utilisation_percent: Decimal = Field(sa_column=Column(ExactDecimal, nullable=False))
    event_id: str = Field(max_length=512)
    gpu_model: str | None = Field(default=None, max_length=255)
    resource_id: str | None = Field(default=None, max_length=1024)


OUTBOX = outbox_table("optimizer")
TABLES = [
    OptimizerUsage.__table__,  # type: ignore[attr-defined]
    OptimizerRecommendation.__table__,  # type: ignore[attr-defined]
    OptimizerRecommendationHistory.__table__,  # type: ignore[attr-defined]
    OptimizerSeat.__table__,  # type: ignore[attr-defined]
    OptimizerSeatEntitlement.__table__,  # type: ignore[attr-defined]
    OptimizerGpuUtilisation.__table__,  # type: ignore[attr-defined]
    OUTBOX,
]
