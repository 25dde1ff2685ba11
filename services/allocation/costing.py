"""From one usage event to one cost event: price it, decide its owners, split it exactly, build the stored rows.

These are pure functions; the handler and the re-pricing sweep call them with the
price book and rules in force and with the usage metrics that proportional splits need.
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

from services.allocation.pricing import PriceBook, PricedUsage, price_usage
from services.allocation.rules import UNALLOCATED_ALLOCATION, AllocationRule, AllocationRules
from services.allocation.shares import fractions_adding_to_one, split_lines
from shared.events import (
    TOKEN_BUCKETS,
    AllocationShare,
    CostAllocated,
    CostCorrection,
    CostStatus,
    Money,
    UsageRecorded,
    utc_now,
)

Metrics = Mapping[tuple[str, str], Decimal]


def cost_event_id(usage_event_id: str, revision: int = 1) -> str:
    return f"cost:{usage_event_id}:r{revision}"


def allocation_version(book: PriceBook, rules: AllocationRules) -> str:
    """Fingerprint of everything a cost depends on besides its usage: prices, tenant terms and rules."""
    digest = hashlib.sha256(f"{book.version}|{rules.text}".encode()).hexdigest()
    return f"sha256:{digest[:16]}"


def attribution_instant(event: UsageRecorded) -> datetime:
    """Return when usage counts as happened: the middle of its period, so a provider's day lands on its own day."""
    return event.period_start + (event.period_end - event.period_start) / 2


def local_month(event: UsageRecorded, zone: ZoneInfo) -> str:
    return attribution_instant(event).astimezone(zone).strftime("%Y-%m")


@dataclass(frozen=True)
class BuiltCost:
    """A cost event together with the stored detail that the event does not carry."""

    cost: CostAllocated
    share_lines: list[list[Decimal]]
    split_pool: str | None
    list_cost: Decimal | None

    # The ledger row and the revision row store the same texts, so each is written once per cost.
    @functools.cached_property
    def lines_json(self) -> str:
        return lines_json(self.cost)

    @functools.cached_property
    def shares_json(self) -> str:
        return shares_json(self.cost)

    @functools.cached_property
    def share_lines_json(self) -> str:
        return json.dumps([[str(amount) for amount in parts] for parts in self.share_lines])


def split_pool_of(event: UsageRecorded, rules: AllocationRules) -> str | None:
    rule = rules.match(event.provider, event.dimensions)
    return rule.pool if rule is not None else None


def build_cost(
    event: UsageRecorded,
    book: PriceBook,
    rules: AllocationRules,
    metrics: Metrics | None = None,
    *,
    revision: int = 1,
    correction: CostCorrection | None = None,
) -> BuiltCost:
    """Price one usage event and decide who carries its cost."""
    priced = price_usage(event, book)
    rule = rules.match(event.provider, event.dimensions)
    shares, share_lines = _shares(priced, rule, rules, metrics or {})
    return BuiltCost(
        cost=CostAllocated(
            event_id=cost_event_id(event.event_id, revision),
            occurred_at=event.occurred_at,
            source="allocation",
            tenant=event.tenant,
            correlation_id=event.correlation_id,
            usage_event_id=event.event_id,
            provider=event.provider,
            service=event.service,
            model=event.model,
            priced_model=priced.priced_model,
            service_tier=event.service_tier,
            period_start=event.period_start,
            period_end=event.period_end,
            dimensions=event.dimensions,
            quantities=event.quantities,
            request_count=event.request_count,
            charge_category=event.charge_category,
            status=priced.status,
            unpriced_reason=priced.unpriced_reason,
            lines=priced.lines,
            cost=priced.cost,
            provider_cost=event.provider_cost,
            catalogue_version=book.catalogue.version if priced.status is CostStatus.PRICED else None,
            allocation=shares[0].allocation,
            shares=tuple(shares),
            region=event.region,
            revision=revision,
            correction=correction,
        ),
        share_lines=share_lines,
        split_pool=rule.pool if rule is not None else None,
        list_cost=_list_cost(priced),
    )


def _list_cost(priced: PricedUsage) -> Decimal | None:
    if priced.cost is None:
        return None
    if not priced.lines:
        return priced.cost.amount
    return sum(((line.list_amount or line.amount).amount for line in priced.lines), Decimal(0))


