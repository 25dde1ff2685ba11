"""Optimizer's handlers: store usage, seats and GPU telemetry, then re-estimate the recommendations they touch.

Each handler stores its rows idempotently (the latest cost revision per usage
event, the latest report per seat and licence, one row per GPU telemetry window)
and recomputes only the origins whose data changed:

- ``tokens|team|provider|model``: batch tier, cheaper model and prompt caching;
- ``commitment|provider``: commitment offers for that provider;
- ``gpu|host|gpu id``: idle or under-used GPU, also when its resource's bill changes;
- ``seats|vendor|product`` and ``overlap|category``: unused seats and overlapping tools.

Implemented recommendations of the tenants in a batch are measured again afterwards
(``services.optimizer.realised``).
"""

from __future__ import annotations

import asyncio
import functools
import json
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from services.optimizer.commitments import DailyCost, commitment_estimate
from services.optimizer.estimates import (
    UsageSample,
    batch_tier_estimate,
    cheaper_model_estimate,
    format_number,
    prompt_caching_estimate,
)
from services.optimizer.gpus import BilledCost, GpuWindow, gpu_estimate
from services.optimizer.policy import Alternative, CommitmentOffer, GpuPrice, OptimizerPolicy, SeatPrices
from services.optimizer.realised import measure_realised, seat_cost, usage_cost_by_month
from services.optimizer.seats import (
    Entitlement,
    Seat,
    SeatCost,
    latest_seats,
    overlapping_tools_estimate,
    unused_seats_estimate,
)
from services.optimizer.store import Proposal, bump, event_for, outgoing, save_proposals
from services.optimizer.tables import (
    OptimizerGpuUtilisation,
    OptimizerRecommendation,
    OptimizerSeat,
    OptimizerSeatEntitlement,
    OptimizerUsage,
)
from shared.catalogue import PriceCatalogue
from shared.consumer import Incoming
from shared.db import Database, insert_new_rows, lock_keys, replace_older_revisions
from shared.events import (
    CostAllocated,
    CostStatus,
    GpuUtilisationReported,
    RecommendationKind,
    SavingsRecommended,
    SeatActivityReported,
    SeatEntitlementReported,
    ServiceTier,
    UsageBucket,
    utc_now,
)
from shared.logging import get_logger
from shared.outbox import Outbox

log = get_logger(__name__)

USAGE = OptimizerUsage.__table__  # type: ignore[attr-defined]
SEATS = OptimizerSeat.__table__  # type: ignore[attr-defined]
ENTITLEMENTS = OptimizerSeatEntitlement.__table__  # type: ignore[attr-defined]
GPUS = OptimizerGpuUtilisation.__table__  # type: ignore[attr-defined]
RECOMMENDATIONS = OptimizerRecommendation.__table__  # type: ignore[attr-defined]
BASELINE_PLACES = Decimal("0.000001")
# The usage columns that token recommendations read; reading no others keeps each recomputation light.
TOKEN_COLUMNS = (
    "usage_event_id",
    "cost_event_id",
    "use_case",
    "service_tier",
    "month",
    "period_start",
    "period_end",
    "quantities_json",
    "request_count",
    "cost_amount",
    "cost_currency",
    "tags_json",
)


def usage_row(cost: CostAllocated) -> dict[str, Any]:
    return {
        "usage_event_id": cost.usage_event_id,
        "cost_event_id": cost.event_id,
        "revision": cost.revision,
        "status": cost.status.value,
        "tenant": cost.tenant,
        "team": cost.allocation.team,
        "use_case": cost.allocation.use_case,
        "provider": cost.provider,
        "priced_model": cost.priced_model,
        "service_tier": cost.service_tier.value,
        "month": cost.period_start.strftime("%Y-%m"),
        "period_start": cost.period_start,
        "period_end": cost.period_end,
        "quantities_json": json.dumps({bucket.value: str(value) for bucket, value in cost.quantities.items()}),
        "request_count": cost.request_count,
        "cost_amount": cost.cost.amount if cost.cost else None,
        "cost_currency": cost.cost.currency if cost.cost else None,
        "charge_category": cost.charge_category.value,
        "resource_id": cost.dimensions.resource_id,
        "tags_json": json.dumps(cost.dimensions.tags, sort_keys=True),
    }


