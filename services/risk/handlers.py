"""Risk's handlers: store the facts of each event, then rebuild the findings they touch from the stored rows.

Findings are computed from risk's own tables, never from running counters, so a replayed or doubled event
changes no total. Each handler runs in one transaction: its rows, the finding changes, their history, the
``risk.flagged`` events in the outbox and the ticket requests are committed together, then the events are sent.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from services.risk.anomalies import AnomalySettings, detect_anomalies, touched_series
from services.risk.budgets import (
    Budget,
    budget_periods,
    budget_spend,
    forecast_detections,
    threshold_detections,
)
from services.risk.contracts import Contract, commitment_detections, renewal_detection
from services.risk.findings import ACTIVE, FINDINGS, Detection, FindingStore, finding_id
from services.risk.licences import SEATS, licence_detections, store_entitlements, store_seats
from services.risk.periods import period_of
from services.risk.policy import Policy
from services.risk.signals import (
    RECOMMENDATION_CLOSURE,
    savings_detection,
    savings_id,
    value_unlinked_detection,
    value_unlinked_id,
    variance_detection,
)
from services.risk.tables import RiskCostEntry, RiskVarianceSeen
from services.risk.usage_checks import (
    NOT_REPORTED,
    classify,
    model_key,
    policy_detection,
    unlisted_detection,
    unowned_detection,
    unpriced_detection,
)
from services.risk.vendors import AiVendors
from shared.consumer import Incoming
from shared.db import Database, lock_keys, replace_older_revisions, upsert
from shared.events import (
    TOKEN_BUCKETS,
    CostAllocated,
    CostStatus,
    CostVarianceDetected,
    FindingStatus,
    SavingsRecommended,
    SeatActivityReported,
    SeatEntitlementReported,
    Severity,
    ValueMapped,
    utc_now,
)
from shared.kafka import OutgoingEvent
from shared.logging import get_logger
from shared.outbox import Outbox

log = get_logger(__name__)
VARIANCES_SEEN = RiskVarianceSeen.__table__  # type: ignore[attr-defined]

ENTRIES = RiskCostEntry.__table__  # type: ignore[attr-defined]


@dataclass
class RiskConfig:
    """Everything the detectors are configured with."""

    budgets: list[Budget] = field(default_factory=list)
    policy: Policy | None = None
    contracts: list[Contract] = field(default_factory=list)
    vendors: AiVendors = field(default_factory=AiVendors.load)
    anomalies: AnomalySettings = field(default_factory=AnomalySettings)
    zone_for: Callable[[str], ZoneInfo] = lambda _tenant: ZoneInfo("UTC")
    min_ticket_severity: Severity = Severity.MEDIUM

    def team_owners(self) -> dict[str, str]:
        return {b.scope_value: b.owner for b in self.budgets if b.scope_key == "team" and b.owner and not b.sandbox}


def entry_rows(cost: CostAllocated, config: RiskConfig) -> list[dict[str, Any]]:
    """Build one row per share: the owner, the amount that owner carries, and the checks' decisions."""
    tokens = sum(int(quantity) for bucket, quantity in cost.quantities.items() if bucket in TOKEN_BUCKETS)
    dimensions = cost.dimensions.model_dump()
    zone = config.zone_for(cost.tenant)
    rows = []
    for index, share in enumerate(cost.shares):
        row: dict[str, Any] = {
            "usage_event_id": cost.usage_event_id,
            "share_index": index,
            "cost_event_id": cost.event_id,
            "revision": cost.revision,
            "tenant": cost.tenant,
            "month": cost.period_start.strftime("%Y-%m"),
            "team": share.allocation.team,
            "cost_centre": share.allocation.cost_centre,
            "use_case": share.allocation.use_case,
            "provider": cost.provider,
            "model": cost.model,
            "status": cost.status.value,
            "charge_category": cost.charge_category.value,
            "unpriced_reason": cost.unpriced_reason,
            "cost_amount": share.amount.amount if share.amount else None,
            "cost_currency": share.amount.currency if share.amount else None,
            "token_count": tokens if index == 0 else 0,
            "usage_start": cost.period_start,
            "usage_end": cost.period_end,
            "service": cost.service,
            "priced_model": cost.priced_model,
            "region": cost.region,
            "project_id": cost.dimensions.project_id,
            "environment": share.allocation.environment,
            "rule_id": share.allocation.rule_id,
            "model_key": model_key(cost.model, cost.priced_model, cost.service),
            "policy_key": None,
            "policy_rule": None,
            "policy_classification": None,
            "policy_reason": None,
            "unowned_key": None,
            "unlisted_key": None,
        }
        classify(row, dimensions, vendors=config.vendors, policy=config.policy, budgets=config.budgets, zone=zone)
        rows.append(row)
    return rows


