"""Pricing one usage event: each bucket times the price in effect when the usage happened.

Prices are searched in order of precedence: the tenant's contract prices, then
the tenant's own prices, then the catalogue, each at the usage's own time. A
bucket with no price in any of them makes the whole line unpriced; no broader
rate is used instead. A contract discount applies to list prices only, and the line
keeps both the list and the discounted figures.

Decimal arithmetic runs with 50 significant digits, so ``quantity * unit_price / price_per``
is exact for every price and quantity the catalogue and normalisers allow; nothing
is rounded before it is stored.
"""

from __future__ import annotations

import bisect
import decimal
import hashlib
import re
import weakref
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Literal

from services.allocation.terms import TenantTerms, empty_terms
from shared.catalogue import ContextTier, PriceCatalogue, PriceRow
from shared.events import (
    BUCKET_UNITS,
    CostLine,
    CostStatus,
    Money,
    PricingBasis,
    ServiceTier,
    UsageBucket,
    UsageRecorded,
)

ARITHMETIC = decimal.Context(prec=50)
HUNDRED = Decimal(100)
PriceSource = Literal["contract", "custom", "catalogue"]

# Anthropic's usage report groups usage by context window ("0-200k", "200k-1M"); the ingest
# normaliser keeps that grouping as this tag.
CONTEXT_WINDOW_TAG = "context_window"
_WINDOW = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kKmM]?)\s*-\s*(\d+(?:\.\d+)?)?\s*([kKmM]?)\s*$")


@dataclass(frozen=True)
class PriceBook:
    """The catalogue plus every tenant's terms: what allocation prices usage against."""

    catalogue: PriceCatalogue
    terms: Mapping[str, TenantTerms] = field(default_factory=dict)
    terms_version: str = "none"

    @property
    def version(self) -> str:
        digest = hashlib.sha256(f"{self.catalogue.version}|{self.terms_version}".encode()).hexdigest()
        return f"sha256:{digest[:16]}"

    def terms_for(self, tenant: str) -> TenantTerms:
        return self.terms.get(tenant) or empty_terms(tenant)


@dataclass(frozen=True, slots=True)
class PricedUsage:
    status: CostStatus
    priced_model: str | None
    lines: tuple[CostLine, ...]
    cost: Money | None
    unpriced_reason: str | None = None
    context_tier: ContextTier | None = None


def _unpriced(reason: str, priced_model: str | None = None) -> PricedUsage:
    return PricedUsage(CostStatus.UNPRICED, priced_model, (), None, reason)


def price_usage(event: UsageRecorded, book: PriceBook | PriceCatalogue) -> PricedUsage:
    """Price an event from the price lists, or take the billed cost of a line from a bill of record."""
    if isinstance(book, PriceCatalogue):
        book = PriceBook(book)
    if event.pricing_basis is PricingBasis.PROVIDER_BILLED:
        if event.provider_cost is None:
            return _unpriced("the bill line has no billed cost")
        return PricedUsage(CostStatus.PROVIDER_BILLED, None, (), event.provider_cost)
    if not event.quantities:
        return _unpriced("the usage report line has no usage quantities to price")

    if event.model is None:
        return _unpriced(
            f"{event.provider} did not report a model for this usage, so no price applies "
            "(export usage grouped by model)"
        )
    terms = book.terms_for(event.tenant)
    lists = _price_lists(book, terms)
    priced_model = _resolve_model(event.provider, event.model, lists, terms, book.catalogue)
    if priced_model is None:
        return _unpriced(f"model {event.model!r} of {event.provider} is not in price catalogue {book.version}")

    at = event.period_start
    known_rows = [row for _, prices in lists for row in _index(prices).rows(event.provider, priced_model)]
    if not any(row.covers(at) for row in known_rows):
        first = min(row.effective_from for row in known_rows)
        return _unpriced(
            f"no price of {event.provider}/{priced_model} is in effect at {at.isoformat()}; "
            f"its prices start {first.date().isoformat()}",
            priced_model,
        )

    tiers = sorted(
        {
            tier
            for _, prices in lists
            if _index(prices).has_context_tiers(event.provider, priced_model)
            for tier in prices.context_tiers(event.provider, priced_model, at)
        },
        key=lambda tier: tier.over,
    )
    context, context_problem = decide_context_tier(event, tiers)
    if context_problem is not None:
        return _unpriced(context_problem, priced_model)

    lines: list[CostLine] = []
    for bucket in sorted(event.quantities, key=lambda item: item.value):
        quantity = event.quantities[bucket]
        if quantity == 0:
            continue  # a reported zero costs nothing whatever its price, so it needs no catalogue row
        found = _find_price(lists, event, priced_model, bucket, context)
        if found is None:
            tier_text = f", context above {context.over} {context.measure.value}" if context else ""
            return _unpriced(
                f"no {event.service_tier.value} price for {bucket.value} of {event.provider}/{priced_model} "
                f"effective at {at.isoformat()}{tier_text} in price book {book.version}",
                priced_model,
            )
        source, row = found
        lines.append(_line(bucket, quantity, row, source, terms, event.provider, priced_model, at))

    currencies = {line.amount.currency for line in lines} or {known_rows[0].currency}
    if len(currencies) > 1:
        return _unpriced(
            f"prices for {priced_model} are in several currencies ({', '.join(sorted(currencies))})", priced_model
        )
    amount = Decimal(0)
    for line in lines:
        amount = ARITHMETIC.add(amount, line.amount.amount)
    total = Money(amount=amount, currency=currencies.pop())
    return PricedUsage(CostStatus.PRICED, priced_model, tuple(lines), total, context_tier=context)


