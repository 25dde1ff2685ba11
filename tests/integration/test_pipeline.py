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
# Constructed bills, all unallocated (no rule matches their tags):
#   CUR 2.0: usage 0.072 + 0.072 + 0.375 + 1.0 + 1.0 + 0.3 + 16.24 + 0 (covered by the savings plan) = 19.059,
#            savings-plan fee 7.0, tax 1.5; credit -5.0 and EDP discount -0.25
CUR_SPEND = Decimal("27.559")
CUR_CREDITS = Decimal("-5.25")
#   Azure: usage 3.0 + 1.5 + 2.0 + 0.05 = 6.55, reservation purchase 286.0 = 292.55; refund -1.5. The unused
#   reservation line (9.53333) is part of the purchase in this actual-cost file, so it is not spend again.
AZURE_EXPORT_SPEND = Decimal("292.55")
AZURE_EXPORT_REFUNDS = Decimal("-1.5")
#   Google Cloud: usage 2.5 + 10.0 + 0.03 = 12.53, adjustment -0.4; free-trial credit -0.5
GCP_SPEND = Decimal("12.13")
GCP_CREDITS = Decimal("-0.5")
#   CloudEvents from the in-house GPU cluster, billed: 64.00 + 1.50
IN_HOUSE_SPEND = Decimal("65.50")
# LiteLLM spend log, gpt-4o on 2025-01-24, priced from the catalogue: 10 x 2.50 + 20 x 10.00 per 1M tokens
LITELLM_GPT_4O = Decimal("0.000225")


# Seat and GPU samples the demo leaves out (it has its own seat and GPU reports), imported here through ingest.
SEAT_AND_GPU_FILES = ("github_copilot_billing_seats_list.json", "dcgm_exporter_scrapes_constructed.prom")


@pytest.fixture(scope="module")
async def report(stack: Stack) -> dict[str, Any]:
    await feed_samples(stack, TENANT, lambda *_args, **_kwargs: None)
    for name in SEAT_AND_GPU_FILES:
        await import_file(EXAMPLES / "data" / name, settings=stack.settings(), tenant=TENANT)
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
    assert usd(providers["openai"]) == DOCUMENT_AI + LITELLM_GPT_4O
    assert usd(providers["anthropic"]) == CUSTOMER_SUPPORT
    assert usd(providers["aws"]) == AWS_USAGE + CUR_SPEND
    assert usd(providers["azure"]) == AZURE_USAGE + AZURE_EXPORT_SPEND
    assert usd(providers["oracle"]) == ORACLE_USAGE_AND_ADJUSTMENTS
    assert usd(providers["gcp"]) == GCP_SPEND
    assert usd(providers["in-house"]) == IN_HOUSE_SPEND