def _shares(
    priced: PricedUsage, rule: AllocationRule | None, rules: AllocationRules, metrics: Metrics
) -> tuple[list[AllocationShare], list[list[Decimal]]]:
    line_amounts = [line.amount.amount for line in priced.lines] or ([priced.cost.amount] if priced.cost else [])
    if rule is None or rule.pool is None:
        allocation = rule.allocation if rule is not None else UNALLOCATED_ALLOCATION
        return [AllocationShare(allocation=allocation, fraction=Decimal(1), amount=priced.cost)], [line_amounts]

    planned = rules.plan_split(rule.pool, metrics)
    weights = [share.weight for share in planned]
    fractions = fractions_adding_to_one(weights)
    allocations = [share.allocation.model_copy(update={"rule_id": rule.rule_id}) for share in planned]
    if priced.cost is None:
        shares = [
            AllocationShare(allocation=allocation, fraction=fraction, amount=None, basis=share.basis)
            for allocation, fraction, share in zip(allocations, fractions, planned, strict=True)
        ]
        return shares, [[] for _ in planned]
    totals, per_share_lines = split_lines(line_amounts, priced.cost.currency, weights)
    shares = [
        AllocationShare(
            allocation=allocation,
            fraction=fraction,
            amount=Money(amount=total, currency=priced.cost.currency),
            basis=share.basis,
        )
        for allocation, fraction, total, share in zip(allocations, fractions, totals, planned, strict=True)
    ]
    return shares, per_share_lines


def metric_values(event: UsageRecorded, cost: CostAllocated) -> dict[str, Decimal]:
    """Return the usage metrics a proportional split can weigh this cost's owner by."""
    values = {bucket.value: quantity for bucket, quantity in event.quantities.items()}
    values["tokens"] = sum((q for b, q in event.quantities.items() if b in TOKEN_BUCKETS), Decimal(0))
    values["requests"] = Decimal(event.request_count or 0)
    if cost.cost is not None:
        values[f"cost:{cost.cost.currency}"] = cost.cost.amount
    return values


def ledger_row(built: BuiltCost, event: UsageRecorded, version: str, zone: ZoneInfo) -> dict[str, object]:
    cost = built.cost
    return {
        "usage_event_id": cost.usage_event_id,
        "cost_event_id": cost.event_id,
        "tenant": cost.tenant,
        "provider": cost.provider,
        "service": cost.service,
        "model": cost.model,
        "priced_model": cost.priced_model,
        "service_tier": cost.service_tier.value,
        "period_start": cost.period_start,
        "period_end": cost.period_end,
        "charge_category": cost.charge_category.value,
        "status": cost.status.value,
        "unpriced_reason": cost.unpriced_reason,
        "cost_amount": cost.cost.amount if cost.cost else None,
        "cost_currency": cost.cost.currency if cost.cost else None,
        "provider_cost_amount": cost.provider_cost.amount if cost.provider_cost else None,
        "provider_cost_currency": cost.provider_cost.currency if cost.provider_cost else None,
        "team": cost.allocation.team,
        "cost_centre": cost.allocation.cost_centre,
        "use_case": cost.allocation.use_case,
        "environment": cost.allocation.environment,
        "rule_id": cost.allocation.rule_id,
        "catalogue_version": cost.catalogue_version,
        "lines_json": built.lines_json,
        "quantities_json": json.dumps({bucket.value: str(value) for bucket, value in cost.quantities.items()}),
        "dimensions_json": cost.dimensions.model_dump_json(),
        "shares_json": built.shares_json,
        "revision": cost.revision,
        "recorded_at": utc_now(),
        "product": cost.allocation.product,
        "usage_json": event.model_dump_json(),
        "pricing_version": version,
        "list_cost_amount": built.list_cost,
        "share_lines_json": built.share_lines_json,
        "split_pool": built.split_pool,
        "token_count": int(sum((q for b, q in event.quantities.items() if b in TOKEN_BUCKETS), Decimal(0))),
        "request_count": event.request_count or 0,
        "local_month": local_month(event, zone),
    }


def lines_json(cost: CostAllocated) -> str:
    return json.dumps([line.model_dump(mode="json") for line in cost.lines])


def shares_json(cost: CostAllocated) -> str:
    return json.dumps([share.model_dump(mode="json") for share in cost.shares])


def revision_row(built: BuiltCost, version: str, reason: str | None) -> dict[str, object]:
    cost = built.cost
    return {
        "usage_event_id": cost.usage_event_id,
        "revision": cost.revision,
        "cost_event_id": cost.event_id,
        "tenant": cost.tenant,
        "status": cost.status.value,
        "cost_amount": cost.cost.amount if cost.cost else None,
        "cost_currency": cost.cost.currency if cost.cost else None,
        "list_cost_amount": built.list_cost,
        "lines_json": built.lines_json,
        "shares_json": built.shares_json,
        "share_lines_json": built.share_lines_json,
        "pricing_version": version,
        "reason": reason,
        "recorded_at": utc_now(),
    }
