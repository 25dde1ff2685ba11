"""Reconciliation: the cost computed from usage against the cost the provider reports it charged.

Provider statements (OpenAI costs, Anthropic cost report) are stored as they come
and never added to spend. For each tenant, provider and UTC day, statements that
name a model are compared with the computed cost of that model, and statements
without a model with the computed cost of the whole day. A statement for one
project, workspace, API key or account (its scope) is compared with the usage of
that scope only. A difference beyond both
tolerances (an amount and a percentage) publishes a ``cost.variance_detected``
event with the likely cause, worked out by testing explanations in turn:
different currencies, no usage imported, unpriced usage, usage dated on a
neighbouring day, usage billed at another service tier, and otherwise the
direction of the difference. The comparison is redone whenever statements or
computed costs of that day change; an unchanged result publishes nothing new.
"""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from services.allocation.ledger import LEDGER
from services.allocation.pricing import PriceBook, price_usage
from services.allocation.tables import ProviderCostStatement, Reconciliation
from shared.db import insert_new_rows, lock_keys, upsert
from shared.events import (
    CostStatus,
    CostVarianceDetected,
    Money,
    ProviderCostReported,
    ServiceTier,
    UsageDimensions,
    UsageRecorded,
    utc_now,
)
from shared.kafka import OutgoingEvent
from shared.topics import Topic

STATEMENTS = ProviderCostStatement.__table__  # type: ignore[attr-defined]
RECONCILIATION = Reconciliation.__table__  # type: ignore[attr-defined]
WHOLE_DAY = ""
DayKey = tuple[str, str, str]  # tenant, provider, UTC day
SCOPE_KEYS = ("account_id", "api_key_id", "project_id", "workspace_id")


def scope_of(dimensions: UsageDimensions) -> str:
    """Return the attribution keys a statement is limited to, as 'key=value' pairs joined by '&'."""
    values = dimensions.model_dump()
    return "&".join(f"{key}={values[key]}" for key in SCOPE_KEYS if values.get(key))


def _in_scope(dimensions_json: str, scope: str) -> bool:
    if not scope:
        return True
    values = json.loads(dimensions_json)
    return all(values.get(key) == value for key, _, value in (part.partition("=") for part in scope.split("&")))


def _scope_dimensions(scope: str) -> UsageDimensions:
    if not scope:
        return UsageDimensions()
    return UsageDimensions(**{key: value for key, _, value in (part.partition("=") for part in scope.split("&"))})


@dataclass(frozen=True)
class Tolerance:
    percent: Decimal = Decimal("1")
    amount: Decimal = Decimal("0.01")

    def allows(self, variance: Decimal, percent: Decimal | None) -> bool:
        if abs(variance) <= self.amount:
            return True
        return percent is not None and abs(percent) <= self.percent


def utc_day(instant: datetime) -> str:
    return instant.astimezone(UTC).date().isoformat()


def statement_row(statement: ProviderCostReported, book: PriceBook) -> dict[str, Any]:
    priced_model = None
    if statement.model is not None:
        terms = book.terms_for(statement.tenant)
        priced_model = terms.aliases.get((statement.provider, statement.model)) or book.catalogue.resolve_model(
            statement.provider, statement.model
        )
    return {
        "event_id": statement.event_id,
        "tenant": statement.tenant,
        "provider": statement.provider,
        "day": utc_day(statement.period_start),
        "model": statement.model,
        "priced_model": priced_model or statement.model,
        "line_item": statement.line_item,
        "scope": scope_of(statement.dimensions),
        "amount": statement.amount.amount,
        "currency": statement.amount.currency,
        "period_start": statement.period_start,
        "period_end": statement.period_end,
        "recorded_at": utc_now(),
    }