class OptimizerHandler:
    def __init__(
        self,
        database: Database,
        outbox: Outbox,
        catalogue: PriceCatalogue,
        policy: OptimizerPolicy,
        alternatives: dict[tuple[str, str], Alternative],
        seat_prices: SeatPrices | None = None,
        gpu_prices: dict[str, GpuPrice] | None = None,
    ) -> None:
        self.database = database
        self.outbox = outbox
        self.catalogue = catalogue
        self.policy = policy
        self.alternatives = alternatives
        self.seat_prices = seat_prices or SeatPrices([])
        self.gpu_prices = gpu_prices or {}
        # Serialises this process's recomputations, so two subscribers never re-estimate one origin at once.
        self._lock = asyncio.Lock()

    # Consumers

    async def handle(self, batch: Sequence[Incoming[CostAllocated]]) -> None:
        """Store cost events and re-estimate what their usage touches."""
        rows = [usage_row(item.event) for item in batch]
        async with self._lock, self.database.transaction() as connection:
            fresh, replaced = await replace_older_revisions(connection, USAGE, rows, key="usage_event_id")
            changed = [dict(row) for row in fresh] + [dict(row._mapping) for row in replaced]
            # The lock above covers this process; other copies of the service are kept out per tenant.
            await lock_keys(connection, (f"optimizer|{row['tenant']}" for row in changed))
            events: list[SavingsRecommended] = []
            token_scopes = sorted(
                {
                    (row["tenant"], row["team"], row["provider"], row["priced_model"])
                    for row in changed
                    if row["priced_model"] is not None
                }
            )
            for scope in token_scopes:
                events += await self._recompute_tokens(connection, *scope)
            for tenant, provider in sorted({(row["tenant"], row["provider"]) for row in changed}):
                events += await self._recompute_commitments(connection, tenant, provider)
            for tenant, resource_id in sorted(
                {(row["tenant"], row["resource_id"]) for row in changed if row["resource_id"]}
            ):
                for host, gpu_id in await self._gpus_of_resource(connection, tenant, resource_id):
                    events += await self._recompute_gpu(connection, tenant, host, gpu_id)
            events += await self._refresh_realised(connection, {row["tenant"] for row in changed})
            await self._queue(connection, events)
        await self._send(events)

    async def handle_gpu_utilisation(self, batch: Sequence[Incoming[GpuUtilisationReported]]) -> None:
        """Store GPU telemetry windows and re-estimate the GPUs that got new windows."""
        rows = [
            {
                "tenant": report.tenant,
                "host": report.host,
                "gpu_id": report.gpu_id,
                "window_start": report.window_start,
                "window_end": report.window_end,
                "utilisation_percent": report.utilisation_percent,
                "event_id": report.event_id,
                "gpu_model": report.gpu_model,
                "resource_id": report.dimensions.resource_id,
            }
            for report in (item.event for item in batch)
        ]
        async with self._lock, self.database.transaction() as connection:
            # Keyed by GPU and window, so a window reported twice (by two producers, say) counts once.
            inserted = await insert_new_rows(connection, GPUS, rows, ["tenant", "host", "gpu_id", "window_start"])
            events: list[SavingsRecommended] = []
            for tenant, host, gpu_id in sorted({key[:3] for key in inserted}):
                events += await self._recompute_gpu(connection, tenant, host, gpu_id)
            await self._queue(connection, events)
        await self._send(events)

    async def handle_seat_activity(self, batch: Sequence[Incoming[SeatActivityReported]]) -> None:
        """Keep the latest report of each seat and re-estimate its product's unused seats and overlaps."""
        rows = [
            {
                "tenant": seat.tenant,
                "vendor": seat.vendor,
                "product": seat.product,
                "seat_holder": seat.seat_holder,
                "as_of": seat.as_of,
                "event_id": seat.event_id,
                "plan": seat.plan,
                "last_activity_at": seat.last_activity_at,
                "pending_cancellation_date": seat.pending_cancellation_date,
                "assigning_team": seat.assigning_team,
            }
            for seat in (item.event for item in batch)
        ]
        keys = ["tenant", "vendor", "product", "seat_holder"]
        async with self._lock, self.database.transaction() as connection:
            changed = await _keep_latest(connection, SEATS, rows, keys)
            events = await self._recompute_seat_products(
                connection, {(r["tenant"], r["vendor"], r["product"]) for r in changed}
            )
            await self._queue(connection, events)
        await self._send(events)

    async def handle_seat_entitlements(self, batch: Sequence[Incoming[SeatEntitlementReported]]) -> None:
        """Keep the latest seat totals of each licence and re-estimate its unused seats."""
        rows = [
            {
                "tenant": report.tenant,
                "vendor": report.vendor,
                "product": report.product,
                "as_of": report.as_of,
                "event_id": report.event_id,
                "entitled_seats": report.entitled_seats,
                "active_seats": report.active_seats,
                "inactive_seats": report.inactive_seats,
                "pending_cancellation_seats": report.pending_cancellation_seats,
                "seat_price_amount": report.seat_price.amount if report.seat_price else None,
                "seat_price_currency": report.seat_price.currency if report.seat_price else None,
            }
            for report in (item.event for item in batch)
        ]
        async with self._lock, self.database.transaction() as connection:
            changed = await _keep_latest(connection, ENTITLEMENTS, rows, ["tenant", "vendor", "product"])
            events = await self._recompute_seat_products(
                connection, {(r["tenant"], r["vendor"], r["product"]) for r in changed}
            )
            await self._queue(connection, events)
        await self._send(events)

    async def _queue(self, connection: AsyncConnection, events: list[SavingsRecommended]) -> None:
        await self.outbox.add(connection, outgoing(events))

    async def _send(self, events: list[SavingsRecommended]) -> None:
        for item in events:
            log.info(
                "recommendation.estimated",
                recommendation_id=item.recommendation_id,
                kind=item.kind.value,
                scope=item.scope,
                savings=str(item.estimated_monthly_savings),
                status=item.status,
                revision=item.revision,
            )
        await self.outbox.send_now(outgoing(events))

    # Token usage: batch tier, cheaper model, prompt caching

    async def _recompute_tokens(
        self, connection: AsyncConnection, tenant: str, team: str, provider: str, model: str
    ) -> list[SavingsRecommended]:
        # NOTE: this reads every priced usage row of the scope, in all months, on each batch that touches it, so time
        # and memory grow with the scope's history (about 300 MiB for 60,000 rows). Daily totals kept in a table
        # would bound both.
        result = await connection.execute(
            select(*(USAGE.c[name] for name in TOKEN_COLUMNS))
            .where(
                USAGE.c.tenant == tenant,
                USAGE.c.team == team,
                USAGE.c.provider == provider,
                USAGE.c.priced_model == model,
                USAGE.c.status == CostStatus.PRICED.value,
            )
            .order_by(USAGE.c.period_start, USAGE.c.usage_event_id)
        )
        rows = [_TokenUsage.of(tuple(row)) for row in result]
        proposals: list[Proposal] = []
        if rows:
            proposals += await self._batch_tier(connection, tenant, team, provider, model, rows)
            proposals += await self._per_tier(connection, tenant, team, provider, model, rows)
        return await save_proposals(connection, tenant, f"tokens|{team}|{provider}|{model}", proposals)

    def _non_interactive_reason(self, row: Any) -> tuple[str, str] | None:
        """Say why a standard-tier usage row can wait for the batch tier: (group key, reason), or None."""
        if row.use_case in self.policy.non_interactive_use_cases:
            return f"use_case:{row.use_case}", f"use case {row.use_case} is declared non-interactive"
        tags = _parse_tags(row.tags_json or "{}")
        required_tags = self.policy.batch_tags
        if required_tags and all(tags.get(key) == value for key, value in required_tags.items()):
            label = ",".join(f"{key}={value}" for key, value in sorted(required_tags.items()))
            return f"tagged:{label}", f"its usage is tagged {label}"
        if row.period_end is not None and _outside_business_hours(row.period_start, row.period_end, self.policy):
            hours = self.policy.business_hours
            return "off-hours", (
                f"every usage bucket is an hour or shorter and lies outside business hours "
                f"({hours.start_hour:02d}:00 to {hours.end_hour:02d}:00, ISO weekdays "
                f"{','.join(str(day) for day in sorted(hours.weekdays))}, {hours.timezone})"
            )
        return None

    async def _batch_tier(
        self, connection: AsyncConnection, tenant: str, team: str, provider: str, model: str, rows: Sequence[Any]
    ) -> list[Proposal]:
        groups: dict[str, list[Any]] = defaultdict(list)
        reasons: dict[str, str] = {}
        for row in rows:
            if row.service_tier != ServiceTier.STANDARD.value:
                continue
            found = self._non_interactive_reason(row)
            if found is not None:
                groups[found[0]].append(row)
                reasons[found[0]] = found[1]
        proposals = []
        for key in sorted(groups):
            month, samples = _latest_month(groups[key])
            declared = key.startswith("use_case:")
            estimate = batch_tier_estimate(
                provider, model, month, samples, self.catalogue, reason=None if declared else reasons[key]
            )
            if estimate is None:
                continue
            use_case = key.removeprefix("use_case:") if declared else None
            if declared:
                scope = f"team:{team} use_case:{use_case} model:{provider}/{model}"
                confidence = "high"
                caveat = f"Use case {use_case} is declared non-interactive; batch results can take up to 24 hours."
            elif key.startswith("tagged:"):
                scope = f"team:{team} {key} model:{provider}/{model}"
                confidence = "high"
                caveat = (
                    f"Usage tagged {key.removeprefix('tagged:')} is batch work; batch results can take up to 24 hours."
                )
            else:
                scope = f"team:{team} off-hours model:{provider}/{model}"
                confidence = "medium"
                caveat = (
                    "This traffic ran outside business hours; check that no one waits for its answers before moving "
                    "it to the batch tier, whose results can take up to 24 hours."
                )
            measure = _usage_measure(provider, [model], estimate.currency, team=team, use_case=use_case)
            in_scope = [row for row in rows if use_case is None or row.use_case == use_case]
            proposals.append(
                Proposal(
                    RecommendationKind.BATCH_TIER,
                    scope,
                    estimate,
                    confidence,
                    caveat,
                    **_baseline_from_rows(in_scope, measure, month),
                )
            )
        return proposals

    async def _per_tier(
        self, connection: AsyncConnection, tenant: str, team: str, provider: str, model: str, rows: Sequence[Any]
    ) -> list[Proposal]:
        proposals = []
        alternative = self.alternatives.get((provider, model))
        for tier in sorted({row.service_tier for row in rows}):
            month, samples = _latest_month([row for row in rows if row.service_tier == tier])
            scope = f"team:{team} model:{provider}/{model} tier:{tier}"
            if alternative is not None:
                estimate = cheaper_model_estimate(
                    provider, model, alternative, ServiceTier(tier), month, samples, self.catalogue, self.policy
                )
                if estimate is not None:
                    measure = _usage_measure(provider, [model, alternative.cheaper_model], estimate.currency, team=team)
                    proposals.append(
                        Proposal(
                            RecommendationKind.CHEAPER_MODEL,
                            scope,
                            estimate,
                            "low",
                            alternative.caveat,
                            **await _baseline(connection, tenant, measure, month),
                        )
                    )
            caching = prompt_caching_estimate(
                provider, model, ServiceTier(tier), month, samples, self.catalogue, self.policy
            )
            if caching is not None:
                share = format_number(self.policy.caching_cacheable_share * 100)
                measure = _usage_measure(provider, [model], caching.currency, team=team)
                proposals.append(
                    Proposal(
                        RecommendationKind.PROMPT_CACHING,
                        scope,
                        caching,
                        "low",
                        f"Assumes {share}% of the input is a prefix that repeats within the cache lifetime; put "
                        "stable content (instructions, tool definitions, documents) first, then compare the cached "
                        "token counts.",
                        **_baseline_from_rows(rows, measure, month),
                    )
                )
        return proposals

    # Commitments

    async def _recompute_commitments(
        self, connection: AsyncConnection, tenant: str, provider: str
    ) -> list[SavingsRecommended]:
        offers = [offer for offer in self.policy.commitment_offers if offer.provider == provider]
        if not offers:
            return []
        proposals = []
        for offer in offers:
            proposal = await self._commitment(connection, tenant, offer)
            if proposal is not None:
                proposals.append(proposal)
        return await save_proposals(connection, tenant, f"commitment|{provider}", proposals)

    async def _commitment(self, connection: AsyncConnection, tenant: str, offer: CommitmentOffer) -> Proposal | None:
        conditions = [
            USAGE.c.tenant == tenant,
            USAGE.c.provider == offer.provider,
            USAGE.c.status == CostStatus.PRICED.value,
            USAGE.c.charge_category == "usage",
        ]
        if offer.model is not None:
            conditions.append(USAGE.c.priced_model == offer.model)

        # Only the lookback window ending on the latest usage day is read.
        latest = (await connection.execute(select(func.max(USAGE.c.period_start)).where(*conditions))).scalar()
        if latest is None:
            return None
        if latest.tzinfo is None:  # SQLite returns the aggregate without the column type's time zone
            latest = latest.replace(tzinfo=UTC)
        window_start = datetime.combine(
            latest.date() - timedelta(days=self.policy.commitment_lookback_days - 1), time.min, tzinfo=UTC
        )
        conditions.append(USAGE.c.period_start >= window_start)

        rows = (
            await connection.execute(
                select(USAGE.c.usage_event_id, USAGE.c.period_start, USAGE.c.cost_amount, USAGE.c.cost_currency)
                .where(*conditions)
                .order_by(USAGE.c.period_start, USAGE.c.usage_event_id)
            )
        ).all()
        if not rows:
            return None

        currency = rows[-1].cost_currency  # the currency of the latest usage; other currencies are not converted
        amounts: dict[Any, Decimal] = defaultdict(Decimal)
        ids: dict[Any, list[str]] = defaultdict(list)
        for row in rows:
            if row.cost_currency == currency:
                day = row.period_start.date()
                amounts[day] += row.cost_amount
                ids[day].append(row.usage_event_id)
        days = [DailyCost(day, amount, tuple(ids[day])) for day, amount in amounts.items()]
        estimate = commitment_estimate(offer, days, currency, self.policy)
        if estimate is None:
            return None

        # The baseline is the window's spend scaled to 30 days.
        last = max(amounts)
        first = last - timedelta(days=self.policy.commitment_lookback_days - 1)
        window_total = sum((amount for day, amount in amounts.items() if day >= first), Decimal(0))
        baseline = (window_total / self.policy.commitment_lookback_days * 30).quantize(
            BASELINE_PLACES, rounding=ROUND_HALF_EVEN
        )
        model_part = f" model:{offer.model}" if offer.model else ""
        return Proposal(
            RecommendationKind.COMMITMENT,
            f"provider:{offer.provider}{model_part} offer:{offer.offer_id}",
            estimate,
            "medium",
            f"A commitment is paid whether used or not, for {offer.term_months} months; it is sized at the "
            f"{self.policy.commitment_baseline_percentile}th-percentile day so usage fills it on most days. "
            f"Terms: {offer.source}.",
            baseline_amount=baseline,
            baseline_period=last.strftime("%Y-%m"),
            measure=_usage_measure(offer.provider, [offer.model] if offer.model else [], currency),
        )

    # GPUs

    async def _gpus_of_resource(
        self, connection: AsyncConnection, tenant: str, resource_id: str
    ) -> list[tuple[str, str]]:
        found = (
            await connection.execute(
                select(GPUS.c.host, GPUS.c.gpu_id)
                .where(GPUS.c.tenant == tenant, GPUS.c.resource_id == resource_id)
                .distinct()
            )
        ).all()
        hosts = [host for host, resource in self.policy.gpu_resources.items() if resource == resource_id]
        if hosts:
            found += (
                await connection.execute(
                    select(GPUS.c.host, GPUS.c.gpu_id).where(GPUS.c.tenant == tenant, GPUS.c.host.in_(hosts)).distinct()
                )
            ).all()
        return sorted({(row.host, row.gpu_id) for row in found})

    async def _recompute_gpu(
        self, connection: AsyncConnection, tenant: str, host: str, gpu_id: str
    ) -> list[SavingsRecommended]:
        rows = (
            await connection.execute(
                select(GPUS)
                .where(GPUS.c.tenant == tenant, GPUS.c.host == host, GPUS.c.gpu_id == gpu_id)
                .order_by(GPUS.c.window_start)
            )
        ).all()
        latest = rows[-1]
        resource_id = latest.resource_id or self.policy.gpu_resources.get(host)
        month = latest.window_start.strftime("%Y-%m")
        billed = await self._billed(connection, tenant, resource_id, month) if resource_id else None
        label = f"{host}/{gpu_id}" + (f" ({latest.gpu_model})" if latest.gpu_model else "")
        windows = [GpuWindow(row.window_start, row.window_end, row.utilisation_percent, row.event_id) for row in rows]
        finding = gpu_estimate(label, windows, self.policy, billed, self.gpu_prices.get(latest.gpu_model or ""))
        proposals = []
        if finding is not None:
            scope = f"gpu:{host}/{gpu_id}"
            measure: dict[str, Any] = (
                {"type": "resource", "resource_id": billed.resource_id} if billed is not None else {"type": "none"}
            )
            proposals.append(
                Proposal(
                    finding.kind,
                    scope,
                    finding.estimate,
                    finding.confidence,
                    finding.caveat,
                    identity=f"gpu|{scope}",
                    baseline_amount=finding.monthly_cost,
                    baseline_period=finding.month,
                    measure=measure,
                )
            )
        return await save_proposals(connection, tenant, f"gpu|{host}|{gpu_id}", proposals)

    async def _billed(
        self, connection: AsyncConnection, tenant: str, resource_id: str, month: str
    ) -> BilledCost | None:
        rows = (
            await connection.execute(
                select(USAGE.c.cost_event_id, USAGE.c.cost_amount, USAGE.c.cost_currency).where(
                    USAGE.c.tenant == tenant,
                    USAGE.c.resource_id == resource_id,
                    USAGE.c.month == month,
                    USAGE.c.status != CostStatus.UNPRICED.value,
                    USAGE.c.charge_category == "usage",
                )
            )
        ).all()
        currencies = {row.cost_currency for row in rows}
        if len(currencies) != 1:
            return None  # no bill line, or lines in several currencies that cannot be added
        return BilledCost(
            resource_id,
            month,
            sum((row.cost_amount for row in rows), Decimal(0)),
            currencies.pop(),
            tuple(sorted(row.cost_event_id for row in rows)),
        )

    # Seats

    async def _recompute_seat_products(
        self, connection: AsyncConnection, products: set[tuple[str, str, str]]
    ) -> list[SavingsRecommended]:
        events: list[SavingsRecommended] = []
        categories: set[tuple[str, str]] = set()
        for tenant, vendor, product in sorted(products):
            events += await self._recompute_unused(connection, tenant, vendor, product)
            category = self.seat_prices.category(vendor, product)
            if category is not None:
                categories.add((tenant, category))
        for tenant, category in sorted(categories):
            events += await self._recompute_overlap(connection, tenant, category)
        events += await self._refresh_realised(connection, {tenant for tenant, _vendor, _product in products})
        return events

    async def _seats(self, connection: AsyncConnection, tenant: str, vendor: str, product: str) -> list[Seat]:
        rows = (
            await connection.execute(
                select(SEATS).where(SEATS.c.tenant == tenant, SEATS.c.vendor == vendor, SEATS.c.product == product)
            )
        ).all()
        return [
            Seat(
                row.vendor,
                row.product,
                row.seat_holder,
                row.as_of,
                row.last_activity_at,
                row.plan,
                row.pending_cancellation_date,
                row.event_id,
            )
            for row in rows
        ]

    async def _entitlement(self, connection: AsyncConnection, tenant: str, vendor: str, product: str) -> Any:
        return (
            await connection.execute(
                select(ENTITLEMENTS).where(
                    ENTITLEMENTS.c.tenant == tenant, ENTITLEMENTS.c.vendor == vendor, ENTITLEMENTS.c.product == product
                )
            )
        ).first()

    async def _price_lookup(self, connection: AsyncConnection, tenant: str) -> Any:
        reported = {
            (row.vendor, row.product): row
            for row in (
                await connection.execute(
                    select(ENTITLEMENTS).where(
                        ENTITLEMENTS.c.tenant == tenant, ENTITLEMENTS.c.seat_price_amount.is_not(None)
                    )
                )
            ).all()
        }

        def price_of(vendor: str, product: str, plan: str | None) -> SeatCost | None:
            row = reported.get((vendor, product))
            if row is not None:
                return SeatCost(
                    row.seat_price_amount,
                    row.seat_price_currency,
                    f"seat-price:reported:{vendor}/{product}",
                    f"price in the licence report {row.event_id}",
                )
            listed = self.seat_prices.find(vendor, product, plan)
            if listed is None:
                return None
            return SeatCost(listed.monthly_price, listed.currency, listed.row_id, f"list price: {listed.source}")

        return price_of

    async def _recompute_unused(
        self, connection: AsyncConnection, tenant: str, vendor: str, product: str
    ) -> list[SavingsRecommended]:
        seats = await self._seats(connection, tenant, vendor, product)
        row = await self._entitlement(connection, tenant, vendor, product)
        entitlement = (
            Entitlement(
                vendor,
                product,
                row.as_of,
                row.entitled_seats,
                row.active_seats,
                row.inactive_seats,
                row.pending_cancellation_seats,
                row.event_id,
            )
            if row is not None
            else None
        )
        price_of = await self._price_lookup(connection, tenant)
        result = unused_seats_estimate(vendor, product, seats, entitlement, price_of, self.policy)
        proposals = []
        if result is not None:
            estimate, _count, price = result
            measure = {
                "type": "seats",
                "products": [{"vendor": vendor, "product": product, "price": str(price.amount)}],
            }
            baseline = await seat_cost(connection, tenant, measure)
            reported_at = entitlement.as_of if entitlement is not None else max(seat.as_of for seat in seats)
            proposals.append(
                Proposal(
                    RecommendationKind.UNUSED_SEATS,
                    f"seats:{vendor}/{product}",
                    estimate,
                    "high" if price.row_id.startswith("seat-price:reported:") else "medium",
                    "A seat without activity may belong to someone on leave or new to the tool; check with the "
                    "seat holders before removing seats.",
                    baseline_amount=baseline[0] if baseline else None,
                    baseline_period=reported_at.strftime("%Y-%m"),
                    measure=measure,
                )
            )
        return await save_proposals(connection, tenant, f"seats|{vendor}|{product}", proposals)

    async def _recompute_overlap(
        self, connection: AsyncConnection, tenant: str, category: str
    ) -> list[SavingsRecommended]:
        products = (
            await connection.execute(select(SEATS.c.vendor, SEATS.c.product).where(SEATS.c.tenant == tenant).distinct())
        ).all()
        seats: list[Seat] = []
        for vendor, product in sorted(products):
            if self.seat_prices.category(vendor, product) == category:
                seats += latest_seats(await self._seats(connection, tenant, vendor, product))
        price_of = await self._price_lookup(connection, tenant)
        result = overlapping_tools_estimate(category, seats, price_of)
        proposals = []
        if result is not None:
            estimate, overlaps = result
            involved = sorted({(seat.vendor, seat.product) for overlap in overlaps for seat in overlap.redundant})
            priced = [(vendor, product, price_of(vendor, product, None)) for vendor, product in involved]
            measure = {
                "type": "seats",
                "products": [
                    {"vendor": vendor, "product": product, "price": str(price.amount)}
                    for vendor, product, price in priced
                    if price is not None
                ],
            }
            baseline = await seat_cost(connection, tenant, measure)
            proposals.append(
                Proposal(
                    RecommendationKind.OVERLAPPING_TOOLS,
                    f"seats:{category} overlap",
                    estimate,
                    "medium",
                    "People are matched across tools by the same login or e-mail; someone may need both tools, and "
                    "an unused-seat recommendation may count the same seat.",
                    baseline_amount=baseline[0] if baseline else None,
                    baseline_period=max(seat.as_of for seat in seats).strftime("%Y-%m"),
                    measure=measure,
                )
            )
        return await save_proposals(connection, tenant, f"overlap|{category}", proposals)

    # Realised savings

    async def _refresh_realised(self, connection: AsyncConnection, tenants: set[str]) -> list[SavingsRecommended]:
        if not tenants:
            return []
        implemented = (
            await connection.execute(
                select(RECOMMENDATIONS).where(
                    RECOMMENDATIONS.c.tenant.in_(sorted(tenants)), RECOMMENDATIONS.c.status == "implemented"
                )
            )
        ).all()
        events = []
        for row in implemented:
            measured = await measure_realised(connection, row)
            if measured is None:
                continue
            amount, arithmetic = measured
            if amount == row.realised_amount and arithmetic == row.realised_arithmetic:
                continue
            await bump(
                connection,
                row.recommendation_id,
                realised_amount=amount,
                realised_arithmetic=arithmetic,
                updated_at=utc_now(),
            )
            events.append(await event_for(connection, row.recommendation_id))
        return events


