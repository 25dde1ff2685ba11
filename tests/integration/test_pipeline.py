"""The whole pipeline over the real broker and database, checked to the cent against hand-worked totals.

The samples go in through their real entry points (file import, webhook, outcomes
API) exactly as the demo sends them; the figures below are worked out from the
sample rows by hand.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from aifinops.demo import feed_samples
from aifinops.report import build_report
from aifinops.stack import Stack
from services.ingest.batch import import_file
from services.ingest.replay import replay_usage_events
from tests.conftest import EXAMPLES

pytestmark = pytest.mark.integration

TENANT = "pipeline"

# document-ai, OpenAI dashboard export, October 2025 (USD per 1M tokens from the catalogue):
#   2025-10-05 gpt-4o      53,440 × 2.50 + 5,760 × 1.25 + 10,646 × 10.00           = 0.24726
#   2025-10-06 gpt-5       38,072 × 1.25 + 8,192 × 0.125 + 60,000 × 10.00          = 0.648614
#   2025-10-06 gpt-5        5,783 × 1.25 + 16,000 × 10.00                           = 0.16722875
#   2025-10-07 gpt-5-mini  80,992 × 0.25 + 274,770 × 2.00                           = 0.569788
#   2025-10-10 gpt-5-mini 124,784 × 0.25 + 154,852 × 2.00                           = 0.3409
#   2025-10-11 gpt-5-mini  22,688 × 0.25 + 33,191 × 2.00                            = 0.072054
DOCUMENT_AI = Decimal("2.04584475")
# customer-support, webhook sample, November 2026:
#   claude-opus-4-6   1,250,000 × 5 + 4,800,000 × 0.50 + 300,000 × 6.25 + 410,000 × 25, + 120 searches × 10/1000
#                     = 6.25 + 2.40 + 1.875 + 10.25 + 1.20 = 21.975
#   claude-sonnet-4-5 900,000 × 3 + 5,100,000 × 0.30 + 200,000 × 6.00 (1 h writes) + 380,000 × 15
#                     = 2.70 + 1.53 + 1.20 + 5.70 = 11.13
CUSTOMER_SUPPORT = Decimal("33.105")
# ml-platform: FOCUS rows tagged application=BrightPathMatrix (data rows 6, 10, 11, 16, 84, 97, 110, 117, 120,
# 124, 134, 137): 0 + 0.000007809 + 0.0003148054 + 0.34 + 5 × 1.624 + 0.480884264 + 1.110635736 + 0.492162944
ML_PLATFORM = Decimal("10.5440055584")
# data-science: Azure ML rows tagged ComputeType=Compute Instance with positive cost (rows 168, 174, 178, 194):
# 0.00000000503 + 0.005 + 0.00000000729 + 0.005; its negative rows are refunds, reported apart.
DATA_SCIENCE = Decimal("0.01000001232")
# FOCUS column sums by provider and charge category:
AWS_USAGE = Decimal("11.57026793950")
AZURE_USAGE = Decimal("2.13848548596")
ORACLE_USAGE_AND_ADJUSTMENTS = Decimal("0.26507392473") + Decimal("0.27200000000")
CREDITS_AND_REFUNDS = Decimal("-2.61370000000") + Decimal("-0.16197130010")


@pytest.fixture(scope="module")
async def report(stack: Stack) -> dict[str, Any]:
    await feed_samples(stack, TENANT, lambda *_args, **_kwargs: None)
    await stack.wait_until_drained()
    return (await build_report(stack.settings(), TENANT)).as_json()


def usd(values: dict[str, str]) -> Decimal:
    assert set(values) == {"USD"}
    return Decimal(values["USD"])


async def test_spend_by_team(report: dict[str, Any]) -> None:
    teams = report["spend_by_team"]
    assert usd(teams["document-ai"]) == DOCUMENT_AI
    assert usd(teams["customer-support"]) == CUSTOMER_SUPPORT
    assert usd(teams["ml-platform"]) == ML_PLATFORM
    assert usd(teams["data-science"]) == DATA_SCIENCE


async def test_spend_by_provider(report: dict[str, Any]) -> None:
    providers = report["spend_by_provider"]
    assert usd(providers["openai"]) == DOCUMENT_AI
    assert usd(providers["anthropic"]) == CUSTOMER_SUPPORT
    assert usd(providers["aws"]) == AWS_USAGE
    assert usd(providers["azure"]) == AZURE_USAGE
    assert usd(providers["oracle"]) == ORACLE_USAGE_AND_ADJUSTMENTS


async def test_ledger_totals(report: dict[str, Any]) -> None:
    expected = DOCUMENT_AI + CUSTOMER_SUPPORT + AWS_USAGE + AZURE_USAGE + ORACLE_USAGE_AND_ADJUSTMENTS
    assert expected == Decimal("49.39667210019")
    assert usd(report["spend"]) == expected
    assert usd(report["credits_and_refunds"]) == CREDITS_AND_REFUNDS
    # 1 spec example + 26 cookbook + 6 dashboard + 1 Anthropic example + 200 FOCUS + 2 webhook results
    assert report["cost_events"] == 236
    assert report["priced_events"] == 8
    assert report["provider_billed_events"] == 200
    # 27 OpenAI results without a model, and the Anthropic example dated before its model's prices
    assert report["unpriced_events"] == 28


async def test_findings(report: dict[str, Any]) -> None:
    by_key = {(f["kind"], f["subject"], f["facts"].get("threshold_percent")): f for f in report["findings"]}
    # document-ai spent 2.04584475 of 2.00 in 2025-10: 102.29 %, past both thresholds.
    over = by_key[("budget_threshold", "team:document-ai", "100")]
    assert over["facts"]["spend"] == "2.04584475 USD"
    assert over["facts"]["percent_of_budget"] == "102.29"
    assert ("budget_threshold", "team:document-ai", "80") in by_key
    # customer-support spent 33.105 of 40.00 in 2026-11: 82.76 %, past 80 % only.
    support = by_key[("budget_threshold", "team:customer-support", "80")]
    assert support["facts"]["percent_of_budget"] == "82.76"
    assert ("budget_threshold", "team:customer-support", "100") not in by_key
    # ml-platform spent 10.54 of 25.00: no finding.
    assert not any(subject == "team:ml-platform" for _, subject, _ in by_key)
    unpriced = by_key[("unpriced_usage", "model:openai/(not reported)", None)]
    assert unpriced["facts"]["usage_events"] == "27"
    assert by_key[("unpriced_usage", "model:anthropic/claude-opus-4-6", None)]["facts"]["usage_events"] == "1"
    assert len(report["findings"]) == 5


async def test_unit_economics(report: dict[str, Any]) -> None:
    rows = {(row["use_case"], row["period"]): row for row in report["unit_economics"]}
    documents = rows[("document-extraction", "2025-10")]
    assert Decimal(documents["outcomes"]) == 340  # 140 + 200 documents
    # 2.04584475 / 340 = 0.006017190441..., rounded half-even to 6 places
    assert Decimal(documents["cost_per_outcome"]) == Decimal("0.006017")
    assert Decimal(documents["value"]) == Decimal("170.00")  # 70.00 + 100.00
    tickets = rows[("support-assistant", "2026-11")]
    assert Decimal(tickets["outcomes"]) == 330  # 180 + 150 tickets
    assert Decimal(tickets["cost_per_outcome"]) == Decimal("0.100318")  # 33.105 / 330 = 0.10031818...
    # the model-training use case has spend and no outcomes: listed with no cost per outcome
    training = rows[("model-training", "2024-09")]
    assert training["cost_per_outcome"] is None
    assert Decimal(training["cost"]) == ML_PLATFORM


async def test_recommendations(report: dict[str, Any]) -> None:
    savings = {
        (item["kind"], item["scope"]): Decimal(item["estimated_monthly_savings"]) for item in report["recommendations"]
    }
    assert savings == {
        # hand-worked in tests/unit/test_estimates.py
        ("cheaper_model", "team:document-ai model:openai/gpt-5 tier:standard"): Decimal("0.6526742"),
        ("batch_tier", "team:document-ai use_case:document-extraction model:openai/gpt-5-mini"): Decimal("0.491371"),
        ("batch_tier", "team:document-ai use_case:document-extraction model:openai/gpt-5"): Decimal("0.407921375"),
        # 53,440 × (2.50 − 0.15) + 5,760 × (1.25 − 0.075) + 10,646 × (10 − 0.60), per 1M tokens
        ("cheaper_model", "team:document-ai model:openai/gpt-4o tier:standard"): Decimal("0.2324244"),
        # hand-worked in tests/unit/test_optimizer_estimates.py
        ("prompt_caching", "team:document-ai model:openai/gpt-4o tier:standard"): Decimal("0.02709"),
        ("prompt_caching", "team:document-ai model:openai/gpt-5 tier:standard"): Decimal("0.01823625"),
        ("prompt_caching", "team:document-ai model:openai/gpt-5-mini tier:standard"): Decimal("0.023365575"),
    }


async def test_reimport_and_replay_change_nothing(stack: Stack, report: dict[str, Any]) -> None:
    again = await import_file(
        EXAMPLES / "data" / "focus_1.0_sample_trimmed.csv", settings=stack.settings(), tenant=TENANT
    )
    assert again.summary.accepted == 0
    assert again.summary.duplicates == 200
    replayed = await replay_usage_events(stack.settings())
    assert replayed >= 235  # every stored usage event of every tenant is sent again
    await stack.wait_until_drained()
    after = (await build_report(stack.settings(), TENANT)).as_json()
    assert after["spend"] == report["spend"]
    assert after["spend_by_team"] == report["spend_by_team"]
    assert after["cost_events"] == report["cost_events"]
    assert [f["finding_id"] for f in after["findings"]] == [f["finding_id"] for f in report["findings"]]
    assert after["recommendations"] == report["recommendations"]
