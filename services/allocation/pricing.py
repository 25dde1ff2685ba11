"""Pricing one usage event: each bucket times the catalogue price in effect when the usage happened.

Decimal arithmetic runs with 50 significant digits, so ``quantity * unit_price / price_per``
is exact for every price and quantity the catalogue and normalisers allow; nothing
is rounded before it is stored.
"""

from __future__ import annotations

import decimal
from dataclasses import dataclass

from shared.catalogue import PriceCatalogue
from shared.events import BUCKET_UNITS, CostLine, CostStatus, Money, PricingBasis, UsageRecorded

ARITHMETIC = decimal.Context(prec=50)


@dataclass(frozen=True, slots=True)
class PricedUsage:
    status: CostStatus
    priced_model: str | None
    lines: tuple[CostLine, ...]
    cost: Money | None
    unpriced_reason: str | None = None


def _unpriced(reason: str, priced_model: str | None = None) -> PricedUsage:
    return PricedUsage(CostStatus.UNPRICED, priced_model, (), None, reason)


def price_usage(event: UsageRecorded, catalogue: PriceCatalogue) -> PricedUsage:
    """Price an event from the catalogue, or take the billed cost of a line from a bill of record."""
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
    priced_model = catalogue.resolve_model(event.provider, event.model)
    if priced_model is None:
        return _unpriced(f"model {event.model!r} of {event.provider} is not in price catalogue {catalogue.version}")

    in_effect = [row for row in catalogue.rows_for(event.provider, priced_model) if row.covers(event.period_start)]
    if not in_effect:
        first = min(row.effective_from for row in catalogue.rows_for(event.provider, priced_model))
        return _unpriced(
            f"no price of {event.provider}/{priced_model} is in effect at {event.period_start.isoformat()}; "
            f"its catalogue prices start {first.date().isoformat()}",
            priced_model,
        )

    lines: list[CostLine] = []
    for bucket in sorted(event.quantities, key=lambda item: item.value):
        quantity = event.quantities[bucket]
        if quantity == 0:
            continue  # a reported zero costs nothing whatever its price, so it needs no catalogue row
        row = catalogue.price(event.provider, priced_model, event.service_tier, bucket, event.period_start)
        if row is None:
            return _unpriced(
                f"no {event.service_tier.value} price for {bucket.value} of {event.provider}/{priced_model} "
                f"effective at {event.period_start.isoformat()} in catalogue {catalogue.version}",
                priced_model,
            )
        amount = ARITHMETIC.divide(ARITHMETIC.multiply(quantity, row.unit_price), row.price_per)
        lines.append(
            CostLine(
                bucket=bucket,
                quantity=quantity,
                unit=BUCKET_UNITS[bucket],
                unit_price=Money(amount=row.unit_price, currency=row.currency),
                price_per=row.price_per,
                amount=Money(amount=amount, currency=row.currency),
                price_row_id=row.row_id,
            )
        )

    # With every quantity zero there are no lines, so the total takes the model's catalogue currency.
    currencies = {line.amount.currency for line in lines} or {
        catalogue.rows_for(event.provider, priced_model)[0].currency
    }
    if len(currencies) > 1:
        return _unpriced(
            f"prices for {priced_model} are in several currencies ({', '.join(sorted(currencies))})", priced_model
        )
    total = Money.zero(currencies.pop())
    for line in lines:
        total = Money(amount=ARITHMETIC.add(total.amount, line.amount.amount), currency=total.currency)
    return PricedUsage(CostStatus.PRICED, priced_model, tuple(lines), total)
