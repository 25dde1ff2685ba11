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
    __table_args__ = (Index("ix_optimizer_usage_scope", "tenant", "team", "provider", "priced_model"),)

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


class OptimizerRecommendation(SQLModel, table=True):
    """A recommendation with its latest estimate and the arithmetic behind it."""

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


OUTBOX = outbox_table("optimizer")
TABLES = [OptimizerUsage.__table__, OptimizerRecommendation.__table__, OUTBOX]  # type: ignore[attr-defined]
