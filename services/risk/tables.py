"""Tables owned by the risk service."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from sqlalchemy import Column, Index, Text
from sqlmodel import Field, SQLModel

from shared.db import ExactDecimal, UtcDateTime
from shared.outbox import outbox_table


class RiskCostEntry(SQLModel, table=True):
    """One owner's share of a cost event, at its latest revision; a replayed event adds nothing."""

    __tablename__ = "risk_cost_entries"
    __table_args__ = (Index("ix_risk_cost_entries_scope", "tenant", "month", "team"),)

    usage_event_id: str = Field(primary_key=True, max_length=64)
    share_index: int = Field(primary_key=True)
    cost_event_id: str = Field(max_length=128)
    revision: int = 1
    tenant: str = Field(max_length=512)
    month: str = Field(max_length=7)
    team: str = Field(max_length=255)
    cost_centre: str = Field(max_length=255)
    use_case: str | None = Field(default=None, max_length=255)
    provider: str = Field(max_length=128)
    model: str | None = Field(default=None, max_length=512)
    status: str = Field(max_length=16)
    charge_category: str = Field(max_length=16)
    unpriced_reason: str | None = Field(default=None, sa_column=Column(Text))
    cost_amount: Decimal | None = Field(default=None, sa_column=Column(ExactDecimal))
    cost_currency: str | None = Field(default=None, max_length=3)
    token_count: int = 0


class RiskFinding(SQLModel, table=True):
    """A finding with its current figures; the id is derived from what it is about, so it is raised once."""

    __tablename__ = "risk_findings"
    __table_args__ = (Index("ix_risk_findings_tenant_kind", "tenant", "kind"),)

    finding_id: str = Field(primary_key=True, max_length=64)
    tenant: str = Field(max_length=512)
    kind: str = Field(max_length=64)
    severity: str = Field(max_length=16)
    status: str = Field(max_length=32)
    subject: str = Field(max_length=512)
    owner: str | None = Field(default=None, max_length=512)
    title: str = Field(sa_column=Column(Text, nullable=False))
    facts_json: str = Field(sa_column=Column(Text, nullable=False))
    interpretation: str = Field(sa_column=Column(Text, nullable=False))
    evidence_json: str = Field(sa_column=Column(Text, nullable=False))
    revision: int = 1
    opened_at: datetime = Field(sa_column=Column(UtcDateTime, nullable=False))
    updated_at: datetime = Field(sa_column=Column(UtcDateTime, nullable=False))


OUTBOX = outbox_table("risk")
TABLES = [RiskCostEntry.__table__, RiskFinding.__table__, OUTBOX]  # type: ignore[attr-defined]