async def store_statements(
    connection: AsyncConnection, statements: Sequence[ProviderCostReported], book: PriceBook
) -> set[DayKey]:
    """Store statements not seen before; return the days whose comparison they change."""
    rows = [statement_row(statement, book) for statement in statements]
    inserted = {key[0] for key in await insert_new_rows(connection, STATEMENTS, rows, ["event_id"])}
    return {(row["tenant"], row["provider"], row["day"]) for row in rows if row["event_id"] in inserted}


@dataclass
class _Computed:
    amounts: dict[str, dict[str, Decimal]]  # model key → currency → amount
    unpriced: dict[str, int]  # model key → unpriced usage events
    rows: list[Any]


async def _computed(connection: AsyncConnection, tenant: str, provider: str, day: str, scope: str) -> _Computed:
    start = datetime.fromisoformat(day).replace(tzinfo=UTC)
    rows = (
        await connection.execute(
            select(
                LEDGER.c.usage_event_id,
                LEDGER.c.status,
                LEDGER.c.priced_model,
                LEDGER.c.model,
                LEDGER.c.cost_amount,
                LEDGER.c.cost_currency,
                LEDGER.c.usage_json,
                LEDGER.c.charge_category,
                LEDGER.c.dimensions_json,
            ).where(
                LEDGER.c.tenant == tenant,
                LEDGER.c.provider == provider,
                LEDGER.c.period_start >= start,
                LEDGER.c.period_start < start + timedelta(days=1),
            )
        )
    ).all()
    rows = [row for row in rows if row.charge_category == "usage" and _in_scope(row.dimensions_json, scope)]
    amounts: dict[str, dict[str, Decimal]] = defaultdict(lambda: defaultdict(Decimal))
    unpriced: dict[str, int] = defaultdict(int)
    for row in rows:
        model = row.priced_model or row.model or "(not reported)"
        for key in (model, WHOLE_DAY):
            if row.status == CostStatus.UNPRICED.value:
                unpriced[key] += 1
            elif row.cost_amount is not None:
                amounts[key][row.cost_currency] += row.cost_amount
    return _Computed(amounts, unpriced, rows)


async def reconcile(
    connection: AsyncConnection, keys: Iterable[DayKey], book: PriceBook, tolerance: Tolerance
) -> list[OutgoingEvent]:
    """Compare computed with reported cost on the given days; return the variance events to publish."""
    events: list[OutgoingEvent] = []
    days = sorted(set(keys))
    await lock_keys(connection, (f"reconcile|{tenant}|{provider}|{day}" for tenant, provider, day in days))
    for tenant, provider, day in days:
        statements = (
            await connection.execute(
                select(STATEMENTS).where(
                    STATEMENTS.c.tenant == tenant, STATEMENTS.c.provider == provider, STATEMENTS.c.day == day
                )
            )
        ).all()
        if not statements:
            continue
        reported: dict[tuple[str, str, str], Decimal] = defaultdict(Decimal)
        evidence: dict[tuple[str, str, str], list[str]] = defaultdict(list)
        for statement in statements:
            key = (statement.scope, statement.priced_model or WHOLE_DAY, statement.currency)
            reported[key] += statement.amount
            evidence[key].append(statement.event_id)
        computed_by_scope = {
            scope: await _computed(connection, tenant, provider, day, scope) for scope, _, _ in reported
        }
        for (scope, model, currency), reported_amount in sorted(reported.items()):
            event = await _compare(
                connection,
                book,
                tolerance,
                (tenant, provider, day, scope, model),
                Money(amount=reported_amount, currency=currency),
                computed_by_scope[scope],
                evidence[(scope, model, currency)],
            )
            if event is not None:
                events.append(event)
    return events


