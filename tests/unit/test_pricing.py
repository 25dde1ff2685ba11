"""Pricing from the catalogue, checked against arithmetic worked by hand from named sample rows."""

from __future__ import annotations

import io
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from services.allocation.pricing import price_usage
from services.ingest.normalisers import NORMALISERS, ImportContext
from shared.catalogue import CatalogueError, PriceCatalogue
from shared.events import (
    ChargeCategory,
    CostStatus,
    Evidence,
    Money,
    PricingBasis,
    ServiceTier,
    UsageBucket,
    UsageDimensions,
    UsageRecorded,
)
from tests.conftest import EXAMPLES

B = UsageBucket
CATALOGUE = PriceCatalogue.load()


def dashboard_events() -> list[UsageRecorded]:
    data = (EXAMPLES / "data" / "dashboard_export_usage_completions.tsv").read_bytes()
    context = ImportContext(tenant="acme", correlation_id="test", received_at=datetime(2026, 1, 1, tzinfo=UTC))
    rows = NORMALISERS["openai-dashboard-usage"].rows(io.BytesIO(data), context)
    return [row.event for row in rows if row.event]


def usage(
    model: str | None,
    quantities: dict[UsageBucket, int],
    *,
    provider: str = "openai",
    tier: ServiceTier = ServiceTier.STANDARD,
    at: datetime = datetime(2025, 10, 5, tzinfo=UTC),
) -> UsageRecorded:
    return UsageRecorded(
        event_id="e1",
        occurred_at=at,
        source="test",
        tenant="acme",
        correlation_id="c",
        provider=provider,
        model=model,
        service_tier=tier,
        period_start=at,
        period_end=at,
        dimensions=UsageDimensions(),
        quantities={bucket: Decimal(count) for bucket, count in quantities.items()},
        evidence=Evidence(format="test"),
    )


class TestDashboardRows:
    def test_gpt_4o_row_one(self) -> None:
        priced = price_usage(dashboard_events()[0], CATALOGUE)
        assert priced.status is CostStatus.PRICED
        assert priced.priced_model == "gpt-4o"  # through the alias gpt-4o-2024-08-06
        amounts = {line.bucket: line.amount.amount for line in priced.lines}
        assert amounts[B.INPUT_UNCACHED_TOKENS] == Decimal("0.1336")  # 53,440 × 2.50 / 1,000,000
        assert amounts[B.CACHE_READ_TOKENS] == Decimal("0.0072")  # 5,760 × 1.25 / 1,000,000
        assert amounts[B.OUTPUT_TOKENS] == Decimal("0.10646")  # 10,646 × 10.00 / 1,000,000
        assert priced.cost == Money(amount=Decimal("0.24726"), currency="USD")  # 0.1336 + 0.0072 + 0.10646

    def test_gpt_5_mini_matches_openai_daily_cost(self) -> None:
        # 2025-10-07: 80,992 × 0.25 / 1e6 = 0.020248; 274,770 × 2.00 / 1e6 = 0.54954; sum 0.569788,
        # which is also what OpenAI's own daily cost export shows for that day.
        event = dashboard_events()[3]
        assert event.period_start == datetime(2025, 10, 7, tzinfo=UTC)
        priced = price_usage(event, CATALOGUE)
        assert priced.cost is not None
        assert priced.cost.amount == Decimal("0.569788")

    def test_every_line_names_its_price_row(self) -> None:
        priced = price_usage(dashboard_events()[1], CATALOGUE)  # gpt-5, 2025-10-06
        assert {line.price_row_id for line in priced.lines} == {
            "openai/gpt-5/standard/input_uncached_tokens/2025-08-07",
            "openai/gpt-5/standard/cache_read_tokens/2025-08-07",
            "openai/gpt-5/standard/output_tokens/2025-08-07",
        }
        # 38,072 × 1.25/1e6 = 0.04759; 8,192 × 0.125/1e6 = 0.001024; 60,000 × 10/1e6 = 0.6 → 0.648614
        assert priced.cost is not None
        assert priced.cost.amount == Decimal("0.648614")

    def test_all_six_rows_total(self) -> None:
        total = sum((price_usage(event, CATALOGUE).cost.amount for event in dashboard_events()), Decimal(0))  # type: ignore[union-attr]
        # 0.24726 + 0.648614 + 0.16722875 + 0.569788 + 0.3409 + 0.072054
        assert total == Decimal("2.04584475")


