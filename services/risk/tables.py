"""Tables owned by the risk service."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from sqlalchemy import BigInteger, Column, Index, Integer, Text
from sqlmodel import Field, SQLModel

from shared.db import ExactDecimal, UtcDateTime
from shared.outbox import outbox_table


class RiskCostEntry(SQLModel, table=True):
    """One owner's share of a cost event, at its latest revision; a replayed event adds nothing.

    The policy, shadow-AI and sandbox columns hold what the handler decided when it stored the row, so the
    findings built from them can be recomputed by key.
    """

    __tablename__ = "risk_cost_entries"
    __table_args__ = (
        Index("ix_risk_cost_entries_scope", "tenant", "month", "team"),
        Index("ix_risk_cost_entries_start", "tenant", "usage_start"),
        Index("ix_risk_cost_entries_policy", "policy_key"),
        Index("ix_risk_cost_entries_unowned", "unowned_key"),
        Index("ix_risk_cost_entries_unlisted", "unlisted_key"),
        Index("ix_risk_cost_entries_series", "tenant", "team", "provider", "model_key"),
    )

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
    usage_start: datetime | None = Field(default=None, sa_column=Column(UtcDateTime))
    usage_end: datetime | None = Field(default=None, sa_column=Column(UtcDateTime))
    service: str | None = Field(default=None, sa_column=Column(Text))
    priced_model: str | None = Field(default=None, sa_column=Column(Text))
    region: str | None = Field(default=None, sa_column=Column(Text))
    project_id: str | None = Field(default=None, sa_column=Column(Text))
    environment: str | None = Field(default=None, sa_column=Column(Text))
    rule_id: str | None = Field(default=None, sa_column=Column(Text))
    ai_vendor: str | None = Field(default=None, sa_column=Column(Text))
    sandbox_id: str | None = Field(default=None, sa_column=Column(Text))
    policy_key: str | None = Field(default=None, max_length=64)
    policy_rule: str | None = Field(default=None, sa_column=Column(Text))
    policy_classification: str | None = Field(default=None, sa_column=Column(Text))
    policy_reason: str | None = Field(default=None, sa_column=Column(Text))
    model_key: str = Field(default="(not reported)", sa_column=Column(Text, nullable=False))
    owner_key: str | None = Field(default=None, sa_column=Column(Text))
    unowned_key: str | None = Field(default=None, max_length=64)
    unlisted_key: str | None = Field(default=None, max_length=64)


class RiskFinding(SQLModel, table=True):
    """A finding with its current figures and status; the id comes from what it is about, so it is raised once."""

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
    status_changed_by: str | None = Field(default=None, max_length=512)
    status_changed_at: datetime | None = Field(default=None, sa_column=Column(UtcDateTime))
    status_note: str | None = Field(default=None, sa_column=Column(Text))
    reopen_count: int = 0
    ticket_requested: bool = False
    occurrence: str = Field(default="", max_length=512)


class RiskFindingChange(SQLModel, table=True):
    """One change of a finding's status or figures: who made it, when and why."""

    __tablename__ = "risk_finding_changes"
    __table_args__ = (Index("ix_risk_finding_changes_finding", "finding_id", "seq"),)

    seq: int | None = Field(
        default=None,
        sa_column=Column(Integer().with_variant(BigInteger(), "postgresql"), primary_key=True, autoincrement=True),
    )
    finding_id: str = Field(max_length=64)
    tenant: str = Field(max_length=512)
    revision: int
    from_status: str | None = Field(default=None, max_length=32)
    to_status: str = Field(max_length=32)
    actor: str = Field(max_length=512)
    note: str | None = Field(default=None, sa_column=Column(Text))
    changed_at: datetime = Field(sa_column=Column(UtcDateTime, nullable=False))


