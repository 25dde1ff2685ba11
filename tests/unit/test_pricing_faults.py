"""One test class per kind of pricing fault that usage tools are known to make, with the arithmetic by hand.

Prices are USD per 1,000,000 tokens unless a test says otherwise.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from services.allocation.pricing import PriceBook, price_usage
from services.allocation.terms import TermsError, load_terms
from shared.catalogue import CatalogueError, PriceCatalogue
from shared.events import CostStatus, Evidence, ServiceTier, UsageBucket, UsageDimensions, UsageRecorded
from tests.unit.test_pricing import dashboard_events

B = UsageBucket
CATALOGUE = PriceCatalogue.load()
HEADER = (
    "provider,model,bucket,service_tier,unit_price,price_per,currency,effective_from,effective_to,source,"
    "region,context_over,context_measure\n"
)


def usage(
    model: str,
    quantities: dict[UsageBucket, int | str],
    *,
    provider: str = "openai",
    tier: ServiceTier = ServiceTier.STANDARD,
    at: datetime = datetime(2025, 10, 6, tzinfo=UTC),
    requests: int | None = None,
    tags: dict[str, str] | None = None,
    tenant: str = "acme",
    region: str | None = None,
) -> UsageRecorded:
    return UsageRecorded(
        event_id="e1",
        occurred_at=at,
        source="test",
        tenant=tenant,
        correlation_id="c",
        provider=provider,
        model=model,
        service_tier=tier,
        region=region,
        period_start=at,
        period_end=at,
        dimensions=UsageDimensions(tags=tags or {}),
        quantities={bucket: Decimal(count) for bucket, count in quantities.items()},
        request_count=requests,
        evidence=Evidence(format="test"),
    )


def catalogue_from(tmp_path: Path, rows: str, aliases: str = "provider,alias,model\n") -> PriceCatalogue:
    prices = tmp_path / "prices.csv"
    prices.write_text(HEADER + rows)
    alias_file = tmp_path / "aliases.csv"
    alias_file.write_text(aliases)
    return PriceCatalogue.load(prices, alias_file)


def amounts(priced: object) -> dict[UsageBucket, Decimal]:
    return {line.bucket: line.amount.amount for line in priced.lines}  # type: ignore[attr-defined]


class TestCachedTokens:
    """Cached tokens are priced once, at the cache-read rate, never at the input rate or twice."""

    def test_dashboard_row_splits_cached_from_uncached(self) -> None:
        event = dashboard_events()[0]  # gpt-4o 2025-10-05: 59,200 input tokens of which 5,760 cached
        assert event.quantities[B.INPUT_UNCACHED_TOKENS] + event.quantities[B.CACHE_READ_TOKENS] == 59_200
        priced = price_usage(event, CATALOGUE)
        # 53,440 × 2.50 = 0.1336 and 5,760 × 1.25 = 0.0072; charging all 59,200 at 2.50 would give 0.148,
        # and adding the cached tokens again on top would give 0.1552.
        assert amounts(priced)[B.INPUT_UNCACHED_TOKENS] == Decimal("0.1336")
        assert amounts(priced)[B.CACHE_READ_TOKENS] == Decimal("0.0072")

    def test_cache_write_lifetimes_have_own_rates(self) -> None:
        event = usage(
            "claude-sonnet-4-5",
            {B.CACHE_WRITE_TOKENS: 100_000, B.CACHE_WRITE_1H_TOKENS: 100_000},
            provider="anthropic",
            requests=1,
        )
        priced = price_usage(event, CATALOGUE)
        # 5-minute writes 100,000 × 3.75 = 0.375; 1-hour writes 100,000 × 6.00 = 0.60
        assert amounts(priced) == {B.CACHE_WRITE_TOKENS: Decimal("0.375"), B.CACHE_WRITE_1H_TOKENS: Decimal("0.6")}


class TestReasoningTokens:
    """Reasoning tokens are billed, at the output rate unless a row says otherwise."""

    def test_reasoning_billed_at_output_rate(self) -> None:
        priced = price_usage(usage("gpt-5", {B.OUTPUT_TOKENS: 1_000, B.REASONING_TOKENS: 4_000}), CATALOGUE)
        # 1,000 × 10.00 = 0.01 and 4,000 × 10.00 = 0.04: dropping reasoning would leave 0.01
        assert amounts(priced) == {B.OUTPUT_TOKENS: Decimal("0.01"), B.REASONING_TOKENS: Decimal("0.04")}
        assert priced.lines[1].price_row_id == "openai/gpt-5/standard/output_tokens/2025-08-07"

    def test_own_reasoning_row_wins(self, tmp_path: Path) -> None:
        catalogue = catalogue_from(
            tmp_path,
            "x,m,output_tokens,standard,10,1000000,USD,2025-01-01,,s,,,\n"
            "x,m,reasoning_tokens,standard,8,1000000,USD,2025-01-01,,s,,,\n",
        )
        priced = price_usage(usage("m", {B.REASONING_TOKENS: 4_000}, provider="x"), catalogue)
        assert priced.cost is not None
        assert priced.cost.amount == Decimal("0.032")  # 4,000 × 8 / 1,000,000

    def test_custom_reasoning_row_beats_catalogue_output_fallback(self, tmp_path: Path) -> None:
        terms = tmp_path / "terms.yaml"
        terms.write_text(
            "tenants:\n  acme:\n    custom_prices:\n"
            "      - {provider: openai, model: gpt-5, bucket: reasoning_tokens, service_tier: standard,"
            ' unit_price: "7.00", price_per: 1000000, currency: USD, effective_from: 2025-08-07}\n'
        )
        book = PriceBook(CATALOGUE, load_terms(terms))
        priced = price_usage(usage("gpt-5", {B.REASONING_TOKENS: 4_000}), book)
        assert amounts(priced) == {B.REASONING_TOKENS: Decimal("0.028")}  # 4,000 × 7.00 / 1,000,000
        assert priced.lines[0].price_source == "custom"


class TestBatchAndCacheDiscounts:
    """A batch price comes from its own row; no discount is multiplied over another."""

    def test_batch_cache_read_uses_its_row(self, tmp_path: Path) -> None:
        catalogue = catalogue_from(
            tmp_path,
            "x,m,input_uncached_tokens,standard,1.00,1000000,USD,2025-01-01,,s,,,\n"
            "x,m,cache_read_tokens,standard,0.10,1000000,USD,2025-01-01,,s,,,\n"
            "x,m,input_uncached_tokens,batch,0.50,1000000,USD,2025-01-01,,s,,,\n"
            "x,m,cache_read_tokens,batch,0.10,1000000,USD,2025-01-01,,s,,,\n",
        )
        event = usage("m", {B.CACHE_READ_TOKENS: 1_000_000}, provider="x", tier=ServiceTier.BATCH)
        priced = price_usage(event, catalogue)
        # The provider keeps cache reads at 0.10 in batch; halving them again would give 0.05.
        assert priced.cost is not None
        assert priced.cost.amount == Decimal("0.10")

    def test_missing_batch_cache_row_is_unpriced(self) -> None:
        # gpt-4o has batch input and output rows but no batch cache-read row: nothing is derived for it.
        event = usage("gpt-4o", {B.CACHE_READ_TOKENS: 1_000, B.INPUT_UNCACHED_TOKENS: 10}, tier=ServiceTier.BATCH)
        priced = price_usage(event, CATALOGUE)
        assert priced.status is CostStatus.UNPRICED
        assert "no batch price for cache_read_tokens" in (priced.unpriced_reason or "")

    def test_stacked_batch_cache_price_from_catalogue(self) -> None:
        priced = price_usage(usage("gpt-5", {B.CACHE_READ_TOKENS: 1_000_000}, tier=ServiceTier.BATCH), CATALOGUE)
        assert amounts(priced) == {B.CACHE_READ_TOKENS: Decimal("0.0625")}  # the batch cache-read row: 0.0625


class TestLongContextTier:
    """The long-context tier is decided once per request, over all its input tokens, for every bucket."""

    def test_one_request_over_threshold_prices_every_bucket_long(self) -> None:
        event = usage(
            "claude-sonnet-4-5",
            {B.INPUT_UNCACHED_TOKENS: 150_000, B.CACHE_READ_TOKENS: 60_000, B.OUTPUT_TOKENS: 1_000},
            provider="anthropic",
            requests=1,
        )
        priced = price_usage(event, CATALOGUE)
        # 150,000 + 60,000 = 210,000 input tokens > 200,000, so the whole request is long-context:
        # 150,000 × 6.00 = 0.9; 60,000 × 0.60 = 0.036; 1,000 × 22.50 = 0.0225; total 0.9585.
        # Deciding per bucket (150,000 uncached < 200,000) would give 0.45 + 0.018 + 0.015 = 0.483.
        assert priced.cost is not None
        assert priced.cost.amount == Decimal("0.9585")
        assert {line.price_row_id.split("/")[4] for line in priced.lines} == {"input_tokens>200000"}

    def test_one_request_under_threshold_is_base(self) -> None:
        event = usage(
            "claude-sonnet-4-5",
            {B.INPUT_UNCACHED_TOKENS: 150_000, B.CACHE_READ_TOKENS: 50_000, B.OUTPUT_TOKENS: 1_000},
            provider="anthropic",
            requests=1,
        )
        # exactly 200,000 input tokens is not above the threshold: 150,000 × 3 + 50,000 × 0.30 + 1,000 × 15
        assert price_usage(event, CATALOGUE).cost.amount == Decimal("0.48")  # type: ignore[union-attr]

    def test_reported_window_decides_grouped_usage(self) -> None:
        quantities = {B.INPUT_UNCACHED_TOKENS: 900_000, B.OUTPUT_TOKENS: 10_000}
        base = usage("claude-sonnet-4-5", quantities, provider="anthropic", tags={"context_window": "0-200k"})
        long = usage("claude-sonnet-4-5", quantities, provider="anthropic", tags={"context_window": "200k-1M"})
        # base: 900,000 × 3 + 10,000 × 15 = 2.85; long: 900,000 × 6 + 10,000 × 22.50 = 5.625
        assert price_usage(base, CATALOGUE).cost.amount == Decimal("2.85")  # type: ignore[union-attr]
        assert price_usage(long, CATALOGUE).cost.amount == Decimal("5.625")  # type: ignore[union-attr]

    def test_grouped_usage_without_window_is_unpriced(self) -> None:
        event = usage("claude-sonnet-4-5", {B.INPUT_UNCACHED_TOKENS: 900_000}, provider="anthropic", requests=12)
        priced = price_usage(event, CATALOGUE)
        assert priced.status is CostStatus.UNPRICED
        assert "groups 12 requests with 900,000 input_tokens" in (priced.unpriced_reason or "")

    def test_grouped_usage_under_threshold_is_base(self) -> None:
        # 150,000 tokens over 12 requests: no single request can be above 200,000.
        event = usage("claude-sonnet-4-5", {B.INPUT_UNCACHED_TOKENS: 150_000}, provider="anthropic", requests=12)
        assert price_usage(event, CATALOGUE).cost.amount == Decimal("0.45")  # type: ignore[union-attr]

    def test_long_row_without_base_row_is_rejected(self, tmp_path: Path) -> None:
        with pytest.raises(CatalogueError, match="needs a base row"):
            catalogue_from(tmp_path, "x,m,output_tokens,standard,2,1000000,USD,2025-01-01,,s,,200000,input_tokens\n")


class TestModelIds:
    """Model ids resolve exactly or through listed aliases; anything else stays unpriced, never zero."""

    @pytest.mark.parametrize("model", ["gpt-5", "gpt-5-2025-08-07", "openai/gpt-5", "gpt-5-chat-latest"])
    def test_listed_spellings_price_alike(self, model: str) -> None:
        priced = price_usage(usage(model, {B.OUTPUT_TOKENS: 1_000}), CATALOGUE)
        assert priced.priced_model == "gpt-5"
        assert priced.cost.amount == Decimal("0.01")  # type: ignore[union-attr]  # 1,000 × 10.00 / 1,000,000

    def test_dated_snapshot_with_other_price_is_not_stripped(self) -> None:
        # gpt-4o-2024-05-13 was billed 5.00 / 15.00, not gpt-4o's 2.50 / 10.00: removing the date suffix
        # would misprice it, so without a row of its own it stays unpriced.
        assert price_usage(usage("gpt-4o-2024-05-13", {B.OUTPUT_TOKENS: 1}), CATALOGUE).status is CostStatus.UNPRICED

    @pytest.mark.parametrize("model", ["gpt-5-2025-08-08", "openrouter/gpt-5", "GPT-5", "gpt-5 "])
    def test_unlisted_spellings_stay_unpriced(self, model: str) -> None:
        priced = price_usage(usage(model, {B.OUTPUT_TOKENS: 1_000}), CATALOGUE)
        assert priced.status is CostStatus.UNPRICED
        assert priced.cost is None

    def test_tenant_deployment_name(self, tmp_path: Path) -> None:
        terms = tmp_path / "terms.yaml"
        terms.write_text(
            "tenants:\n  acme:\n    aliases:\n      - {provider: openai, alias: prod-gpt5, model: gpt-5}\n"
        )
        book = PriceBook(CATALOGUE, load_terms(terms))
        assert price_usage(usage("prod-gpt5", {B.OUTPUT_TOKENS: 1_000}), book).priced_model == "gpt-5"
        other_tenant = usage("prod-gpt5", {B.OUTPUT_TOKENS: 1_000}, tenant="globex")
        assert price_usage(other_tenant, book).status is CostStatus.UNPRICED


TERMS = """
tenants:
  acme:
    custom_prices:
      - {provider: openai, model: gpt-5-mini, bucket: output_tokens, service_tier: standard, unit_price: "1.90",
         price_per: 1000000, currency: USD, effective_from: 2025-08-07, source: own rate card}
    contracts:
      - id: openai-2025
        provider: openai
        starts: 2025-10-01
        ends: 2025-11-01
        discount_percent: "10"
        discount_models: [gpt-5]
        prices:
          - {model: gpt-5-mini, bucket: output_tokens, service_tier: standard, unit_price: "1.80",
             price_per: 1000000, currency: USD}
