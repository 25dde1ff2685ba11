"""Savings estimates on token usage, each written out with the quantities and prices it used.

An estimate covers one month of one scope's priced usage: the same quantities
priced at the current catalogue row and at the alternative (the batch tier, or a
cheaper model of the same family), both taken at the time each usage happened.
The estimate is what that month would have cost less, so it assumes next month's
volume is like this month's. Prompt caching instead moves a share of uncached
input to cache reads at the month's prices.
"""

from __future__ import annotations

import bisect
import decimal
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
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
    price_rows: tuple[str, ...] = ()


def format_number(value: Decimal) -> str:
    """Write a Decimal in plain notation with thousands separators, without trailing zeros."""
    return _number(value)


def _number(value: Decimal) -> str:
    text = format(value.normalize(), "f")
    if "." in text:
        whole, fraction = text.split(".")
        return f"{int(whole):,}.{fraction}"
    return f"{int(text):,}"


_BEFORE_ALL = datetime.min.replace(tzinfo=UTC)


class _PriceLookup:
    """Look up catalogue prices once per stretch of time in which no price row of the model starts or ends.

    ``PriceCatalogue.price`` reads only rows of the given provider and model, and each row covers an instant by
    comparing it with the row's effective_from and effective_to. Two instants with the same number of those
    boundaries at or before them therefore get the same row, so the result is kept under that number.
    """

    def __init__(self, catalogue: PriceCatalogue) -> None:
        self.catalogue = catalogue
        self._boundaries: dict[tuple[str, str], list[datetime]] = {}
        self._found: dict[tuple[str, str, ServiceTier, UsageBucket, int], PriceRow | None] = {}

    def stretch(self, provider: str, model: str, at: datetime) -> int:
        """Return the number of the stretch that contains ``at``: how many boundaries lie at or before it."""
        boundaries = self._boundaries.get((provider, model))
        if boundaries is None:
            instants = set()
            for row in self.catalogue.rows_for(provider, model):
                instants.add(row.effective_from)
                if row.effective_to is not None:
                    instants.add(row.effective_to)
            boundaries = self._boundaries[(provider, model)] = sorted(instants)
        return bisect.bisect_right(boundaries, at)

    def price_in(
        self, provider: str, model: str, tier: ServiceTier, bucket: UsageBucket, stretch: int
    ) -> PriceRow | None:
        """Return the row in effect throughout a stretch that ``stretch`` numbered for this provider and model."""
        key = (provider, model, tier, bucket, stretch)
        if key not in self._found:
            boundaries = self._boundaries[(provider, model)]
            # Any instant of the stretch will do: its opening boundary, or for the first stretch the earliest time.
            at = boundaries[stretch - 1] if stretch > 0 else _BEFORE_ALL
            self._found[key] = self.catalogue.price(provider, model, tier, bucket, at)
        return self._found[key]


def _compare(
    samples: Sequence[UsageSample],
    current: tuple[str, str, ServiceTier],
    alternative: tuple[str, str, ServiceTier],
    catalogue: PriceCatalogue,
) -> tuple[Decimal, str, list[str], tuple[str, ...]] | None:
    """Price the samples two ways; return (savings, currency, one line per bucket, price row ids).

    Returns None when a price is missing on either side.
    """
    prices = _PriceLookup(catalogue)
    # Quantities are first added up per bucket and per stretch of time with the same price rows on both sides,
    # then each sum is priced once.
    stretches: dict[tuple[UsageBucket, int, int], Decimal] = defaultdict(Decimal)
    for sample in samples:
        now_stretch = prices.stretch(current[0], current[1], sample.period_start)
        alt_stretch = prices.stretch(alternative[0], alternative[1], sample.period_start)
        for bucket, quantity in sample.quantities.items():
            if quantity != 0:
                stretches[(bucket, now_stretch, alt_stretch)] += quantity
    totals: dict[tuple[UsageBucket, PriceRow, PriceRow], Decimal] = defaultdict(Decimal)
    for (bucket, now_stretch, alt_stretch), quantity in stretches.items():
        now = prices.price_in(*current, bucket, now_stretch)
        alt = prices.price_in(*alternative, bucket, alt_stretch)
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
    price_rows = tuple(sorted({row.row_id for _bucket, now, alt in totals for row in (now, alt)}))
    return savings, currency, lines, price_rows


def batch_tier_estimate(
    provider: str,
    model: str,
    month: str,
    samples: Sequence[UsageSample],
    catalogue: PriceCatalogue,
    reason: str | None = None,
) -> Estimate | None:
    """Savings from moving standard-tier usage to the provider's batch tier; ``reason`` explains why it can wait."""
    compared = _compare(
        samples, (provider, model, ServiceTier.STANDARD), (provider, model, ServiceTier.BATCH), catalogue
    )
    if compared is None:
        return None
    savings, currency, lines, price_rows = compared
    if savings <= 0:
        return None
    arithmetic = "\n".join(
        [
            f"standard tier → batch tier for {provider}/{model}, {month}, {len(samples)} usage events:",
            *([f"non-interactive because {reason}"] if reason else []),
            *lines,
            f"estimated monthly savings = {_number(savings)} {currency}",
        ]
    )
    return Estimate(savings, currency, arithmetic, tuple(sample.usage_event_id for sample in samples), price_rows)


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
    savings, currency, lines, price_rows = compared
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
    return Estimate(savings, currency, arithmetic, tuple(sample.usage_event_id for sample in samples), price_rows)