async def _compare(
    connection: AsyncConnection,
    book: PriceBook,
    tolerance: Tolerance,
    key: tuple[str, str, str, str, str],
    reported: Money,
    computed: _Computed,
    evidence_ids: list[str],
) -> OutgoingEvent | None:
    tenant, provider, day, scope, model = key
    by_currency = computed.amounts.get(model, {})
    computed_amount = by_currency.get(reported.currency, Decimal(0))
    variance = reported.amount - computed_amount
    percent = (
        None if reported.amount == 0 else (variance * 100 / reported.amount).quantize(Decimal("0.01"), ROUND_HALF_EVEN)
    )
    within = tolerance.allows(variance, percent)
    cause = "computed and reported cost agree within tolerance"
    if not within:
        cause = await _likely_cause(connection, book, tolerance, key, reported, computed, variance)
    figures = f"{reported.amount}|{computed_amount}|{reported.currency}|{cause}"
    event_id = (
        f"variance:{tenant}:{provider}:{day}:{model or 'all'}:{hashlib.sha256(figures.encode()).hexdigest()[:12]}"
    )
    stored = (
        await connection.execute(
            select(RECONCILIATION.c.published_event_id).where(
                RECONCILIATION.c.tenant == tenant,
                RECONCILIATION.c.provider == provider,
                RECONCILIATION.c.day == day,
                RECONCILIATION.c.scope == scope,
                RECONCILIATION.c.model == model,
            )
        )
    ).scalar_one_or_none()
    publish = not within and stored != event_id
    await connection.execute(
        upsert(
            connection,
            RECONCILIATION,
            ["tenant", "provider", "day", "scope", "model"],
            [
                "currency",
                "computed_amount",
                "reported_amount",
                "variance_amount",
                "variance_percent",
                "within_tolerance",
                "likely_cause",
                "unpriced_events",
                "published_event_id",
                "updated_at",
            ],
        ),
        {
            "tenant": tenant,
            "provider": provider,
            "day": day,
            "scope": scope,
            "model": model,
            "currency": reported.currency,
            "computed_amount": computed_amount,
            "reported_amount": reported.amount,
            "variance_amount": variance,
            "variance_percent": percent,
            "within_tolerance": within,
            "likely_cause": cause,
            "unpriced_events": computed.unpriced.get(model, 0),
            "published_event_id": event_id if publish else stored,
            "updated_at": utc_now(),
        },
    )
    if not publish:
        return None
    detected = CostVarianceDetected(
        event_id=event_id,
        occurred_at=datetime.fromisoformat(day).replace(tzinfo=UTC),
        source="allocation.reconciliation",
        tenant=tenant,
        correlation_id=f"reconciliation:{tenant}:{provider}:{day}",
        provider=provider,
        day=day,
        model=model or None,
        computed_cost=Money(amount=computed_amount, currency=reported.currency),
        provider_cost=reported,
        variance=Money(amount=variance, currency=reported.currency),
        variance_percent=percent,
        tolerance_percent=tolerance.percent,
        tolerance_amount=tolerance.amount,
        likely_cause=cause,
        evidence_event_ids=tuple(evidence_ids[:200]),
        dimensions=_scope_dimensions(scope),
    )
    return OutgoingEvent.of(Topic.COST_VARIANCE_DETECTED, detected, key=f"provider:{provider}")


async def _likely_cause(
    connection: AsyncConnection,
    book: PriceBook,
    tolerance: Tolerance,
    key: tuple[str, str, str, str, str],
    reported: Money,
    computed: _Computed,
    variance: Decimal,
) -> str:
    tenant, provider, day, scope, model = key
    by_currency = computed.amounts.get(model, {})
    other = sorted(currency for currency in by_currency if currency != reported.currency)
    if other and reported.currency not in by_currency:
        return (
            f"currencies differ: the provider reported {reported.currency}, the computed cost is in "
            f"{', '.join(other)}; add an exchange rate or a price list in {reported.currency}"
        )
    if not by_currency and not computed.unpriced.get(model):
        return (
            "no usage was imported for this day: the usage export is missing days, projects, keys or products "
            "(embeddings, images, tools), or the provider dates this usage on another day"
        )
    if computed.unpriced.get(model):
        return (
            f"{computed.unpriced[model]} usage lines of this day are unpriced, so their cost is missing from the "
            "computed figure; add their models or aliases to the price catalogue and run `aifinops prices reload`"
        )
    shifted = await _neighbouring_day_match(connection, (tenant, provider, day, scope, model), variance, tolerance)
    if shifted is not None:
        return shifted
    tier = _tier_match(book, computed, model, reported, tolerance)
    if tier is not None:
        return tier
    if variance < 0:
        return (
            "the provider charged less than the list prices give: a negotiated discount, credit or price cut that "
            "the price catalogue and contract terms do not have"
        )
    return (
        "the provider charged more than the usage imported accounts for: usage missing from the import (other "
        "projects, keys or products such as embeddings and tools) or a price rise missing from the catalogue"
    )