"""


class TestNegotiatedPrices:
    """A tenant's contract price wins over its own price, which wins over the catalogue, at the usage's time."""

    @pytest.fixture
    def book(self, tmp_path: Path) -> PriceBook:
        path = tmp_path / "terms.yaml"
        path.write_text(TERMS)
        return PriceBook(CATALOGUE, load_terms(path))

    def test_contract_price_wins(self, book: PriceBook) -> None:
        event = dashboard_events()[3]  # gpt-5-mini on 2025-10-07: 80,992 input, 274,770 output
        priced = price_usage(event, book)
        # input from the catalogue 80,992 × 0.25 = 0.020248; output at the contract's 1.80:
        # 274,770 × 1.80 = 0.494586; total 0.514834 (the catalogue alone gives 0.569788)
        assert priced.cost is not None
        assert priced.cost.amount == Decimal("0.514834")
        sources = {line.bucket: (line.price_source, line.price_row_id) for line in priced.lines}
        assert sources[B.OUTPUT_TOKENS] == (
            "contract",
            "contract:acme:openai-2025:openai/gpt-5-mini/standard/output_tokens/2025-10-01",
        )
        assert sources[B.INPUT_UNCACHED_TOKENS][0] == "catalogue"

    def test_custom_price_after_contract_ends(self, book: PriceBook) -> None:
        event = usage("gpt-5-mini", {B.OUTPUT_TOKENS: 1_000_000}, at=datetime(2025, 11, 3, tzinfo=UTC))
        priced = price_usage(event, book)
        assert priced.cost.amount == Decimal("1.90")  # type: ignore[union-attr]  # the tenant's own 1.90
        assert priced.lines[0].price_source == "custom"

    def test_other_tenant_gets_catalogue(self, book: PriceBook) -> None:
        event = usage("gpt-5-mini", {B.OUTPUT_TOKENS: 1_000_000}, tenant="globex")
        assert price_usage(event, book).cost.amount == Decimal("2.00")  # type: ignore[union-attr]

    def test_discount_keeps_list_price(self, book: PriceBook) -> None:
        event = dashboard_events()[1]  # gpt-5 on 2025-10-06: 38,072 input, 8,192 cached, 60,000 output
        priced = price_usage(event, book)
        # list 0.648614 (see test_pricing); 10 % off every line: 0.648614 × 0.9 = 0.5837526
        assert priced.cost is not None
        assert priced.cost.amount == Decimal("0.5837526")
        output = next(line for line in priced.lines if line.bucket is B.OUTPUT_TOKENS)
        assert output.unit_price.amount == Decimal("9.00")
        assert output.list_unit_price is not None and output.list_unit_price.amount == Decimal("10.00")
        assert output.list_amount is not None and output.list_amount.amount == Decimal("0.6")
        assert output.discount_id == "openai-2025"

    def test_overlapping_discounts_are_rejected(self, tmp_path: Path) -> None:
        path = tmp_path / "terms.yaml"
        path.write_text(
            "tenants:\n  acme:\n    contracts:\n"
            '      - {id: a, provider: openai, starts: 2025-01-01, discount_percent: "5"}\n'
            '      - {id: b, provider: openai, starts: 2025-06-01, discount_percent: "7", discount_models: [gpt-5]}\n'
        )
        with pytest.raises(TermsError, match="'a' and 'b' both discount"):
            load_terms(path)

    def test_float_discount_is_rejected(self, tmp_path: Path) -> None:
        path = tmp_path / "terms.yaml"
        path.write_text(
            "tenants:\n  acme:\n    contracts:\n"
            "      - {id: a, provider: openai, starts: 2025-01-01, discount_percent: 7.5}\n"
        )
        with pytest.raises(TermsError, match="discount_percent: write the number as a quoted string"):
            load_terms(path)


class TestExactMoney:
    """Amounts are exact decimals from end to end: no binary-float artefacts."""

    def test_small_request_is_exact(self) -> None:
        # 10 input × 2.50 / 1e6 + 20 output × 10.00 / 1e6 = 0.000025 + 0.0002 = 0.000225 exactly
        # (a float sum gives 0.00022500000000000002).
        priced = price_usage(usage("gpt-4o", {B.INPUT_UNCACHED_TOKENS: 10, B.OUTPUT_TOKENS: 20}), CATALOGUE)
        assert priced.cost is not None
        assert str(priced.cost.amount) == "0.000225"
        assert json.loads(priced.cost.model_dump_json())["amount"] == "0.000225"

    def test_fractional_gpu_is_charged_for_its_fraction(self, tmp_path: Path) -> None:
        catalogue = catalogue_from(tmp_path, "aws,g5.4xlarge,gpu_seconds,standard,1.624,3600,USD,2024-01-01,,s,,,\n")
        # a quarter of one GPU for one hour: 0.25 × 3,600 = 900 GPU-seconds × 1.624 / 3,600 = 0.406
        priced = price_usage(usage("g5.4xlarge", {B.GPU_SECONDS: 900}, provider="aws"), catalogue)
        assert priced.cost is not None
        assert priced.cost.amount == Decimal("0.406")


class TestRegionRows:
    def test_regional_row_wins_and_others_use_general(self, tmp_path: Path) -> None:
        catalogue = catalogue_from(
            tmp_path,
            "x,m,output_tokens,standard,10,1000000,USD,2025-01-01,,s,,,\n"
            "x,m,output_tokens,standard,11,1000000,USD,2025-01-01,,s,us,,\n",
        )
        in_us = usage("m", {B.OUTPUT_TOKENS: 1_000_000}, provider="x", region="us")
        elsewhere = usage("m", {B.OUTPUT_TOKENS: 1_000_000}, provider="x", region="global")
        assert price_usage(in_us, catalogue).cost.amount == Decimal("11")  # type: ignore[union-attr]
        assert price_usage(elsewhere, catalogue).cost.amount == Decimal("10")  # type: ignore[union-attr]

    def test_mixed_currencies_of_one_model_are_rejected(self, tmp_path: Path) -> None:
        with pytest.raises(CatalogueError, match="several currencies"):
            catalogue_from(
                tmp_path,
                "x,m,output_tokens,standard,10,1000000,USD,2025-01-01,,s,,,\n"
                "x,m,input_uncached_tokens,standard,2,1000000,EUR,2025-01-01,,s,,,\n",
            )


class TestOtherBuckets:
    """Per-request, per-image, per-audio-second and per-seat-month prices come from rows of their own."""

    def test_each_unit_is_priced_per_its_row(self, tmp_path: Path) -> None:
        catalogue = catalogue_from(
            tmp_path,
            "x,m,requests,standard,5.00,1000,USD,2025-01-01,,s,,,\n"
            "x,m,images,standard,0.04,1,USD,2025-01-01,,s,,,\n"
            "x,m,audio_seconds,standard,0.36,60,USD,2025-01-01,,s,,,\n"
            "x,m,seat_months,standard,39.00,1,USD,2025-01-01,,s,,,\n",
        )
        event = usage(
            "m",
            {B.REQUESTS: 250, B.IMAGES: 3, B.AUDIO_SECONDS: "90.5", B.SEATS: 2},
            provider="x",
        )
        priced = price_usage(event, catalogue)
        # 250 × 5.00 / 1,000 = 1.25; 3 × 0.04 = 0.12; 90.5 s × 0.36 / 60 = 0.543; 2 × 39.00 = 78
        assert amounts(priced) == {
            B.REQUESTS: Decimal("1.25"),
            B.IMAGES: Decimal("0.12"),
            B.AUDIO_SECONDS: Decimal("0.543"),
            B.SEATS: Decimal("78"),
        }
        assert priced.cost.amount == Decimal("79.913")  # type: ignore[union-attr]

    def test_unknown_bucket_names_the_allowed_ones(self, tmp_path: Path) -> None:
        with pytest.raises(CatalogueError, match="line 2: bucket: unknown bucket 'tokens'; allowed: input_uncached"):
            catalogue_from(tmp_path, "x,m,tokens,standard,1,1,USD,2025-01-01,,s,,,\n")


@pytest.mark.parametrize(
    ("tenant", "message"),
    [
        ("time_zone: Mars/Olympus", "time_zone: unknown IANA time zone 'Mars/Olympus'"),
        ("reporting_currency: usd", "reporting_currency: must be an ISO 4217 code"),
        ("colour: red", "unknown keys colour"),
        ("contracts: [{id: a, provider: openai}]", r"contracts\[0\].starts: missing"),
        ("contracts: [{id: a, provider: openai, starts: 2025-06-01, ends: 2025-01-01}]", "ends: must be after starts"),
        (
            'contracts: [{id: a, provider: openai, starts: 2025-01-01, discount_percent: "100"}]',
            "discount_percent: must be above 0 and below 100",
        ),
        (
            "contracts: [{id: a, provider: openai, starts: 2025-01-01,"
            ' credits: [{id: c, applied_on: 2025-01-01, amount: "5", currency: USD}]}]',
            r"credits\[0\].amount: a credit must be negative",
        ),
        (
            "custom_prices: [{provider: x, model: m, bucket: output_tokens, service_tier: standard, unit_price: one,"
            " price_per: 1, currency: USD, effective_from: 2025-01-01}]",
            r"custom_prices\[0\]: unit_price: not a number",
        ),
    ],
)
def test_invalid_terms_name_the_field(tmp_path: Path, tenant: str, message: str) -> None:
    path = tmp_path / "terms.yaml"
    path.write_text(f"tenants:\n  acme:\n    {tenant}\n")
    with pytest.raises(TermsError, match=message):
        load_terms(path)