class _CatalogueIndex:
    """Per-model lookups on one price list, cached because PriceCatalogue scans every row for each of them.

    A price list is not changed after it is loaded (a reload builds a new one), so the cached results stay valid.
    """

    def __init__(self, prices: PriceCatalogue) -> None:
        self._prices = prices
        self._models = frozenset(prices.models())
        self._rows: dict[tuple[str, str], tuple[PriceRow, ...]] = {}
        self._boundaries: dict[tuple[str, str], list[datetime]] = {}
        self._prices_found: dict[tuple[object, ...], PriceRow | None] = {}

    def has_model(self, provider: str, model: str) -> bool:
        return (provider, model) in self._models

    def rows(self, provider: str, model: str) -> tuple[PriceRow, ...]:
        key = (provider, model)
        found = self._rows.get(key)
        if found is None:
            found = self._rows[key] = tuple(self._prices.rows_for(provider, model))
        return found

    def price(
        self,
        provider: str,
        model: str,
        tier: ServiceTier,
        bucket: UsageBucket,
        at: datetime,
        *,
        region: str | None,
        context_over: int | None,
    ) -> PriceRow | None:
        """Return ``PriceCatalogue.price`` without the reasoning fallback, looked up once per stretch of time.

        That lookup reads only the rows of this provider, model, tier and bucket and compares ``at`` with their
        effective_from and effective_to. Instants with the same number of those boundaries at or before them
        therefore get the same row, so the row is kept under that number.
        """
        boundaries = self._boundaries.get((provider, model))
        if boundaries is None:
            instants = set()
            for row in self.rows(provider, model):
                instants.add(row.effective_from)
                if row.effective_to is not None:
                    instants.add(row.effective_to)
            boundaries = self._boundaries[(provider, model)] = sorted(instants)
        key = (provider, model, tier, bucket, region, context_over, bisect.bisect_right(boundaries, at))
        if key in self._prices_found:
            return self._prices_found[key]
        found = self._prices.price(
            provider, model, tier, bucket, at, region=region, context_over=context_over, reasoning_falls_back=False
        )
        self._prices_found[key] = found
        return found

    def has_context_tiers(self, provider: str, model: str) -> bool:
        """Tell whether any row of the model has a long-context tier, at any time."""
        return any(row.context_over is not None for row in self.rows(provider, model))


_INDEXES: weakref.WeakKeyDictionary[PriceCatalogue, _CatalogueIndex] = weakref.WeakKeyDictionary()


def _index(prices: PriceCatalogue) -> _CatalogueIndex:
    index = _INDEXES.get(prices)
    if index is None:
        index = _INDEXES[prices] = _CatalogueIndex(prices)
    return index


def _price_lists(book: PriceBook, terms: TenantTerms) -> list[tuple[PriceSource, PriceCatalogue]]:
    lists: list[tuple[PriceSource, PriceCatalogue]] = []
    if terms.contract_prices is not None:
        lists.append(("contract", terms.contract_prices))
    if terms.custom_prices is not None:
        lists.append(("custom", terms.custom_prices))
    lists.append(("catalogue", book.catalogue))
    return lists


def _resolve_model(
    provider: str,
    model: str,
    lists: list[tuple[PriceSource, PriceCatalogue]],
    terms: TenantTerms,
    catalogue: PriceCatalogue,
) -> str | None:
    """Resolve a reported model id by exact match, the tenant's aliases, then the catalogue's aliases."""
    if any(_index(prices).has_model(provider, model) for _, prices in lists):
        return model
    if (provider, model) in terms.aliases:
        return terms.aliases[(provider, model)]
    return catalogue.resolve_model(provider, model)