class RiskTicket(SQLModel, table=True):
    """The ticket that tracks one finding in one ITSM system, and what was last sent to it and read from it."""

    __tablename__ = "risk_tickets"

    finding_id: str = Field(primary_key=True, max_length=64)
    system: str = Field(primary_key=True, max_length=32)
    tenant: str = Field(max_length=512)
    external_id: str = Field(max_length=255)
    external_key: str = Field(max_length=255)
    url: str | None = Field(default=None, sa_column=Column(Text))
    synced_revision: int = 0
    synced_status: str = Field(max_length=32)
    remote_state: str | None = Field(default=None, max_length=64)
    created_at: datetime = Field(sa_column=Column(UtcDateTime, nullable=False))
    updated_at: datetime = Field(sa_column=Column(UtcDateTime, nullable=False))
    polled_at: datetime | None = Field(default=None, sa_column=Column(UtcDateTime))


class RiskTicketOutbox(SQLModel, table=True):
    """A finding whose tickets are behind it: created, updated or closed in every ITSM system on the next send.

    One row per finding, however many changes wait, because the sender reads the finding as it is at send
    time. ``generation`` grows with every new request, so a send that finishes after a newer request keeps
    the row pending.
    """

    __tablename__ = "risk_ticket_outbox"
    __table_args__ = (Index("ix_risk_ticket_outbox_due", "state", "next_attempt_at"),)

    finding_id: str = Field(primary_key=True, max_length=64)
    tenant: str = Field(max_length=512)
    generation: int = 1
    state: str = Field(default="pending", max_length=16)
    attempts: int = 0
    next_attempt_at: datetime = Field(sa_column=Column(UtcDateTime, nullable=False))
    requested_at: datetime = Field(sa_column=Column(UtcDateTime, nullable=False))
    last_error: str | None = Field(default=None, sa_column=Column(Text))


class RiskSeat(SQLModel, table=True):
    """One assigned seat of an AI tool licence, as of the newest report that listed it."""

    __tablename__ = "risk_seats"

    tenant: str = Field(primary_key=True, max_length=512)
    vendor: str = Field(primary_key=True, max_length=128)
    product: str = Field(primary_key=True, max_length=128)
    seat_holder: str = Field(primary_key=True, max_length=512)
    as_of: datetime = Field(sa_column=Column(UtcDateTime, nullable=False))
    last_activity_at: datetime | None = Field(default=None, sa_column=Column(UtcDateTime))
    pending_cancellation_date: str | None = Field(default=None, max_length=10)
    assigning_team: str | None = Field(default=None, max_length=255)
    event_id: str = Field(max_length=512)


class RiskSeatEntitlement(SQLModel, table=True):
    """The newest entitlement report of one AI tool licence."""

    __tablename__ = "risk_seat_entitlements"

    tenant: str = Field(primary_key=True, max_length=512)
    vendor: str = Field(primary_key=True, max_length=128)
    product: str = Field(primary_key=True, max_length=128)
    as_of: datetime = Field(sa_column=Column(UtcDateTime, nullable=False))
    entitled_seats: int
    active_seats: int | None = None
    inactive_seats: int | None = None
    pending_cancellation_seats: int | None = None
    seat_price_amount: Decimal | None = Field(default=None, sa_column=Column(ExactDecimal))
    seat_price_currency: str | None = Field(default=None, max_length=3)
    event_id: str = Field(max_length=512)


OUTBOX = outbox_table("risk")


class RiskVarianceSeen(SQLModel, table=True):
    """The newest reconciliation variance applied to each variance finding.

    Allocation publishes a new variance event each time its comparison of one day changes, so a replay or a
    redelivery out of order can bring an older comparison after a newer one. Its production time decides.
    """

    __tablename__ = "risk_variance_seen"

    finding_id: str = Field(primary_key=True, max_length=64)
    tenant: str = Field(max_length=512)
    event_id: str = Field(max_length=512)
    produced_at: datetime = Field(sa_column=Column(UtcDateTime, nullable=False))


TABLES = [
    RiskCostEntry.__table__,  # type: ignore[attr-defined]
    RiskFinding.__table__,  # type: ignore[attr-defined]
    RiskFindingChange.__table__,  # type: ignore[attr-defined]
    RiskTicket.__table__,  # type: ignore[attr-defined]
    RiskTicketOutbox.__table__,  # type: ignore[attr-defined]
    RiskSeat.__table__,  # type: ignore[attr-defined]
    RiskSeatEntitlement.__table__,  # type: ignore[attr-defined]
    RiskVarianceSeen.__table__,  # type: ignore[attr-defined]
    OUTBOX,
]
