"""Allocation over the real pipeline: contract prices, credits, split costs, reconciliation, showback and FOCUS.

Tenant allocation-it has terms (tests/fixtures/allocation_terms.yaml): 10 % off gpt-5, a negotiated gpt-5-mini
output price of 1.80 USD per 1M tokens, a credit of -1.00 USD, and the America/New_York time zone.
"""

from __future__ import annotations

import csv
import io
import json
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from aifinops.demo import SAMPLE_FILES, feed_provider_costs
from aifinops.report import build_report
from aifinops.stack import Stack
from services.allocation.commands import reload_prices
from services.allocation.focus import FOCUS_COLUMNS, focus_csv, focus_rows
from services.allocation.ledger import LEDGER
from services.allocation.repricing import credit_usage_id
from services.allocation.settings import AllocationSettings
from services.allocation.shares import quantum_for
from services.allocation.showback import build_showback
from services.ingest.batch import import_file
from shared.db import Database
from tests.conftest import EXAMPLES, ROOT

pytestmark = pytest.mark.integration

TENANT = "allocation-it"

# document-ai, OpenAI dashboard export (USD per 1M tokens), with the tenant's contract:
#   2025-10-05 gpt-4o      53,440 × 2.50 + 5,760 × 1.25 + 10,646 × 10.00 (no discount)    = 0.24726
#   2025-10-06 gpt-5       (38,072 × 1.25 + 8,192 × 0.125 + 60,000 × 10.00) × 0.9        = 0.5837526
#   2025-10-06 gpt-5       (5,783 × 1.25 + 16,000 × 10.00) × 0.9                          = 0.150505875
#   2025-10-07 gpt-5-mini  80,992 × 0.25 + 274,770 × 1.80 (contract output price)         = 0.514834
#   2025-10-10 gpt-5-mini  124,784 × 0.25 + 154,852 × 1.80                                = 0.3099296
#   2025-10-11 gpt-5-mini  22,688 × 0.25 + 33,191 × 1.80                                  = 0.0654158
DOCUMENT_AI = Decimal("1.871697875")
# Oracle FOCUS rows (usage 0.26507392473 and adjustments 0.272) split 70/30 by the oracle-tenancy pool
ORACLE = Decimal("0.53707392473")


@pytest.fixture(scope="module")
async def report(stack: Stack) -> dict[str, Any]:
    # The sample files only: outcome ids in the demo's outcomes file are not tenant-scoped, so posting them
    # for a second tenant would take them from the pipeline tests' tenant.
    for name in SAMPLE_FILES:
        await import_file(EXAMPLES / "data" / name, settings=stack.settings(), tenant=TENANT)
    await feed_provider_costs(stack, TENANT, lambda *_args, **_kwargs: None)
    await stack.wait_until_drained()
    return (await build_report(stack.settings(), TENANT)).as_json()


def usd(values: dict[str, str]) -> Decimal:
    assert set(values) == {"USD"}
    return Decimal(values["USD"])


async def test_contract_prices_apply(report: dict[str, Any]) -> None:
    assert usd(report["spend_by_team"]["document-ai"]) == DOCUMENT_AI


async def test_credit_is_its_own_line(report: dict[str, Any]) -> None:
    # FOCUS credit -2.6137 and refunds -0.1619713001, the contract credit -1.00, and the constructed bills' own:
    # CUR credit and discount -5.25, Azure refund -1.5, Google Cloud credit -0.5
    focus = Decimal("-2.61370000000") + Decimal("-0.16197130010")
    constructed = Decimal("-5.25") + Decimal("-1.5") + Decimal("-0.5")
    assert usd(report["credits_and_refunds"]) == focus + Decimal("-1") + constructed