class TestUnpriced:
    def test_model_not_reported(self) -> None:
        priced = price_usage(usage(None, {B.OUTPUT_TOKENS: 10}), CATALOGUE)
        assert priced.status is CostStatus.UNPRICED
        assert priced.cost is None
        assert "did not report a model" in (priced.unpriced_reason or "")

    def test_unknown_model_is_never_zero(self) -> None:
        priced = price_usage(usage("gpt-9-ultra", {B.OUTPUT_TOKENS: 10}), CATALOGUE)
        assert priced.status is CostStatus.UNPRICED
        assert priced.cost is None
        assert "gpt-9-ultra" in (priced.unpriced_reason or "")

    def test_no_substring_match(self) -> None:
        priced = price_usage(usage("openrouter/gpt-4o", {B.OUTPUT_TOKENS: 10}), CATALOGUE)
        assert priced.status is CostStatus.UNPRICED

    def test_usage_before_prices_start(self) -> None:
        priced = price_usage(
            usage("claude-opus-4-6", {B.OUTPUT_TOKENS: 500}, provider="anthropic", at=datetime(2025, 8, 1, tzinfo=UTC)),
            CATALOGUE,
        )
        assert priced.status is CostStatus.UNPRICED
        assert "start 2026-02-05" in (priced.unpriced_reason or "")

    def test_missing_bucket_price_is_not_a_fallback(self) -> None:
        # The catalogue has no batch-tier cache-read price for gpt-4o, so the whole line stays unpriced.
        priced = price_usage(
            usage("gpt-4o", {B.CACHE_READ_TOKENS: 100, B.OUTPUT_TOKENS: 10}, tier=ServiceTier.BATCH), CATALOGUE
        )
        assert priced.status is CostStatus.UNPRICED
        assert "cache_read_tokens" in (priced.unpriced_reason or "")


class TestOtherCases:
    def test_anthropic_webhook_sample(self) -> None:
        event = usage(
            "claude-opus-4-6",
            {
                B.INPUT_UNCACHED_TOKENS: 1_250_000,
                B.CACHE_READ_TOKENS: 4_800_000,
                B.CACHE_WRITE_TOKENS: 300_000,
                B.OUTPUT_TOKENS: 410_000,
                B.WEB_SEARCH_CALLS: 120,
            },
            provider="anthropic",
            at=datetime(2026, 11, 2, tzinfo=UTC),
        )
        priced = price_usage(event, CATALOGUE)
        # 1,250,000 × 5/1e6 = 6.25; 4,800,000 × 0.50/1e6 = 2.40; 300,000 × 6.25/1e6 = 1.875;
        # 410,000 × 25/1e6 = 10.25; 120 searches × 10/1,000 = 1.20; total 21.975
        assert priced.cost == Money(amount=Decimal("21.975"), currency="USD")

    def test_reasoning_takes_output_rate(self) -> None:
        priced = price_usage(usage("gpt-5", {B.REASONING_TOKENS: 1000}), CATALOGUE)
        assert priced.cost is not None
        assert priced.cost.amount == Decimal("0.01")  # 1,000 × 10.00 / 1,000,000

    def test_batch_tier_price(self) -> None:
        priced = price_usage(usage("gpt-5-mini", {B.OUTPUT_TOKENS: 1_000_000}, tier=ServiceTier.BATCH), CATALOGUE)
        assert priced.cost is not None
        assert priced.cost.amount == Decimal("1")  # 1,000,000 × 1.00 / 1,000,000

    def test_usage_report_cost_is_not_the_cost(self) -> None:
        # A usage report's own cost figure is for reconciliation; without quantities nothing is priced.
        event = usage("gpt-5", {}).model_copy(update={"provider_cost": Money(amount=Decimal("9"), currency="USD")})
        priced = price_usage(event, CATALOGUE)
        assert priced.status is CostStatus.UNPRICED
        assert priced.cost is None

    def test_provider_billed_line(self) -> None:
        # A bill line keeps its billed cost even when it also states a quantity.
        event = usage(None, {B.GPU_SECONDS: 3600}).model_copy(
            update={
                "provider_cost": Money(amount=Decimal("1.624"), currency="USD"),
                "charge_category": ChargeCategory.USAGE,
                "pricing_basis": PricingBasis.PROVIDER_BILLED,
            }
        )
        priced = price_usage(event, CATALOGUE)
        assert priced.status is CostStatus.PROVIDER_BILLED
        assert priced.cost == Money(amount=Decimal("1.624"), currency="USD")

    def test_all_zero_usage_costs_zero(self) -> None:
        priced = price_usage(usage("gpt-5", {B.INPUT_UNCACHED_TOKENS: 0, B.OUTPUT_TOKENS: 0}), CATALOGUE)
        assert priced.status is CostStatus.PRICED
        assert priced.cost == Money(amount=Decimal(0), currency="USD")