async def test_ledger_totals(report: dict[str, Any]) -> None:
    sample_spend = DOCUMENT_AI + CUSTOMER_SUPPORT + AWS_USAGE + AZURE_USAGE + ORACLE_USAGE_AND_ADJUSTMENTS
    assert sample_spend == Decimal("49.39667210019")
    expected = sample_spend + LITELLM_GPT_4O + CUR_SPEND + AZURE_EXPORT_SPEND + GCP_SPEND + IN_HOUSE_SPEND
    # 456.66922710019 with the Azure unused reservation line counted again, less its 9.53333 = 447.13589710019
    assert expected == Decimal("447.13589710019")
    assert usd(report["spend"]) == expected
    credits = CREDITS_AND_REFUNDS + CUR_CREDITS + AZURE_EXPORT_REFUNDS + GCP_CREDITS
    assert credits == Decimal("-10.02567130010")
    assert usd(report["credits_and_refunds"]) == credits
    # Unallocated: the FOCUS spend no rule matched, and every constructed bill and the LiteLLM request. The
    # oracle-shared-tenancy rule splits every Oracle row between two owners, so Oracle is not in it.
    focus_unallocated = AWS_USAGE + AZURE_USAGE - ML_PLATFORM - DATA_SCIENCE
    new_samples = LITELLM_GPT_4O + CUR_SPEND + AZURE_EXPORT_SPEND + GCP_SPEND + IN_HOUSE_SPEND
    assert usd(report["spend_by_team"]["unallocated"]) == focus_unallocated + new_samples
    # 1 spec example + 26 cookbook + 6 dashboard + 1 Anthropic example + 200 FOCUS + 2 webhook results = 236,
    # + 1 LiteLLM + 12 CUR (its negation line is empty) + 6 Azure (its unused reservation line is empty)
    # + 5 Google Cloud (4 rows, 1 credit) + 2 CloudEvents = 262
    assert report["cost_events"] == 262
    assert report["uncosted_usage_events"] == 0  # allocation costed every captured usage event
    assert report["priced_events"] == 9
    assert report["provider_billed_events"] == 225
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
    # customer-support's forecast: its figures depend on which webhook day risk saw first, so only its presence.
    assert ("budget_forecast", "team:customer-support", "100") in by_key
    # The 2026-11-02 claude-opus-4-6 usage falls after the support-opus-evaluation exception ended (2026-10-31).
    violation = by_key[("policy_violation", "team:customer-support", None)]
    assert violation["facts"]["rule"] == "confidential-data"
    assert violation["facts"]["spend"] == "21.975 USD"
    # The 27 OpenAI usage events without a project or key have no owner; Azure Machine Learning is in no policy.
    assert by_key[("shadow_ai_unowned", "owner:openai/(no project, key or workspace reported)", None)]
    vendor = by_key[("shadow_ai_vendor", "vendor:azure-machine-learning", None)]
    # Azure ML rows: 0.00000000503 + 0.005 + 0.00000000729 + 0.005 spend (as in DATA_SCIENCE), the rest refunds.
    assert vendor["facts"]["spend"] == f"{DATA_SCIENCE} USD"
    assert ("value_unlinked_spend", "use_case:model-training", None) in by_key
    # The constructed bills are AI spend no allocation rule owns, from vendors no policy lists.
    azure_openai = by_key[("shadow_ai_unowned", "owner:azure/account_id=8f4b2c1a-0000-4d6e-9a7b-constructed01", None)]
    assert azure_openai["facts"]["spend"] == f"{AZURE_EXPORT_SPEND} USD"
    vertex = by_key[("shadow_ai_unowned", "owner:gcp/project_id=research-genai-prod", None)]
    assert vertex["facts"]["spend"] == f"{GCP_SPEND} USD"
    for vendor_name in ("aws-bedrock", "azure-openai", "google-vertex-ai", "github-copilot"):
        assert ("shadow_ai_vendor", f"vendor:{vendor_name}", None) in by_key
    # The Copilot seat list: octocat's last activity was in 2021, more than 30 days before the report.
    assert ("licence_unused_seats", "licence:github/github-copilot", None) in by_key
    # The OpenAI costs API says 104.88761235323427 USD for 2025-01-23, the most expensive day; that day's usage
    # names no model, so nothing was priced and the whole charge is variance.
    variances = {f["facts"]["day"]: f for f in report["findings"] if f["kind"] == "reconciliation_variance"}
    assert variances["2025-01-23"]["facts"]["provider_cost"] == "104.88761235323427 USD"
    assert variances["2025-01-23"]["facts"]["variance"] == "104.88761235323427 USD"
    # Findings of every other kind, counted; value-unlinked findings come and go with the order outcomes and
    # costs arrive, and variance and anomaly counts are checked above by their content.
    counts: dict[str, int] = {}
    for finding in report["findings"]:
        counts[finding["kind"]] = counts.get(finding["kind"], 0) + 1
    assert {kind: counts.get(kind, 0) for kind in (
        "budget_threshold", "budget_forecast", "policy_violation", "shadow_ai_unowned", "shadow_ai_vendor",
        "unpriced_usage", "licence_unused_seats",
    )} == {
        "budget_threshold": 3,  # document-ai 80 % and 100 %, customer-support 80 %
        "budget_forecast": 1,  # customer-support
        "policy_violation": 1,
        "shadow_ai_unowned": 4,  # AWS account, Azure account, Google Cloud project, OpenAI usage with no owner key
        "shadow_ai_vendor": 5,  # Bedrock, Azure OpenAI, Vertex AI, Copilot, Azure Machine Learning
        "unpriced_usage": 2,
        "licence_unused_seats": 1,
    }  # fmt: skip


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
        # the LiteLLM request: 10 × (2.50 − 0.15) + 20 × (10.00 − 0.60), per 1M tokens
        ("cheaper_model", "team:unallocated model:openai/gpt-4o tier:standard"): Decimal("0.0002115"),
        # hand-worked in tests/unit/test_optimizer_estimates.py
        ("prompt_caching", "team:document-ai model:openai/gpt-4o tier:standard"): Decimal("0.02709"),
        ("prompt_caching", "team:document-ai model:openai/gpt-5 tier:standard"): Decimal("0.01823625"),
        ("prompt_caching", "team:document-ai model:openai/gpt-5-mini tier:standard"): Decimal("0.023365575"),
        # the Copilot seat list: octocat idle since 2021 at 19.00 a seat; octokitten's seat is already being
        # cancelled, so it is not counted again
        ("unused_seats", "seats:github/github-copilot"): Decimal("19.00"),
    }


async def test_capture_section(report: dict[str, Any]) -> None:
    capture = report["capture"]
    formats = capture["events_by_format"]
    assert formats["aws-cur"] == {"usage.recorded": 12}
    assert formats["gcp-billing-export"] == {"usage.recorded": 5}
    assert formats["openai-costs"] == {"provider_cost.reported": 31}
    assert formats["github-copilot-seats"] == {"seat.activity_reported": 2, "seat.entitlement_reported": 1}
    assert formats["dcgm-exporter"] == {"gpu.utilisation_reported": 2}
    assert capture["rejected_rows_by_format"] == {}
    # The OpenAI costs API's own statement, kept apart from spend: the exact sum of its 31 daily amounts.
    assert capture["provider_cost_statements"]["openai"] == {"USD": "284.93943937274981134156"}
    (seats,) = capture["seats"]
    assert (seats["entitled"], seats["assigned"], seats["idle_30_days"]) == (2, 2, 2)  # both last active in 2021
    assert [Decimal(gpu["utilisation_percent"]) for gpu in capture["gpu_utilisation"]] == [1, 40]


async def test_reimport_and_replay_change_nothing(stack: Stack, report: dict[str, Any]) -> None:
    again = await import_file(
        EXAMPLES / "data" / "focus_1.0_sample_trimmed.csv", settings=stack.settings(), tenant=TENANT
    )
    assert again.summary.accepted == 0
    assert again.summary.duplicates == 200
    replayed = await replay_usage_events(stack.settings())
    # Every stored ingest event of every tenant is sent again. This tenant alone has 262 usage events,
    # 31 provider cost statements, 3 seat events and 2 GPU utilisation events.
    assert replayed >= 262 + 31 + 3 + 2
    await stack.wait_until_drained()
    after = (await build_report(stack.settings(), TENANT)).as_json()
    assert after["spend"] == report["spend"]
    assert after["spend_by_team"] == report["spend_by_team"]
    assert after["cost_events"] == report["cost_events"]
    assert [f["finding_id"] for f in after["findings"]] == [f["finding_id"] for f in report["findings"]]
    assert after["recommendations"] == report["recommendations"]
