"""Builders for risk tests: cost events, a risk database on SQLite, and an outbox that records what it sends."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from services.risk.handlers import RiskConfig, RiskHandler
from services.risk.tables import TABLES
from shared.consumer import Incoming
from shared.db import Database
from shared.events import (
    Allocation,
    AllocationShare,
    ChargeCategory,
    CostAllocated,
    CostStatus,
    Money,
    RiskFlagged,
    ServiceTier,
    UsageDimensions,
)
from shared.kafka import OutgoingEvent
from shared.outbox import Outbox


class RecordingPublisher:
    """Stands in for the Kafka publisher and keeps what it was asked to send."""

    def __init__(self) -> None:
        self.sent: list[OutgoingEvent] = []

    async def publish(self, events: Sequence[OutgoingEvent]) -> None:
        self.sent.extend(events)

    def findings(self) -> list[RiskFlagged]:
        return [RiskFlagged.model_validate_json(event.value) for event in self.sent]


async def risk_database(folder: Path) -> Database:
    database = Database(f"sqlite+aiosqlite:///{folder / 'risk.db'}")
    await database.create_tables(TABLES)
    return database


def risk_handler(database: Database, config: RiskConfig) -> tuple[RiskHandler, RecordingPublisher]:
    publisher = RecordingPublisher()
    outbox = Outbox("risk", database, publisher)  # type: ignore[arg-type]
    return RiskHandler(database, outbox, config), publisher


def incoming(events: Sequence[Any]) -> list[Incoming[Any]]:
    return [Incoming(record=None, event=event) for event in events]  # type: ignore[arg-type]


def cost(
    usage_id: str,
    *,
    start: datetime,
    amount: str | None,
    tenant: str = "acme",
    team: str = "research",
    provider: str = "openai",
    model: str | None = "gpt-4o-2024-08-06",
    priced_model: str | None = "gpt-4o",
    service: str | None = "completions",
    region: str | None = None,
    project_id: str | None = None,
    api_key_id: str | None = None,
    use_case: str | None = None,
    environment: str | None = "prod",
    rule_id: str | None = None,
    charge_category: ChargeCategory = ChargeCategory.USAGE,
    revision: int = 1,
    hours: int = 24,
    currency: str = "USD",
) -> CostAllocated:
    """Build one cost event for one owner; ``amount`` None makes it unpriced."""
    money = Money(amount=Decimal(amount), currency=currency) if amount is not None else None
    allocation = Allocation(
        team=team,
        cost_centre="unallocated" if team == "unallocated" else f"CC-{team}",
        use_case=use_case,
        environment=environment,
        rule_id=rule_id or ("unallocated" if team == "unallocated" else f"rule-{team}"),
    )
    extra: dict[str, Any] = {}
    if revision > 1:
        extra["correction"] = {
            "previous_revision": revision - 1,
            "previous_status": "priced",
            "previous_cost": None,
            "reason": "price corrected",
        }
    return CostAllocated(
        event_id=f"cost:{usage_id}:r{revision}",
        occurred_at=start,
        source="test",
        tenant=tenant,
        correlation_id=usage_id,
        usage_event_id=usage_id,
        provider=provider,
        service=service,
        model=model,
        priced_model=priced_model,
        service_tier=ServiceTier.STANDARD,
        period_start=start,
        period_end=start + timedelta(hours=hours),
        dimensions=UsageDimensions(project_id=project_id, api_key_id=api_key_id),
        quantities={},
        charge_category=charge_category,
        status=CostStatus.PRICED if money is not None else CostStatus.UNPRICED,
        unpriced_reason=None if money is not None else "no price in the catalogue",
        cost=money,
        allocation=allocation,
        shares=(AllocationShare(allocation=allocation, fraction=Decimal(1), amount=money),),
        revision=revision,
        region=region,
        **extra,
    )