HEADER = "provider,model,bucket,service_tier,unit_price,price_per,currency,effective_from,effective_to,source\n"


def catalogue_from(tmp_path: Path, rows: str, aliases: str = "provider,alias,model\n") -> PriceCatalogue:
    prices = tmp_path / "prices.csv"
    prices.write_text(HEADER + rows)
    alias_file = tmp_path / "aliases.csv"
    alias_file.write_text(aliases)
    return PriceCatalogue.load(prices, alias_file)


class TestCatalogueValidation:
    def test_overlapping_rows(self, tmp_path: Path) -> None:
        rows = (
            "x,m,output_tokens,standard,1,1000000,USD,2025-01-01,,s\n"
            "x,m,output_tokens,standard,2,1000000,USD,2025-06-01,,s\n"
        )
        with pytest.raises(CatalogueError, match="overlap"):
            catalogue_from(tmp_path, rows)

    def test_cache_read_dearer_than_input(self, tmp_path: Path) -> None:
        rows = (
            "x,m,input_uncached_tokens,standard,1,1000000,USD,2025-01-01,,s\n"
            "x,m,cache_read_tokens,standard,2,1000000,USD,2025-01-01,,s\n"
        )
        with pytest.raises(CatalogueError, match="cache read"):
            catalogue_from(tmp_path, rows)

    def test_batch_dearer_than_standard(self, tmp_path: Path) -> None:
        rows = (
            "x,m,output_tokens,standard,1,1000000,USD,2025-01-01,,s\n"
            "x,m,output_tokens,batch,3,1000000,USD,2025-01-01,,s\n"
        )
        with pytest.raises(CatalogueError, match="batch price"):
            catalogue_from(tmp_path, rows)

    def test_bad_price_names_the_line(self, tmp_path: Path) -> None:
        with pytest.raises(CatalogueError, match="line 2: unit_price"):
            catalogue_from(tmp_path, "x,m,output_tokens,standard,cheap,1000000,USD,2025-01-01,,s\n")

    def test_alias_to_unknown_model(self, tmp_path: Path) -> None:
        with pytest.raises(CatalogueError, match="has no prices"):
            catalogue_from(
                tmp_path,
                "x,m,output_tokens,standard,1,1000000,USD,2025-01-01,,s\n",
                "provider,alias,model\nx,m-2025,other\n",
            )

    def test_consecutive_ranges_are_fine(self, tmp_path: Path) -> None:
        rows = (
            "x,m,output_tokens,standard,1,1000000,USD,2025-01-01,2025-06-01,s\n"
            "x,m,output_tokens,standard,2,1000000,USD,2025-06-01,,s\n"
        )
        catalogue = catalogue_from(tmp_path, rows)
        may = catalogue.price("x", "m", ServiceTier.STANDARD, B.OUTPUT_TOKENS, datetime(2025, 5, 31, tzinfo=UTC))
        june = catalogue.price("x", "m", ServiceTier.STANDARD, B.OUTPUT_TOKENS, datetime(2025, 6, 1, tzinfo=UTC))
        assert may is not None and may.unit_price == 1
        assert june is not None and june.unit_price == 2

    def test_shipped_catalogue_covers_sample_models(self) -> None:
        for provider, model in [
            ("openai", "gpt-4o-2024-08-06"),
            ("openai", "gpt-5-2025-08-07"),
            ("openai", "gpt-5-mini-2025-08-07"),
            ("anthropic", "claude-opus-4-6"),
            ("anthropic", "claude-sonnet-4-5-20250929"),
        ]:
            assert CATALOGUE.resolve_model(provider, model) is not None, model