async def _keep_latest(
    connection: AsyncConnection, table: Any, rows: list[dict[str, Any]], keys: list[str]
) -> list[dict[str, Any]]:
    """Store each row unless the table has a later report for its key; return the rows stored or changed."""
    changed = []
    for row in sorted(rows, key=lambda item: item["as_of"]):
        condition = [table.c[key] == row[key] for key in keys]
        current = (await connection.execute(select(table).where(*condition))).first()
        if current is None:
            await connection.execute(table.insert().values(**row))
        elif current.as_of > row["as_of"] or all(current._mapping[name] == value for name, value in row.items()):
            continue  # an older report, or the same one again
        else:
            await connection.execute(table.update().where(*condition).values(**row))
        changed.append(row)
    return changed


def _usage_measure(
    provider: str, models: list[str], currency: str, *, team: str | None = None, use_case: str | None = None
) -> dict[str, Any]:
    return {
        "type": "usage",
        "provider": provider,
        "models": models,
        "currency": currency,
        "team": team,
        "use_case": use_case,
    }


def _baseline_from_rows(rows: Sequence[Any], measure: dict[str, Any], month: str) -> dict[str, Any]:
    """Sum the baseline from usage rows already loaded for the measure's team, provider and model."""
    amount = sum(
        (row.cost_amount for row in rows if row.month == month and row.cost_currency == measure["currency"]),
        Decimal(0),
    )
    return {"baseline_amount": amount, "baseline_period": month, "measure": measure}