class RiskHandler:
    def __init__(self, database: Database, outbox: Outbox, config: RiskConfig) -> None:
        self.database = database
        self.outbox = outbox
        self.config = config

    async def handle(self, batch: Sequence[Incoming[CostAllocated]]) -> None:
        rows = [row for item in batch for row in entry_rows(item.event, self.config)]
        async with self.database.transaction() as connection:
            fresh, replaced = await replace_older_revisions(connection, ENTRIES, rows, key="usage_event_id")
            touched = fresh + [dict(row._mapping) for row in replaced]
            # Budgets, anomalies and totals are recomputed from stored rows: one copy of the service at a time
            # per tenant, so none recomputes without the rows another copy is committing.
            await lock_keys(connection, (f"risk|{row['tenant']}" for row in touched))
            detections = await self._cost_detections(connection, touched)
            events = await self._record(connection, detections)
        await self.outbox.send_now(events)

    async def handle_variances(self, batch: Sequence[Incoming[CostVarianceDetected]]) -> None:
        """Record each day's newest variance; an older one delivered later (replay, redelivery) changes nothing."""
        newest: dict[str, Detection] = {}
        produced: dict[str, CostVarianceDetected] = {}
        for event in (item.event for item in batch):
            detection = variance_detection(event)
            known = produced.get(detection.finding_id)
            if known is None or (event.produced_at, event.event_id) > (known.produced_at, known.event_id):
                newest[detection.finding_id] = detection
                produced[detection.finding_id] = event
        async with self.database.transaction() as connection:
            await lock_keys(connection, (f"risk|variance|{identifier}" for identifier in newest))
            seen = {
                row.finding_id: (row.produced_at, row.event_id)
                for row in await connection.execute(
                    select(VARIANCES_SEEN).where(VARIANCES_SEEN.c.finding_id.in_(sorted(newest)))
                )
            }
            fresh = [
                identifier
                for identifier, event in produced.items()
                if identifier not in seen or (event.produced_at, event.event_id) > seen[identifier]
            ]
            for identifier in fresh:
                event = produced[identifier]
                await connection.execute(
                    upsert(connection, VARIANCES_SEEN, ["finding_id"], ["tenant", "event_id", "produced_at"]),
                    {
                        "finding_id": identifier,
                        "tenant": event.tenant,
                        "event_id": event.event_id,
                        "produced_at": event.produced_at,
                    },
                )
            events = await self._record(connection, [newest[identifier] for identifier in fresh])
        await self.outbox.send_now(events)

    async def handle_seat_activity(self, batch: Sequence[Incoming[SeatActivityReported]]) -> None:
        async with self.database.transaction() as connection:
            touched = await store_seats(connection, [item.event for item in batch])
            events = await self._record_licences(connection, touched)
        await self.outbox.send_now(events)

    async def handle_seat_entitlements(self, batch: Sequence[Incoming[SeatEntitlementReported]]) -> None:
        async with self.database.transaction() as connection:
            touched = await store_entitlements(connection, [item.event for item in batch])
            events = await self._record_licences(connection, touched)
        await self.outbox.send_now(events)

    async def _record_licences(
        self, connection: AsyncConnection, touched: set[tuple[str, str, str]]
    ) -> list[OutgoingEvent]:
        """Record the licence findings of the touched products and resolve those their latest reports clear."""
        detections, cleared = await self._licence_detections(connection, touched)
        store = FindingStore(self.config.min_ticket_severity)
        for detection in sorted(detections, key=lambda item: item.finding_id):
            await store.record(connection, detection)
        for identifier, (tenant, note) in sorted(cleared.items()):
            await _close_if_active(connection, store, tenant, identifier, FindingStatus.RESOLVED, note)
        events = store.take_published()
        await self.outbox.add(connection, events)
        return events

    async def handle_value(self, batch: Sequence[Incoming[ValueMapped]]) -> None:
        """Raise a finding for use-case spend without outcomes; resolve it once outcomes are linked."""
        async with self.database.transaction() as connection:
            store = FindingStore(self.config.min_ticket_severity)
            for event in (item.event for item in batch):
                if not event.value_linked:
                    await store.record(connection, value_unlinked_detection(event))
                    continue
                await _close_if_active(
                    connection,
                    store,
                    event.tenant,
                    value_unlinked_id(event),
                    FindingStatus.RESOLVED,
                    f"outcomes were recorded for {event.use_case} in {event.period}",
                )
            events = store.take_published()
            await self.outbox.add(connection, events)
        await self.outbox.send_now(events)

    async def handle_savings(self, batch: Sequence[Incoming[SavingsRecommended]]) -> None:
        """Open a ticket for each recommendation someone sent to ITSM; close it when the recommendation closes."""
        async with self.database.transaction() as connection:
            store = FindingStore(self.config.min_ticket_severity)
            for event in (item.event for item in batch):
                if event.ticket_requested:
                    await store.record(connection, savings_detection(event))
                if event.status in RECOMMENDATION_CLOSURE:
                    status, note = RECOMMENDATION_CLOSURE[event.status]
                    await _close_if_active(connection, store, event.tenant, savings_id(event), status, note)
            events = store.take_published()
            await self.outbox.add(connection, events)
        await self.outbox.send_now(events)

    async def check_renewals(self, now: datetime | None = None) -> int:
        """Raise renewal findings for contracts whose notice deadline is near; return how many changed."""
        moment = now or utc_now()
        detections = [
            detection
            for contract in self.config.contracts
            if (detection := renewal_detection(contract, _today(moment, self.config.zone_for(contract.tenant))))
        ]
        async with self.database.transaction() as connection:
            events = await self._record(connection, detections)
        await self.outbox.send_now(events)
        return len(events)

    async def _record(self, connection: AsyncConnection, detections: Sequence[Detection]) -> list[OutgoingEvent]:
        store = FindingStore(self.config.min_ticket_severity)
        # Writing in finding-id order makes two of these transactions lock shared findings in the same order,
        # so they cannot deadlock each other.
        for detection in sorted(detections, key=lambda item: item.finding_id):
            await store.record(connection, detection)
        events = store.take_published()
        await self.outbox.add(connection, events)
        return events

    async def _cost_detections(self, connection: AsyncConnection, touched: list[dict[str, Any]]) -> list[Detection]:
        if not touched:
            return []
        tenants = {row["tenant"] for row in touched}
        zones = {tenant: self.config.zone_for(tenant) for tenant in tenants}
        clocks = {tenant: await _data_clock(connection, tenant) for tenant in tenants}
        detections: list[Detection] = []

        periods = budget_periods(self.config.budgets, touched, zones)
        # Every forecast is projected from the same clock: when new usage moves it on, the forecasts of periods
        # that this batch did not touch are projected again too, so no finding keeps an older cut-off date.
        for tenant, clock in clocks.items():
            for budget in self.config.budgets:
                if (
                    clock is None
                    or not budget.forecast_thresholds
                    or budget.sandbox
                    or budget.tenant not in (None, tenant)
                ):
                    continue
                period = period_of(clock - CLOCK_EPSILON, budget.period, zones[tenant])
                periods.setdefault((budget.budget_id, f"{tenant}|{period.key}"), (budget, tenant, period))
        for budget, tenant, period in periods.values():
            spent = await budget_spend(connection, budget, tenant, period)
            detections += threshold_detections(budget, tenant, period, spent)
            detections += forecast_detections(budget, tenant, period, spent, clocks[tenant])

        unpriced = {
            (row["tenant"], row["provider"], row["model"] or NOT_REPORTED)
            for row in touched
            if row["status"] == CostStatus.UNPRICED.value
        }
        for tenant, provider, model in sorted(unpriced):
            detections.append(await unpriced_detection(connection, tenant, provider, model))

        owners = self.config.team_owners()
        for key in sorted({row["policy_key"] for row in touched if row["policy_key"]}):
            detections.append(await policy_detection(connection, key, owners))
        for key in sorted({row["unowned_key"] for row in touched if row["unowned_key"]}):
            detections.append(await unowned_detection(connection, key))
        for key in sorted({row["unlisted_key"] for row in touched if row["unlisted_key"]}):
            detections.append(await unlisted_detection(connection, key))

        for series, days in touched_series(touched, zones).items():
            known = await _known_days(connection, series.finding_id)
            zone = zones[series.tenant]
            anomaly = await detect_anomalies(connection, series, days, zone, self.config.anomalies, known)
            if anomaly is not None:
                detections.append(replace(anomaly, owner=owners.get(series.team)))

        # Commitments of every touched tenant are projected again, for the same reason as the forecasts above.
        for contract in self.config.contracts:
            if contract.kind == "spend_commitment" and contract.tenant in tenants:
                zone = self.config.zone_for(contract.tenant)
                detections += await commitment_detections(connection, contract, zone, clocks.get(contract.tenant))
        return [detection for detection in detections if detection is not None]

    async def _licence_detections(
        self, connection: AsyncConnection, touched: set[tuple[str, str, str]]
    ) -> tuple[list[Detection], dict[str, tuple[str, str]]]:
        detections: list[Detection] = []
        cleared: dict[str, tuple[str, str]] = {}
        for tenant, vendor, product in sorted(touched):
            raised, resolved = await licence_detections(connection, tenant, vendor, product, self.config.contracts)
            detections += raised
            cleared |= {identifier: (tenant, note) for identifier, note in resolved.items()}
            unlisted = await self._unlisted_seat_vendor(connection, tenant, vendor, product)
            if unlisted is not None:
                detections.append(unlisted)
        return detections, cleared

    async def _unlisted_seat_vendor(
        self, connection: AsyncConnection, tenant: str, vendor: str, product: str
    ) -> Detection | None:
        policy = self.config.policy
        if policy is None or policy.lists_vendor(vendor, product) or policy.lists_vendor(product, None):
            return None
        holders = (
            await connection.execute(
                select(func.count()).where(
                    SEATS.c.tenant == tenant, SEATS.c.vendor == vendor, SEATS.c.product == product
                )
            )
        ).scalar_one()
        name = self.config.vendors.vendor_of(vendor, product, None) or product
        facts = {"vendor": name, "seen_as": f"{vendor}/{product} seat reports", "seats_reported": str(holders)}
        return Detection(
            finding_id=finding_id(tenant, "unlisted-seats", name),
            tenant=tenant,
            kind="shadow_ai_vendor",
            severity=Severity.HIGH,
            subject=f"vendor:{name}",
            title=f"AI tool {name} appears in seat reports but no policy lists it",
            facts=facts,
            interpretation="People hold seats of this AI tool but no policy rule or exception names it; review what "
            "data it may see and add it to the policy or withdraw the seats.",
            occurrence=str(holders),
        )


