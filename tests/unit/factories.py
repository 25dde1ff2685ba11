"""Event builders and a recording publisher for the value and optimizer tests; a test states only what it checks."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from aiokafka import ConsumerRecord

from shared.consumer import Incoming
from shared.db import Database
from shared.events import (
    Allocation,
    ChargeCategory,
    CostAllocated,
    CostStatus,
    EventEnvelope,
    Evidence,
    Money,
    OutcomeRecorded,
    ServiceTier,
    UsageBucket,
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


async def sqlite_outbox(tmp_path: Path, service: str, tables: Sequence[Any]) -> tuple[Database, Outbox, Any]:
    """Return a database in an SQLite file with the service's tables, its outbox and the recording publisher."""
    database = Database(f"sqlite+aiosqlite:///{tmp_path / f'{service}.db'}")
    await database.create_tables(tables)
    publisher = RecordingPublisher()
    return database, Outbox(service, database, publisher), publisher  # type: ignore[arg-type]


def incoming(*events: EventEnvelope) -> list[Incoming[Any]]:
    """Wrap events as a consumed batch; the record is only read when a message is dead-lettered."""
    record: ConsumerRecord[Any, Any] = ConsumerRecord(
        topic="t",
        partition=0,
        offset=0,
        timestamp=0,
        timestamp_type=0,
        key=b"k",
        value=b"",
        checksum=None,
        serialized_key_size=1,
        serialized_value_size=0,
        headers=(),
    )
    return [Incoming(record=record, event=event) for event in events]


def at(text: str) -> datetime:
    """Parse 'YYYY-MM-DD' or 'YYYY-MM-DDTHH:MM' as a UTC instant."""
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def cost_event(
    usage_id: str,
    *,
    day: str,
    amount: str | None,
    tenant: str = "acme",
    team: str = "team-a",
    use_case: str | None = None,
    provider: str = "openai",
    model: str | None = "gpt-5",
    tier: ServiceTier = ServiceTier.STANDARD,
    quantities: dict[str, int] | None = None,
    requests: int | None = None,
    hours: int = 24,
    status: CostStatus | None = None,
    resource_id: str | None = None,
    tags: dict[str, str] | None = None,
    revision: int = 1,
    charge_category: ChargeCategory = ChargeCategory.USAGE,
) -> CostAllocated:
    start = at(day)
    cost = Money(amount=Decimal(amount), currency="USD") if amount is not None else None
    if status is None:
        status = CostStatus.PRICED if cost is not None else CostStatus.UNPRICED
    correction = None
    if revision > 1:
        correction = {
            "previous_revision": revision - 1,
            "previous_status": "priced",
            "previous_cost": None,
            "reason": "t",
        }
    return CostAllocated(
        event_id=f"cost:{usage_id}:r{revision}",
        occurred_at=start,
        source="allocation",
        tenant=tenant,
        correlation_id=usage_id,
        usage_event_id=usage_id,
        provider=provider,
        model=model,
        priced_model=model if status is CostStatus.PRICED else None,
        service_tier=tier,
        period_start=start,
        period_end=start + timedelta(hours=hours),
        dimensions=UsageDimensions(resource_id=resource_id, tags=tags or {}),
        quantities={UsageBucket(name): Decimal(count) for name, count in (quantities or {}).items()},
        request_count=requests,
        charge_category=charge_category,
        status=status,
        cost=cost,
        allocation=Allocation(team=team, cost_centre="CC-1", use_case=use_case, rule_id="r1"),
        revision=revision,
        correction=correction,
    )


def outcome_event(
    event_id: str,
    *,
    use_case: str,
    when: str,
    quantity: str,
    kind: str = "tickets_resolved",
    unit: str = "tickets",
    value: str | None = None,
    currency: str = "USD",
    tenant: str = "acme",
) -> OutcomeRecorded:
    return OutcomeRecorded(
        event_id=event_id,
        occurred_at=at(when),
        source="test",
        tenant=tenant,
        correlation_id=event_id,
        use_case=use_case,
        outcome_kind=kind,
        quantity=Decimal(quantity),
        unit=unit,
        value=Money(amount=Decimal(value), currency=currency) if value is not None else None,
    )


def evidence(name: str) -> Evidence:
    return Evidence(format=name)