def prompt_caching_estimate(
    provider: str,
    model: str,
    tier: ServiceTier,
    month: str,
    samples: Sequence[UsageSample],
    catalogue: PriceCatalogue,
    policy: OptimizerPolicy,
) -> Estimate | None:
    """Savings from serving a repeated prompt prefix from the provider's prompt cache.

    Of the month's input tokens, ``cacheable_share`` is assumed to be a repeated prefix. The part of it not
    yet read from or written to the cache is what caching would newly serve: one token in
    ``reads_per_write + 1`` of it is a cache write (rounded up to whole tokens), the rest cache reads. Each
    read saves the input price minus the cache-read price. Each write costs the cache-write price minus the
    input price, which is zero where the provider writes the cache at the input rate. Prices are those in
    effect when the month's last usage started.
    """
    requests = sum(sample.request_count or 0 for sample in samples)
    if requests == 0 or any(sample.request_count is None for sample in samples):
        return None  # without request counts the prompt length is unknown
    uncached = sum(
        (sample.quantities.get(UsageBucket.INPUT_UNCACHED_TOKENS, Decimal(0)) for sample in samples), Decimal(0)
    )
    reads_now = sum(
        (sample.quantities.get(UsageBucket.CACHE_READ_TOKENS, Decimal(0)) for sample in samples), Decimal(0)
    )
    writes_now = sum(
        (
            sample.quantities.get(bucket, Decimal(0))
            for sample in samples
            for bucket in (UsageBucket.CACHE_WRITE_TOKENS, UsageBucket.CACHE_WRITE_1H_TOKENS)
        ),
        Decimal(0),
    )
    total_input = uncached + reads_now + writes_now
    input_per_request = ARITHMETIC.divide(total_input, requests)
    if input_per_request < policy.caching_min_input_tokens_per_request:
        return None
    cacheable = (total_input * policy.caching_cacheable_share).to_integral_value(rounding=decimal.ROUND_FLOOR)
    gap = cacheable - reads_now - writes_now
    newly_cached = min(uncached, gap)  # only uncached input can move to the cache
    if newly_cached <= 0:
        return None

    at = max(sample.period_start for sample in samples)
    input_row = catalogue.price(provider, model, tier, UsageBucket.INPUT_UNCACHED_TOKENS, at)
    read_row = catalogue.price(provider, model, tier, UsageBucket.CACHE_READ_TOKENS, at)
    write_row = catalogue.price(provider, model, tier, UsageBucket.CACHE_WRITE_TOKENS, at)
    rows = (input_row, read_row, write_row)
    if input_row is None or read_row is None or write_row is None:
        return None
    if len({(row.currency, row.price_per) for row in rows}) != 1:
        return None  # the written arithmetic quotes all three prices in one currency and unit
    currency = input_row.currency
    writes = Decimal(-(-int(newly_cached) // (policy.caching_reads_per_write + 1)))  # whole tokens, rounded up
    reads = newly_cached - writes
    input_price = ARITHMETIC.divide(input_row.unit_price, input_row.price_per)
    read_saving = ARITHMETIC.multiply(
        reads, ARITHMETIC.subtract(input_price, ARITHMETIC.divide(read_row.unit_price, read_row.price_per))
    )
    write_premium = ARITHMETIC.multiply(
        writes, ARITHMETIC.subtract(ARITHMETIC.divide(write_row.unit_price, write_row.price_per), input_price)
    )
    savings = ARITHMETIC.subtract(read_saving, write_premium)
    if savings <= 0:
        return None

    share_percent = _number(policy.caching_cacheable_share * 100)
    per = f"{currency} per {input_row.price_per:,}"
    arithmetic = "\n".join(
        [
            f"prompt caching for {provider}/{model} ({tier.value} tier), {month}, {len(samples)} usage events, "
            f"{requests:,} requests:",
            f"input: {_number(uncached)} uncached + {_number(reads_now)} cache reads + {_number(writes_now)} cache "
            f"writes = {_number(total_input)} tokens, {input_per_request.quantize(Decimal(1))} per request "
            f"(caching needs {policy.caching_min_input_tokens_per_request:,})",
            f"assumed repeated prefix: {share_percent}% of {_number(total_input)} = {_number(cacheable)} tokens; "
            f"not yet cached: {_number(cacheable)} − {_number(reads_now)} − {_number(writes_now)} = {_number(gap)} "
            f"tokens" + (f", at most the {_number(uncached)} uncached" if uncached < gap else ""),
            f"cache writes: {_number(newly_cached)} / ({policy.caching_reads_per_write} reads per write + 1), "
            f"rounded up = {_number(writes)}; cache reads: {_number(newly_cached)} − {_number(writes)} = "
            f"{_number(reads)}",
            f"reads: {_number(reads)} × ({_number(input_row.unit_price)} − {_number(read_row.unit_price)}) {per} = "
            f"{_number(read_saving)} {currency}",
            f"writes: {_number(writes)} × ({_number(write_row.unit_price)} − {_number(input_row.unit_price)}) {per} = "
            f"{_number(write_premium)} {currency}",
            f"estimated monthly savings = {_number(read_saving)} − {_number(write_premium)} = {_number(savings)} "
            f"{currency}",
        ]
    )
    return Estimate(
        savings,
        currency,
        arithmetic,
        tuple(sample.usage_event_id for sample in samples),
        tuple(sorted({row.row_id for row in rows})),
    )