async def test_shared_cost_split_adds_up(report: dict[str, Any], stack: Stack) -> None:
    teams = report["spend_by_team"]
    assert usd(teams["data-platform"]) + usd(teams["shared-services"]) == ORACLE
    database = Database(stack.settings().database_url_for("allocation"))
    try:
        async with database.engine.connect() as connection:
            rows = (
                await connection.execute(
                    select(LEDGER).where(LEDGER.c.tenant == TENANT, LEDGER.c.split_pool == "oracle-tenancy")
                )
            ).all()
    finally:
        await database.dispose()
    assert len(rows) == 7
    for row in rows:
        shares = json.loads(row.shares_json)
        amounts = [Decimal(share["amount"]["amount"]) for share in shares]
        assert sum(amounts) == row.cost_amount
        assert [share["fraction"] for share in shares] == ["0.7", "0.3"]
        # each line splits 70/30 by largest remainder at the currency's cent or the line's own last place
        assert abs(amounts[0] - row.cost_amount * Decimal("0.7")) < quantum_for([row.cost_amount], "USD")


async def test_reconciliation_shows_variance(report: dict[str, Any]) -> None:
    rows = {row["day"]: row for row in report["reconciliation"]}
    # 2025-10-10: OpenAI charged 0.3409 at list price; the contract price gives 0.3099296 → 0.0309704 more
    assert Decimal(rows["2025-10-10"]["variance"]) == Decimal("0.0309704")
    assert rows["2025-10-10"]["within_tolerance"] is False
    assert Decimal(rows["2025-10-08"]["computed"]) == 0
    assert "no usage was imported" in rows["2025-10-08"]["likely_cause"]


async def test_unallocated_spend_is_reported(report: dict[str, Any]) -> None:
    # everything the rules do not own: total spend minus the owned teams' spend
    owned = sum((usd(values) for team, values in report["spend_by_team"].items() if team != "unallocated"), Decimal(0))
    assert usd(report["unallocated_spend"]) == usd(report["spend"]) - owned
    assert usd(report["unallocated_spend"]) > 0


async def test_showback_by_team_and_month(stack: Stack) -> None:
    database = Database(stack.settings().database_url_for("allocation"))
    try:
        result = await build_showback(
            database, TENANT, dimensions=["team"], period="month", zone=ZoneInfo("America/New_York")
        )
    finally:
        await database.dispose()
    # the dashboard's UTC days count on the New York day of their middle (08:00 local): all in 2025-10
    assert result.totals[("2025-10", ("document-ai",), "USD")] == DOCUMENT_AI


async def test_focus_export(stack: Stack, tmp_path: Path) -> None:
    database = Database(stack.settings().database_url_for("allocation"))
    try:
        rows = await focus_rows(database, TENANT)
    finally:
        await database.dispose()
    parsed = list(csv.DictReader(io.StringIO(focus_csv(rows))))
    assert set(FOCUS_COLUMNS) <= set(parsed[0])
    document_ai = [row for row in parsed if row["x_Team"] == "document-ai"]
    assert sum(Decimal(row["BilledCost"]) for row in document_ai) == DOCUMENT_AI
    output = next(
        row
        for row in document_ai
        if row["SkuId"] == "openai/gpt-5/standard/output_tokens" and row["ConsumedQuantity"] == "60000"
    )
    # 60,000 output tokens: list 10.00 × 0.06 = 0.6, contracted 9.00 × 0.06 = 0.54
    assert (output["PricingQuantity"], output["PricingUnit"]) == ("0.06", "1000000 Tokens")
    assert (output["ListUnitPrice"], output["ListCost"]) == ("10", "0.6")
    assert (output["ContractedUnitPrice"], output["ContractedCost"], output["BilledCost"]) == ("9", "0.54", "0.54")
    assert output["ChargeCategory"] == "Usage"
    assert output["ChargeClass"] == ""
    credit = next(
        row for row in parsed if row["x_UsageEventId"] == credit_usage_id(TENANT, "openai-enterprise", "onboarding")
    )
    assert (credit["ChargeCategory"], credit["BilledCost"], credit["ListCost"]) == ("Credit", "-1", "-1")
    for row in parsed:
        check_focus_row(row)