async def _neighbouring_day_match(
    connection: AsyncConnection, key: tuple[str, str, str, str, str], variance: Decimal, tolerance: Tolerance
) -> str | None:
    """Explain a variance as one usage line counted on a neighbouring day by one of the two reports.

    A provider that charged more than computed may have included a neighbouring day's line. One that
    charged less may have put one of this day's lines on a neighbouring statement. The line must match
    the variance within both tolerances, measured against the line's own cost.
    """
    tenant, provider, day, scope, model = key
    start = datetime.fromisoformat(day).replace(tzinfo=UTC)
    days = [start - timedelta(days=1), start + timedelta(days=1)] if variance > 0 else [start]
    for first in days:
        rows = (
            await connection.execute(
                select(
                    LEDGER.c.model,
                    LEDGER.c.priced_model,
                    LEDGER.c.cost_amount,
                    LEDGER.c.cost_currency,
                    LEDGER.c.dimensions_json,
                ).where(
                    LEDGER.c.tenant == tenant,
                    LEDGER.c.provider == provider,
                    LEDGER.c.status == CostStatus.PRICED.value,
                    LEDGER.c.period_start >= first,
                    LEDGER.c.period_start < first + timedelta(days=1),
                )
            )
        ).all()
        for row in rows:
            if model not in (WHOLE_DAY, row.priced_model) or not row.cost_amount:
                continue
            if not _in_scope(row.dimensions_json, scope):
                continue
            gap = abs(abs(variance) - row.cost_amount)
            if gap <= tolerance.amount and gap * 100 <= tolerance.percent * row.cost_amount:
                name = row.priced_model or row.model
                if variance > 0:
                    return (
                        f"usage of {name} costing {_plain(row.cost_amount)} {row.cost_currency} is dated "
                        f"{first.date().isoformat()} in the usage export, but the provider's statement for {day} "
                        "seems to include it: the two reports cut days differently"
                    )
                return (
                    f"usage of {name} costing {_plain(row.cost_amount)} {row.cost_currency} is dated {day} in the "
                    "usage export, but the provider seems to charge it on a neighbouring day's statement: the two "
                    "reports cut days differently"
                )
    return None


def _plain(amount: Decimal) -> str:
    return format(amount.normalize(), "f")


def _tier_match(book: PriceBook, computed: _Computed, model: str, reported: Money, tolerance: Tolerance) -> str | None:
    events = [
        UsageRecorded.model_validate_json(row.usage_json)
        for row in computed.rows
        if row.status == CostStatus.PRICED.value and row.usage_json and model in (WHOLE_DAY, row.priced_model)
    ]
    if not events:
        return None
    for tier in ServiceTier:
        total = Decimal(0)
        for event in events:
            priced = price_usage(event.model_copy(update={"service_tier": tier}), book)
            if priced.cost is None or priced.cost.currency != reported.currency:
                break
            total += priced.cost.amount
        else:
            if (
                tier not in {event.service_tier for event in events}
                and abs(total - reported.amount) <= tolerance.amount
            ):
                return (
                    f"the reported cost matches this usage priced at the {tier.value} tier ({total} "
                    f"{reported.currency}): the usage report names another tier than the provider billed"
                )
    return None
