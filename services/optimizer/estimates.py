"""Savings estimates, each written out with the quantities and prices it used.

An estimate covers one month of one scope's priced usage: the same quantities
priced at the current catalogue row and at the alternative (the batch tier, or a
cheaper model of the same family), both taken at the time each usage happened.
The estimate is what that month would have cost less, so it assumes next month's
volume is like this month's.
"""

from __future__ import annotations

import decimal
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from services.optimizer.policy import Alternative, OptimizerPolicy
from shared.catalogue import PriceCatalogue, PriceRow
from shared.events import ServiceTier, UsageBucket

ARITHMETIC = decimal.Context(prec=50)
INPUT_BUCKETS = (
    UsageBucket.INPUT_UNCACHED_TOKENS,
    UsageBucket.CACHE_READ_TOKENS,
    UsageBucket.CACHE_WRITE_TOKENS,
    UsageBucket.CACHE_WRITE_1H_TOKENS,
)
OUTPUT_BUCKETS = (UsageBucket.OUTPUT_TOKENS, UsageBucket.REASONING_TOKENS)


@dataclass(frozen=True, slots=True)
class UsageSample:
    cost_event_id: str
    usage_event_id: str
    period_start: datetime
    quantities: dict[UsageBucket, Decimal]
    request_count: int | None


@dataclass(frozen=True, slots=True)
class Estimate:
    savings: Decimal
    currency: str
    arithmetic: str
    evidence: tuple[str, ...]


def _number(value: Decimal) -> str:
    text = format(value.normalize(), "f")
    if "." in text:
        whole, fraction = text.split(".")
        return f"{int(whole):,}.{fraction}"
    return f"{int(text):,}"


def _compare(
    samples: Sequence[UsageSample],
    current: tuple[str, str, ServiceTier],
    alternative: tuple[str, str, ServiceTier],
    catalogue: PriceCatalogue,
) -> tuple[Decimal, str, list[str]] | None:
    """Price the samples two ways; return (savings, currency, one line per bucket), or None if a price is missing."""
    totals: dict[tuple[UsageBucket, PriceRow, PriceRow], Decimal] = defaultdict(Decimal)
    for sample in samples:
        for bucket, quantity in sample.quantities.items():
            if quantity == 0:
                continue
            now = catalogue.price(*current, bucket, sample.period_start)
            alt = catalogue.price(*alternative, bucket, sample.period_start)
            if now is None or alt is None or now.currency != alt.currency:
                return None
            totals[(bucket, now, alt)] += quantity
    if not totals:
        return None
    savings = Decimal(0)
    lines = []
    currency = next(iter(totals))[1].currency
    for (bucket, now, alt), quantity in sorted(totals.items(), key=lambda item: item[0][0].value):
        now_per_unit = ARITHMETIC.divide(now.unit_price, now.price_per)
        alt_per_unit = ARITHMETIC.divide(alt.unit_price, alt.price_per)
        delta = ARITHMETIC.multiply(quantity, ARITHMETIC.subtract(now_per_unit, alt_per_unit))
        savings = ARITHMETIC.add(savings, delta)
        lines.append(
            f"{bucket.value}: {_number(quantity)} × ({_number(now.unit_price)} − {_number(alt.unit_price)}) "
            f"{currency} per {now.price_per:,} = {_number(delta)} {currency}"
            if now.price_per == alt.price_per
            else f"{bucket.value}: {_number(quantity)} × ({_number(now.unit_price)}/{now.price_per:,} − "
            f"{_number(alt.unit_price)}/{alt.price_per:,}) {currency} = {_number(delta)} {currency}"
        )
    return savings, currency, lines


def batch_tier_estimate(
    provider: str, model: str, month: str, samples: Sequence[UsageSample], catalogue: PriceCatalogue
) -> Estimate | None:
    """Savings from moving standard-tier usage to the provider's batch tier."""
    compared = _compare(
        samples, (provider, model, ServiceTier.STANDARD), (provider, model, ServiceTier.BATCH), catalogue
    )
    if compared is None:
        return None
    savings, currency, lines = compared
    if savings <= 0:
        return None
    arithmetic = "\n".join(
        [
            f"standard tier → batch tier for {provider}/{model}, {month}, {len(samples)} usage events:",
            *lines,
            f"estimated monthly savings = {_number(savings)} {currency}",
        ]
    )
    return Estimate(savings, currency, arithmetic, tuple(sample.usage_event_id for sample in samples))


def cheaper_model_estimate(
    provider: str,
    model: str,
    alternative: Alternative,
    tier: ServiceTier,
    month: str,
    samples: Sequence[UsageSample],
    catalogue: PriceCatalogue,
    policy: OptimizerPolicy,
) -> Estimate | None:
    """Savings from a cheaper model of the same family, for traffic with short prompts and outputs."""
    requests = sum(sample.request_count or 0 for sample in samples)
    if requests == 0 or any(sample.request_count is None for sample in samples):
        return None  # without request counts the token profile per request is unknown
    input_tokens = sum(sample.quantities.get(bucket, Decimal(0)) for sample in samples for bucket in INPUT_BUCKETS)
    output_tokens = sum(sample.quantities.get(bucket, Decimal(0)) for sample in samples for bucket in OUTPUT_BUCKETS)
    input_per_request = ARITHMETIC.divide(input_tokens, requests)
    output_per_request = ARITHMETIC.divide(output_tokens, requests)
    if (
        input_per_request > policy.max_input_tokens_per_request
        or output_per_request > policy.max_output_tokens_per_request
    ):
        return None
    compared = _compare(samples, (provider, model, tier), (provider, alternative.cheaper_model, tier), catalogue)
    if compared is None:
        return None
    savings, currency, lines = compared
    if savings <= 0:
        return None
    rounded_in = input_per_request.quantize(Decimal(1))
    rounded_out = output_per_request.quantize(Decimal(1))
    arithmetic = "\n".join(
        [
            f"{provider}/{model} → {alternative.cheaper_model} ({tier.value} tier), {month}, "
            f"{len(samples)} usage events, {requests:,} requests:",
            f"token profile: {_number(input_tokens)} input / {requests:,} requests = {rounded_in} per request "
            f"(limit {policy.max_input_tokens_per_request:,}); {_number(output_tokens)} output / {requests:,} = "
            f"{rounded_out} per request (limit {policy.max_output_tokens_per_request:,})",
            *lines,
            f"estimated monthly savings = {_number(savings)} {currency}",
        ]
    )
    return Estimate(savings, currency, arithmetic, tuple(sample.usage_event_id for sample in samples))
