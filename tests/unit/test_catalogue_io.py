"""Catalogue export and LiteLLM price-map import, checked against the real price map excerpt."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

from services.allocation.commands import import_litellm
from services.allocation.litellm import merge_rows, read_price_map
from shared.catalogue import PriceCatalogue, aliases_csv, price_rows_csv
from shared.events import ServiceTier, UsageBucket

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
PRICE_MAP = FIXTURES / "litellm_model_prices_excerpt.json"
DAY = datetime(2026, 12, 1, tzinfo=UTC)
B = UsageBucket


def test_export_reads_back_unchanged(tmp_path: Path) -> None:
    catalogue = PriceCatalogue.load()
    prices, aliases = tmp_path / "prices.csv", tmp_path / "aliases.csv"
    prices.write_text(price_rows_csv(catalogue.all_rows(), "exported"))
    aliases.write_text(aliases_csv(catalogue.aliases))
    again = PriceCatalogue.load(prices, aliases)
    assert again.all_rows() == catalogue.all_rows()
    assert again.aliases == catalogue.aliases


def test_litellm_prices_per_token_become_exact_per_million() -> None:
    imported = read_price_map(PRICE_MAP, effective_from=DAY)
    rows = {(row.provider, row.model, row.service_tier, row.bucket, row.context_over): row for row in imported.rows}
    # 2.5e-06 USD per token × 1,000,000 = 2.50 exactly, with no float residue
    assert rows[("openai", "gpt-4o", ServiceTier.STANDARD, B.INPUT_UNCACHED_TOKENS, None)].unit_price == Decimal("2.5")
    assert rows[("openai", "gpt-4o", ServiceTier.BATCH, B.OUTPUT_TOKENS, None)].unit_price == Decimal("5")
    assert rows[("openai", "gpt-4o", ServiceTier.PRIORITY, B.CACHE_READ_TOKENS, None)].unit_price == Decimal("2.125")
    sonnet = ("anthropic", "claude-sonnet-4-5", ServiceTier.STANDARD)
    assert rows[(*sonnet, B.CACHE_WRITE_TOKENS, None)].unit_price == Decimal("3.75")
    assert rows[(*sonnet, B.CACHE_WRITE_1H_TOKENS, None)].unit_price == Decimal("6")
    # the Bedrock cross-region profile is 10 % dearer and has a long-context tier above 200,000 tokens
    bedrock = ("aws", "us.anthropic.claude-sonnet-4-5-20250929-v1:0", ServiceTier.STANDARD, B.INPUT_UNCACHED_TOKENS)
    assert rows[(*bedrock, None)].unit_price == Decimal("3.3")
    assert rows[(*bedrock, 200_000)].unit_price == Decimal("6.6")
    assert ("google", "claude-3-5-sonnet", ServiceTier.STANDARD, B.OUTPUT_TOKENS, None) in rows
    assert "search_context_cost_per_query" not in str(imported.skipped)  # nested objects are not prices
    assert imported.skipped["gemini-2.5-pro"] == ["google_maps_grounding_cost_per_query"]


def test_merge_closes_changed_rows_at_import_date(tmp_path: Path) -> None:
    existing = PriceCatalogue.load().all_rows()
    imported = [
        row
        for row in read_price_map(PRICE_MAP, effective_from=DAY, providers={"openai"}).rows
        if row.model == "gpt-4o-mini"
    ]
    cheaper = [row.__class__(**{**_fields(row), "unit_price": Decimal("0.12")}) for row in imported[:1]]
    merged, summary = merge_rows(existing, cheaper)
    assert summary.changed == 1
    history = sorted(
        (
            row
            for row in merged
            if (row.model, row.service_tier, row.bucket) == ("gpt-4o-mini", ServiceTier.STANDARD, cheaper[0].bucket)
        ),
        key=lambda row: row.effective_from,
    )
    assert [row.unit_price for row in history][-1] == Decimal("0.12")
    assert history[-2].effective_to == DAY  # the old price stays in force for usage before the import date


def _fields(row: object) -> dict[str, object]:
    return {name: getattr(row, name) for name in row.__slots__}  # type: ignore[attr-defined]


def test_import_rejects_models_that_fail_validation(tmp_path: Path) -> None:
    output = tmp_path / "merged.csv"
    summary, _skipped, read = import_litellm(
        PRICE_MAP, None, effective_from=date(2026, 12, 1), providers=None, output=output
    )
    assert read > 0
    # gemini-2.5-pro has a long-context cache-write price but no base cache-write price
    assert "needs a base row" in summary.rejected["google/gemini-2.5-pro"]
    merged = PriceCatalogue.load(output)
    assert merged.resolve_model("anthropic", "claude-sonnet-4-5") == "claude-sonnet-4-5"
    assert ("google", "gemini-2.5-pro") not in merged.models()