async def _close_if_active(
    connection: AsyncConnection, store: FindingStore, tenant: str, identifier: str, status: FindingStatus, note: str
) -> None:
    row = (await connection.execute(select(FINDINGS.c.status).where(FINDINGS.c.finding_id == identifier))).first()
    if row is not None and FindingStatus(row.status) in ACTIVE:
        await store.change_status(
            connection, tenant=tenant, finding_id=identifier, to_status=status, actor="risk", note=note
        )


DAY_OR_LESS = timedelta(days=1)
# The data clock is the exclusive end of the newest usage, so its period is the one containing the instant before.
CLOCK_EPSILON = timedelta(microseconds=1)


async def _data_clock(connection: AsyncConnection, tenant: str) -> datetime | None:
    """Return the end of the tenant's newest usage: how far its data reaches.

    Only usage lines of a day or less count. A monthly line (a reservation, a seat fee, a savings-plan fee) ends
    at the month's end the day it is billed, so counting it would declare the month complete and stop every
    forecast for it.
    """
    result = await connection.execute(
        select(ENTRIES.c.usage_start, ENTRIES.c.usage_end)
        .where(ENTRIES.c.tenant == tenant, ENTRIES.c.charge_category == "usage", ENTRIES.c.usage_end.is_not(None))
        .order_by(ENTRIES.c.usage_end.desc())
        .limit(500)
    )
    rows = result.all()
    for start, end in rows:
        if start is not None and end - start <= DAY_OR_LESS:
            return end
    return rows[0].usage_end if rows else None


async def _known_days(connection: AsyncConnection, identifier: str) -> list[str]:
    row = (await connection.execute(select(FINDINGS.c.facts_json).where(FINDINGS.c.finding_id == identifier))).first()
    if row is None:
        return []
    days = json.loads(row.facts_json).get("flagged_days", "")
    return [day for day in days.split(",") if day]


def _today(moment: datetime, zone: ZoneInfo) -> date:
    return moment.astimezone(zone).date()