NOT_NULL = (
    "BilledCost",
    "BillingAccountId",
    "BillingCurrency",
    "BillingPeriodEnd",
    "BillingPeriodStart",
    "ChargeCategory",
    "ChargeDescription",
    "ChargeFrequency",
    "ChargePeriodEnd",
    "ChargePeriodStart",
    "ContractedCost",
    "EffectiveCost",
    "InvoiceIssuerName",
    "ListCost",
    "ProviderName",
    "PublisherName",
    "ServiceCategory",
    "ServiceName",
)


def check_focus_row(row: dict[str, str]) -> None:
    """Check the FOCUS 1.2 rules the export promises: nullability, allowed values, formats and products."""
    for column in NOT_NULL:
        assert row[column] != "", column
    assert row["ChargeCategory"] in ("Usage", "Purchase", "Tax", "Credit", "Adjustment")
    assert row["ChargeClass"] in ("", "Correction")
    assert row["ChargeFrequency"] in ("One-Time", "Recurring", "Usage-Based")
    for column in ("BillingPeriodStart", "BillingPeriodEnd", "ChargePeriodStart", "ChargePeriodEnd"):
        assert datetime.strptime(row[column], "%Y-%m-%dT%H:%M:%SZ"), column
    assert row["ChargePeriodStart"] <= row["ChargePeriodEnd"]
    assert isinstance(json.loads(row["Tags"]), dict)
    for column in ("BilledCost", "EffectiveCost", "ListCost", "ContractedCost"):
        assert "E" not in row[column] and "," not in row[column], column
        Decimal(row[column])
    priced = row["ChargeCategory"] in ("Usage", "Purchase") and row["ChargeClass"] == ""
    if priced:
        assert row["PricingQuantity"] != ""
        assert row["PricingUnit"] != ""
        assert row["ListUnitPrice"] != ""
        assert row["ContractedUnitPrice"] != ""
        assert row["PricingCategory"] in ("Standard", "Dynamic", "Committed", "Other")
    if row["ChargeCategory"] == "Tax":
        assert row["PricingQuantity"] == ""
    if row["ConsumedQuantity"] != "":
        assert row["ChargeCategory"] == "Usage"
        assert row["ConsumedUnit"] != ""
    if row["SkuPriceId"] and priced:
        list_product = Decimal(row["ListUnitPrice"]) * Decimal(row["PricingQuantity"])
        assert list_product == Decimal(row["ListCost"])


async def test_prices_reload_publishes_corrections(stack: Stack, report: dict[str, Any], tmp_path: Path) -> None:
    # The contract's gpt-5 discount rises from 10 % to 20 %; `aifinops prices reload` re-prices the two gpt-5 rows.
    terms = tmp_path / "terms.yaml"
    terms.write_text((ROOT / "tests" / "fixtures" / "allocation_terms.yaml").read_text().replace('"10"', '"20"'))
    base = stack.settings()
    settings = AllocationSettings(
        KAFKA_BOOTSTRAP_SERVERS=base.kafka_bootstrap_servers,
        DATABASE_URL=base.database_url,
        AIFINOPS_DATA_DIR=str(base.data_dir),
        ALLOCATION_TERMS_FILE=str(terms),
        ALLOCATION_RULES_FILE=str(EXAMPLES / "config" / "allocation_rules.yaml"),
    )
    result = await reload_prices(settings)
    assert result.sweep.corrected == 2
    await stack.wait_until_drained()

    after = (await build_report(stack.settings(), TENANT)).as_json()
    # (0.648614 + 0.16722875) list × 10 % more off = 0.081584275 less: 1.871697875 − 0.081584275 = 1.7901136
    assert usd(after["spend_by_team"]["document-ai"]) == Decimal("1.7901136")
    again = await reload_prices(settings)
    assert again.sweep.examined == 0