async def _baseline(connection: AsyncConnection, tenant: str, measure: dict[str, Any], month: str) -> dict[str, Any]:
    monthly = await usage_cost_by_month(connection, tenant, measure, month)
    return {"baseline_amount": monthly.get(month, Decimal(0)), "baseline_period": month, "measure": measure}


def _outside_business_hours(start: datetime, end: datetime, policy: OptimizerPolicy) -> bool:
    """Tell whether a usage bucket of at most an hour lies wholly outside business hours."""
    if end - start > timedelta(hours=1) or end <= start:
        return False
    hours = policy.business_hours
    zone = ZoneInfo(hours.timezone)
    for instant in (start, end - timedelta(microseconds=1)):
        local = instant.astimezone(zone)
        if local.isoweekday() in hours.weekdays and hours.start_hour <= local.hour < hours.end_hour:
            return False
    return True


@dataclass(slots=True)
class _TokenUsage:
    """One usage row as token recommendations read it (the columns of TOKEN_COLUMNS), with its parsed sample."""

    usage_event_id: str
    cost_event_id: str
    use_case: str | None
    service_tier: str
    month: str
    period_start: datetime
    period_end: datetime | None
    quantities_json: str
    request_count: int | None
    cost_amount: Decimal | None
    cost_currency: str | None
    tags_json: str
    sample: UsageSample

    @classmethod
    def of(cls, row: tuple[Any, ...]) -> _TokenUsage:
        usage_event_id, cost_event_id, _use_case, _tier, _month, period_start, _end, quantities, requests = row[:9]
        sample = UsageSample(cost_event_id, usage_event_id, period_start, _parse_quantities(quantities), requests)
        return cls(*row, sample=sample)


# Usage rows repeat the same few quantity and tag texts, so each text is parsed once. The parsed values are shared
# between rows and must not be changed.
@functools.lru_cache(maxsize=8192)
def _parse_quantities(text: str) -> dict[UsageBucket, Decimal]:
    return {UsageBucket(name): Decimal(value) for name, value in json.loads(text).items()}


@functools.lru_cache(maxsize=1024)
def _parse_tags(text: str) -> dict[str, str]:
    return dict(json.loads(text))


def _latest_month(rows: Sequence[Any]) -> tuple[str, list[UsageSample]]:
    month = max(row.month for row in rows)
    return month, [row.sample for row in rows if row.month == month]