def _find_price(
    lists: list[tuple[PriceSource, PriceCatalogue]],
    event: UsageRecorded,
    model: str,
    bucket: UsageBucket,
    context: ContextTier | None,
) -> tuple[PriceSource, PriceRow] | None:
    wanted = [bucket]
    if bucket is UsageBucket.REASONING_TOKENS:
        wanted.append(UsageBucket.OUTPUT_TOKENS)  # only when no price list has a reasoning row of its own
    for candidate in wanted:
        for source, prices in lists:
            row = _index(prices).price(
                event.provider,
                model,
                event.service_tier,
                candidate,
                event.period_start,
                region=event.region,
                context_over=context.over if context else None,
            )
            if row is not None:
                return source, row
    return None


def _line(
    bucket: UsageBucket,
    quantity: Decimal,
    row: PriceRow,
    source: PriceSource,
    terms: TenantTerms,
    provider: str,
    model: str,
    at: datetime,
) -> CostLine:
    list_amount = ARITHMETIC.divide(ARITHMETIC.multiply(quantity, row.unit_price), row.price_per)
    contract = terms.discount_for(provider, model, at) if source != "contract" else None
    if contract is None or contract.discount_percent is None:
        return CostLine(
            bucket=bucket,
            quantity=quantity,
            unit=BUCKET_UNITS[bucket],
            unit_price=Money(amount=row.unit_price, currency=row.currency),
            price_per=row.price_per,
            amount=Money(amount=list_amount, currency=row.currency),
            price_row_id=row.row_id,
            price_source=source,
        )
    keep = ARITHMETIC.divide(HUNDRED - contract.discount_percent, HUNDRED)
    unit_price = ARITHMETIC.multiply(row.unit_price, keep)
    return CostLine(
        bucket=bucket,
        quantity=quantity,
        unit=BUCKET_UNITS[bucket],
        unit_price=Money(amount=unit_price, currency=row.currency),
        price_per=row.price_per,
        amount=Money(
            amount=ARITHMETIC.divide(ARITHMETIC.multiply(quantity, unit_price), row.price_per), currency=row.currency
        ),
        price_row_id=row.row_id,
        price_source=source,
        list_unit_price=Money(amount=row.unit_price, currency=row.currency),
        list_amount=Money(amount=list_amount, currency=row.currency),
        discount_id=contract.contract_id,
    )


def _tokens(text: str, unit: str) -> Decimal:
    scale = {"": 1, "k": 1_000, "m": 1_000_000}[unit.lower()]
    return Decimal(text) * scale


def reported_window_floor(event: UsageRecorded) -> Decimal | None:
    """Return the lower bound, in tokens, of the context window the provider grouped this usage by."""
    window = event.dimensions.tags.get(CONTEXT_WINDOW_TAG)
    if window is None:
        return None
    match = _WINDOW.match(window)
    if match is None:
        return None
    return _tokens(match.group(1), match.group(2))


def decide_context_tier(event: UsageRecorded, tiers: list[ContextTier]) -> tuple[ContextTier | None, str | None]:
    """Decide the long-context tier once for the request(s) of an event, for every bucket alike.

    Returns the tier (None for the base tier) or a reason why it cannot be decided. A line for one
    request is measured directly. A line that groups many requests uses the context window that the
    provider grouped it by. Without a window, the line is certainly in the base tier only when its
    total is within the lowest threshold, because then no single request can be above it.
    """
    if not tiers:
        return None, None
    if event.request_count == 1:
        chosen = None
        for tier in tiers:
            measured = sum((event.quantities.get(bucket, Decimal(0)) for bucket in tier.measure.buckets()), Decimal(0))
            if measured > tier.over:
                chosen = tier
        return chosen, None
    floor = reported_window_floor(event)
    if floor is not None:
        chosen = None
        for tier in tiers:
            if floor >= tier.over:
                chosen = tier
        return chosen, None
    lowest = tiers[0]
    total = sum((event.quantities.get(bucket, Decimal(0)) for bucket in lowest.measure.buckets()), Decimal(0))
    if total <= lowest.over:
        return None, None
    requests = "an unknown number of" if event.request_count is None else f"{event.request_count:,}"
    return None, (
        f"the line groups {requests} requests with {total:,} {lowest.measure.value} in all, so whether a request "
        f"was above the {lowest.over:,}-token long-context tier cannot be determined; import usage per request or "
        "grouped by context window"
    )
