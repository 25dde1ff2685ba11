"""Every provider format read from its real or documented sample file, with the figures worked out by hand.

Files under tests/fixtures/ingest and examples/data are listed with their sources in the
SOURCES.md beside them, and the constructed ones name the documentation they follow.
"""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from services.ingest.normalisers import (
    NORMALISERS,
    FormatError,
    ImportContext,
    RowResult,
    UnknownFormat,
    detect_format,
)
from services.ingest.normalisers.aws_cur import bedrock_reading, snake_name
from services.ingest.normalisers.azure_meters import read_meter
from services.ingest.normalisers.gcp_billing import vertex_reading
from services.ingest.normalisers.openai_costs import split_line_item
from shared.events import (
    ChargeCategory,
    GpuUtilisationReported,
    PricingBasis,
    ProviderCostReported,
    SeatActivityReported,
    SeatEntitlementReported,
    ServiceTier,
    UsageBucket,
    UsageRecorded,
)
from tests.conftest import EXAMPLES, ROOT

FIXTURES = ROOT / "tests" / "fixtures" / "ingest"
DATA = EXAMPLES / "data"
B = UsageBucket
RECEIVED = datetime(2026, 11, 20, 15, 30, tzinfo=UTC)


def context(**changes: object) -> ImportContext:
    values: dict[str, object] = {
        "tenant": "acme",
        "correlation_id": "test",
        "received_at": RECEIVED,
        "file_name": "sample",
    }
    values.update(changes)
    return ImportContext(**values)  # type: ignore[arg-type]


def read_path(path: Path, format_name: str | None = None, **changes: object) -> list[RowResult]:
    data = path.read_bytes()
    normaliser = NORMALISERS[format_name] if format_name else detect_format(data[:65536], path.name)
    return list(normaliser.rows(io.BytesIO(data), context(**changes)))


def read_bytes(format_name: str, data: bytes, **changes: object) -> list[RowResult]:
    return list(NORMALISERS[format_name].rows(io.BytesIO(data), context(**changes)))


def usage_events(rows: list[RowResult]) -> list[UsageRecorded]:
    events = [event for row in rows for event in row.events]
    assert all(isinstance(event, UsageRecorded) for event in events)
    return events  # type: ignore[return-value]


def cost_events(rows: list[RowResult]) -> list[ProviderCostReported]:
    events = [event for row in rows for event in row.events]
    assert all(isinstance(event, ProviderCostReported) for event in events)
    return events  # type: ignore[return-value]


def billed(event: UsageRecorded) -> Decimal:
    assert event.provider_cost is not None
    return event.provider_cost.amount


class TestOpenAIUsageEndpoints:
    def test_embeddings(self) -> None:
        (row,) = read_path(FIXTURES / "openai_usage_costs" / "spec_example_usage_embeddings.json")
        event = row.event
        assert isinstance(event, UsageRecorded)
        assert event.service == "embeddings"
        assert event.quantities == {B.INPUT_UNCACHED_TOKENS: 16}
        assert event.request_count == 2
        assert event.period_start == datetime(2024, 11, 1, tzinfo=UTC)

    def test_images(self) -> None:
        (row,) = read_path(FIXTURES / "openai_usage_costs" / "spec_example_usage_images.json")
        event = row.event
        assert isinstance(event, UsageRecorded)
        assert event.service == "images"
        assert event.quantities == {B.IMAGES: 2}
        assert event.request_count == 2

    def test_audio_transcriptions(self) -> None:
        (row,) = read_path(FIXTURES / "openai_usage_costs" / "spec_example_usage_audio_transcriptions.json")
        event = row.event
        assert isinstance(event, UsageRecorded)
        assert event.quantities == {B.AUDIO_SECONDS: 20}
        assert event.request_count == 1

    def test_web_search_counts_calls_not_model_requests(self) -> None:
        (row,) = read_path(FIXTURES / "openai_usage_costs" / "spec_example_usage_web_search_calls.json")
        event = row.event
        assert isinstance(event, UsageRecorded)
        assert event.service == "web_search"
        assert event.quantities == {B.WEB_SEARCH_CALLS: 2}  # num_requests
        assert event.request_count == 2  # num_model_requests

    def test_page_of_another_endpoint_is_rejected(self) -> None:
        data = (FIXTURES / "openai_usage_costs" / "spec_example_usage_images.json").read_bytes()
        (row,) = read_bytes("openai-usage-embeddings", data)
        assert row.error is not None
        assert row.error.field_path == "data[0].results[0].object"
        assert "organization.usage.images.result" in row.error.reason

    def test_audio_speeches_characters(self) -> None:
        page = {
            "object": "page",
            "data": [
                {
                    "object": "bucket",
                    "start_time": 1730419200,
                    "end_time": 1730505600,
                    "results": [
                        {
                            "object": "organization.usage.audio_speeches.result",
                            "characters": 45,
                            "num_model_requests": 1,
                            "model": "tts-1",
                        }
                    ],
                }
            ],
        }
        (row,) = read_bytes("openai-usage-audio-speeches", json.dumps(page).encode())
        assert isinstance(row.event, UsageRecorded)
        assert row.event.quantities == {B.CHARACTERS: 45}
        assert row.event.model == "tts-1"


class TestOpenAICosts:
    def test_more_pages_are_announced(
        self, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
    ) -> None:
        page = json.loads((FIXTURES / "openai_usage_costs" / "spec_example_costs.json").read_text())
        page.update(has_more=True, next_page="page_AAAAAGdGxdEiJdKOAAAAAGcqsYA=")
        read_bytes("openai-costs", json.dumps(page).encode())
        # structlog writes to stdout until a process configures it, and through logging afterwards.
        logged = capsys.readouterr().out + caplog.text
        assert "import.more_pages" in logged
        assert "page_AAAAAGdGxdEiJdKOAAAAAGcqsYA=" in logged

    def test_spec_example_dollars_lower_case_currency(self) -> None:
        (event,) = cost_events(read_path(FIXTURES / "openai_usage_costs" / "spec_example_costs.json"))
        assert event.amount.amount == Decimal("0.06")
        assert event.amount.currency == "USD"
        assert event.line_item is None
        assert event.period_start == datetime(2024, 11, 1, tzinfo=UTC)

    def test_cookbook_costs_sum_exactly(self) -> None:
        events = cost_events(read_path(DATA / "cookbook_real_costs_buckets.json"))
        assert len(events) == 31
        # The exact sum of the 31 decimal amounts as written; adding them as binary floats, as the
        # notebook did, gives 284.93943937274986 instead.
        assert sum((event.amount.amount for event in events), Decimal(0)) == Decimal("284.93943937274981134156")
        largest = max(events, key=lambda event: event.amount.amount)
        assert largest.amount.amount == Decimal("104.88761235323427")
        assert largest.period_start == datetime(2025, 1, 23, tzinfo=UTC)  # 1737590400
        assert {event.dimensions.tags["organization_id"] for event in events} == {"org-GLHrIv00VVN9dEQC2b4wsBkf"}
        assert {event.dimensions.account_id for event in events} == {None}

    def test_dashboard_costs_keep_string_precision(self) -> None:
        rows = read_path(FIXTURES / "openai_usage_costs" / "dashboard_export_costs_daily.tsv")
        assert len(rows) == 8
        assert [row.row_number for row in rows if row.empty] == [5, 8]  # 2025-10-09 and 2025-10-12 had no charge
        events = cost_events(rows)
        assert events[0].amount.amount == Decimal("0.8958740000000000")
        assert events[0].period_start == datetime(2025, 10, 5, tzinfo=UTC)
        # 0.895874 + 0.56177125 + 0.569788 + 0.5455665 + 0.3409 + 0.072054 = 2.98595375
        assert sum((event.amount.amount for event in events), Decimal(0)) == Decimal("2.98595375")

    @pytest.mark.parametrize(
        ("line_item", "model", "kind"),
        [
            ("ft-gpt-4o-2024-08-06, input", "ft-gpt-4o-2024-08-06", "input"),
            ("evals | gpt-4o-mini-2024-07-18, input", "gpt-4o-mini-2024-07-18", "input"),
            ("assistants api | file search", None, None),
            (None, None, None),
        ],
    )
    def test_line_item_split(self, line_item: str | None, model: str | None, kind: str | None) -> None:
        assert split_line_item(line_item) == (model, kind)


class TestAnthropicCostAndClaudeCode:
    def test_cost_report_cents_to_dollars(self) -> None:
        (event,) = cost_events(read_path(FIXTURES / "anthropic_admin_usage_cost" / "docs_example_cost_report.json"))
        assert event.amount.amount == Decimal("1.2378912")  # "123.78912" cents / 100
        assert event.amount.currency == "USD"
        assert event.model == "claude-opus-5"
        assert event.line_item == "tokens"
        assert event.token_type == "uncached_input_tokens"
        assert event.service_tier is ServiceTier.STANDARD
        assert event.dimensions.workspace_id == "wrkspc_01JwQvzr7rXLA5AGx3HKfFUJ"
        assert event.dimensions.tags["description"] == "Claude Opus 5 Usage - Input Tokens"

    def test_claude_code_tokens_and_estimated_cost(self) -> None:
        rows = read_path(FIXTURES / "anthropic_admin_usage_cost" / "docs_example_claude_code_usage_report.json")
        (event,) = usage_events(rows)
        assert event.quantities == {
            B.INPUT_UNCACHED_TOKENS: 100_000,
            B.OUTPUT_TOKENS: 35_000,
            B.CACHE_READ_TOKENS: 10_000,
            B.CACHE_WRITE_TOKENS: 5_000,
        }
        assert event.pricing_basis is PricingBasis.CATALOGUE
        assert event.provider_cost is not None
        assert event.provider_cost.amount == Decimal("10.25")  # 1025 cents
        assert event.model == "claude-sonnet-4-5-20250929"
        assert event.dimensions.user_id == "developer@company.com"
        assert event.dimensions.tags["terminal_type"] == "vscode"
        assert event.period_start == datetime(2025, 9, 1, tzinfo=UTC)
        assert event.period_end == datetime(2025, 9, 2, tzinfo=UTC)

    def test_claude_code_date_must_have_zone(self) -> None:
        path = FIXTURES / "anthropic_admin_usage_cost" / "docs_example_claude_code_usage_report.json"
        report = json.loads(path.read_text())
        report["data"][0]["date"] = "2025-09-01T00:00:00"
        (row,) = read_bytes("anthropic-claude-code-usage", json.dumps(report).encode())
        assert row.error is not None
        assert row.error.field_path == "data[0].date"


class TestAwsCur:
    def test_cur1_rows_one_cell_short_are_rejected(self) -> None:
        # Every data row of this sample has 130 cells under a 131-column header.
        rows = read_path(FIXTURES / "aws_cur" / "koku_test_cur1_2018-06.csv")
        assert len(rows) == 19
        assert [row.error.field_path for row in rows if row.error] == [f"line {n}" for n in range(2, 21)]
        assert all(row.error and row.error.reason.startswith("has 130 cells, fewer than the 131") for row in rows)

    def test_cur1_rows_and_total(self) -> None:
        # Which cell is missing is unknown. With an empty one appended, the columns this test reads line up.
        header, *lines = (FIXTURES / "aws_cur" / "koku_test_cur1_2018-06.csv").read_text().splitlines()
        data = "\n".join([header, *(line + "," for line in lines)]).encode()
        events = usage_events(read_bytes("aws-cur", data))
        assert len(events) == 19
        first = events[0]
        assert billed(first) == Decimal("0.00165303109242778")  # 0.01001837025713806 GB at 0.165
        assert first.consumed_quantity == Decimal("0.01001837025713806")
        assert first.consumed_unit == "GB"
        assert first.dimensions.resource_id == "i-16847552"
        assert first.dimensions.account_id == "6838635603105"
        assert first.period_start == datetime(2018, 6, 1, tzinfo=UTC)  # "2018-06-01 00:00:00" read as UTC
        assert first.pricing_basis is PricingBasis.PROVIDER_BILLED
        assert sum((billed(event) for event in events), Decimal(0)) == Decimal("0.0827499841274349353")

    def test_savings_plan_covered_usage(self) -> None:
        events = usage_events(read_path(FIXTURES / "aws_cur" / "koku_cur1_2023-06_savingsplan.csv"))
        assert len(events) == 3
        for event in events:
            # Billed 0: the on-demand 10 NOK is cancelled by a negation line; the plan's fee carries the charge.
            assert billed(event) == 0
            assert event.provider_effective_cost is not None
            assert event.provider_effective_cost.amount == Decimal("0.1")
            assert event.provider_effective_cost.currency == "NOK"
            assert event.provider_list_cost is not None
            assert event.provider_list_cost.amount == Decimal("10")
            assert event.charge_category is ChargeCategory.USAGE

    def test_constructed_bedrock_and_gpu_lines(self) -> None:
        rows = read_path(DATA / "aws_cur2_bedrock_gpu_constructed.csv")
        assert len(rows) == 13
        assert [row.row_number for row in rows if row.empty] == [9]  # the savings-plan negation
        events = usage_events(rows)
        by_row = {row.row_number: row.event for row in rows if isinstance(row.event, UsageRecorded)}
        assert by_row[1].model == "NovaLite"
        assert by_row[1].dimensions.tags["token_type"] == "input"
        assert by_row[3].model == "Qwen3-32B"
        assert by_row[3].service_tier is ServiceTier.BATCH
        assert by_row[4].model == "Claude 3 Haiku"
        assert by_row[6].dimensions.tags["token_type"] == "cache_read"
        # g5.4xlarge has 1 GPU: 10 hours x 3600 s x 1 = 36,000 GPU-seconds; g5.12xlarge has 4: 2 x 3600 x 4 = 28,800.
        assert by_row[7].quantities == {B.GPU_SECONDS: Decimal(36_000)}
        assert by_row[8].quantities == {B.GPU_SECONDS: Decimal(28_800)}
        assert billed(by_row[8]) == 0
        assert by_row[10].charge_category is ChargeCategory.PURCHASE
        assert by_row[11].charge_category is ChargeCategory.TAX
        assert by_row[12].charge_category is ChargeCategory.CREDIT
        assert by_row[13].charge_category is ChargeCategory.CREDIT  # EdpDiscount
        spend = sum(
            (billed(event) for event in events if event.charge_category is not ChargeCategory.CREDIT), Decimal(0)
        )
        # usage 0.072 + 0.072 + 0.375 + 1.0 + 1.0 + 0.3 + 16.24 + 0 = 19.059; fee 7.0; tax 1.5 -> 27.559
        assert spend == Decimal("27.559")
        credits = sum((billed(event) for event in events if event.charge_category is ChargeCategory.CREDIT), Decimal(0))
        assert credits == Decimal("-5.25")  # -5.0 - 0.25

    def test_unknown_line_item_type_names_the_column(self) -> None:
        text = (FIXTURES / "aws_cur" / "koku_cur1_2023-06_savingsplan.csv").read_text()
        broken = text.replace("SavingsPlanCoveredUsage", "MysteryUsage", 1)
        rows = read_bytes("aws-cur", broken.encode())
        assert rows[0].error is not None
        assert rows[0].error.field_path == "lineItem/LineItemType"

    @pytest.mark.parametrize(
        ("column", "expected"),
        [
            ("lineItem/UsageStartDate", "line_item_usage_start_date"),
            ("savingsPlan/SavingsPlanEffectiveCost", "savings_plan_savings_plan_effective_cost"),
            ("pricing/publicOnDemandCost", "pricing_public_on_demand_cost"),
            ("resourceTags/user:team", "resource_tags_user:team"),
            ("line_item_unblended_cost", "line_item_unblended_cost"),
        ],
    )
    def test_cur1_names_become_cur2_names(self, column: str, expected: str) -> None:
        assert snake_name(column) == expected

    def test_bedrock_reading_ignores_other_products(self) -> None:
        assert bedrock_reading("AmazonEC2", "Amazon Elastic Compute Cloud", "BoxUsage:g5.4xlarge") == (None, {})
        assert bedrock_reading("AmazonBedrock", None, "EUW2-Qwen3Coder-30B-A3B-output-tokens") == (
            "Qwen3Coder-30B-A3B",
            {"token_type": "output"},
        )


class TestAzure:
    def test_spruce_native_needs_a_currency(self) -> None:
        rows = read_path(FIXTURES / "azure_cost_export" / "spruce_fixture_native_openai.csv")
        assert len(rows) == 6
        assert all(row.error is not None and "--currency" in row.error.reason for row in rows)

    def test_spruce_native_with_currency(self) -> None:
        rows = read_path(FIXTURES / "azure_cost_export" / "spruce_fixture_native_openai.csv", currency="USD")
        events = usage_events(rows)
        first = events[0]
        assert first.model == "gpt-5"
        assert first.dimensions.tags["token_type"] == "output"
        assert first.dimensions.tags["deployment"] == "global"
        assert billed(first) == Decimal("22.0")
        assert first.region == "swedencentral"
        assert first.period_start == datetime(2026, 5, 1, tzinfo=UTC)
        assert first.period_end == datetime(2026, 5, 2, tzinfo=UTC)
        assert events[3].model is None  # the Code Interpreter session meter is not a token meter
        assert events[4].consumed_unit == "1K"
        assert events[5].charge_category is ChargeCategory.PURCHASE  # row 6 is a purchase, not token usage
        usage = sum((billed(e) for e in events if e.charge_category is ChargeCategory.USAGE), Decimal(0))
        assert usage == Decimal("27.67")  # 22.0 + 1.5 + 4.0 + 0.15 + 0.02

    def test_constructed_native_export(self) -> None:
        rows = read_path(DATA / "azure_cost_export_openai_constructed.csv")
        events = usage_events(rows)
        assert [event.model for event in events] == ["gpt-4o", "gpt-4o", "gpt-4o", "gpt-4.1-nano", None, "gpt-4o"]
        assert events[2].service_tier is ServiceTier.BATCH
        assert events[3].dimensions.tags["token_type"] == "cached_input"
        assert events[0].dimensions.tags["team"] == "customer-support"
        categories = [event.charge_category for event in events]
        assert categories[4] is ChargeCategory.PURCHASE
        assert categories[5] is ChargeCategory.REFUND
        # usage 3.0 + 1.5 + 2.0 + 0.05 = 6.55; purchase 286.0; refund -1.5
        usage = sum((billed(e) for e in events if e.charge_category is ChargeCategory.USAGE), Decimal(0))
        assert usage == Decimal("6.55")
        assert billed(events[4]) == Decimal("286.0")
        assert billed(events[5]) == Decimal("-1.5")

    def test_purchase_and_unused_reservation_not_both_spend(self) -> None:
        # Row 5 buys the reservation (Purchase, 286.0) and row 7 is 24 of its hours unused (UnusedReservation,
        # 9.53333). A file with the purchase is the actual-cost dataset, where the 286.0 already pays for the
        # unused hours, so row 7 is read as empty: spend = 6.55 usage + 286.0 purchase = 292.55, not 302.08333.
        rows = read_path(DATA / "azure_cost_export_openai_constructed.csv")
        assert rows[6].empty
        assert rows[6].event is None
        spend = sum(
            (billed(e) for e in usage_events(rows) if e.charge_category is not ChargeCategory.REFUND), Decimal(0)
        )
        assert spend == Decimal("292.55")

    def test_amortized_export_counts_unused_reservation(self) -> None:
        # Without its purchase row (row 5) the file reads as the amortized-cost dataset, where the unused hours
        # are the part of the reservation no usage carried: spend = 6.55 usage + 9.53333 unused = 16.08333.
        lines = (DATA / "azure_cost_export_openai_constructed.csv").read_text().splitlines(keepends=True)
        amortized = "".join(line for line in lines if ",Purchase," not in line)
        events = usage_events(read_bytes("azure-cost-export", amortized.encode()))
        assert len(events) == 6
        assert events[5].charge_category is ChargeCategory.ADJUSTMENT
        assert billed(events[5]) == Decimal("9.53333")
        spend = sum((billed(e) for e in events if e.charge_category is not ChargeCategory.REFUND), Decimal(0))
        assert spend == Decimal("16.08333")

    def test_unused_savings_plan_matches_its_kind(self) -> None:
        # A reservation purchase does not make an unused savings plan line part of it: that line stays spend.
        lines = (DATA / "azure_cost_export_openai_constructed.csv").read_text().splitlines(keepends=True)
        savings_plan = lines[-1].replace("UnusedReservation", "UnusedSavingsPlan")
        rows = read_bytes("azure-cost-export", "".join([*lines[:-1], savings_plan]).encode())
        assert not rows[6].empty
        assert billed(usage_events(rows)[6]) == Decimal("9.53333")

    def test_month_first_dates(self) -> None:
        text = (DATA / "azure_cost_export_openai_constructed.csv").read_text().replace("2026-11-03", "11/03/2026")
        events = usage_events(read_bytes("azure-cost-export", text.encode()))
        assert events[0].period_start == datetime(2026, 11, 3, tzinfo=UTC)
        assert events[0].period_end == datetime(2026, 11, 4, tzinfo=UTC)

    def test_spruce_focus_lacks_required_columns(self) -> None:
        with pytest.raises(FormatError, match="ChargePeriodStart"):
            read_path(FIXTURES / "azure_cost_export" / "spruce_fixture_focus_openai.csv")

    def test_constructed_focus_export_with_correction(self) -> None:
        events = usage_events(read_path(FIXTURES / "azure_cost_export" / "azure_focus_openai_constructed.csv"))
        assert [event.model for event in events] == ["gpt-5", "gpt-5-mini", "gpt-5"]
        assert events[1].service_tier is ServiceTier.BATCH
        assert events[2].charge_category is ChargeCategory.ADJUSTMENT  # ChargeClass Correction
        assert {event.provider_cost.currency for event in events if event.provider_cost} == {"EUR"}

    @pytest.mark.parametrize(
        ("subcategory", "meter", "model", "kind", "deployment", "batch"),
        [
            ("gpt-4o", "gpt-4o-0806-Inp-glbl Tokens", "gpt-4o", "input", "global", False),
            ("gpt-4.1", "gpt 4.1 nano Inp Data Zone Tokens", "gpt-4.1-nano", "input", "data_zone", False),
            ("gpt-5", "GPT 5 Batch outpt Glbl 1M Tokens", "gpt-5", "output", "global", True),
            ("gpt-4.1", "gpt 4.1 mini cached Inp regnl Tokens", "gpt-4.1-mini", "cached_input", "regional", False),
        ],
    )
    def test_meter_names(
        self, subcategory: str, meter: str, model: str, kind: str, deployment: str, batch: bool
    ) -> None:
        reading = read_meter("Azure OpenAI", subcategory, meter, "1K")
        assert reading.model == model
        assert reading.token_type == kind
        assert reading.deployment == deployment
        assert reading.batch is batch


class TestGcpBilling:
    def test_koku_rows_and_credits(self) -> None:
        rows = read_path(FIXTURES / "gcp_billing_export" / "koku_gcp_billing_export_202011.csv")
        assert len(rows) == 25
        events = usage_events(rows)
        usage = [event for event in events if event.charge_category is ChargeCategory.USAGE]
        credits = [event for event in events if event.charge_category is ChargeCategory.CREDIT]
        assert len(usage) == 25
        assert len(credits) == 8  # the Security Command Center rows each carry one free-trial credit
        # 6 rows of 5e-06 and 2 of 1e-06: 0.00003 + 0.000002 = 0.000032, and the credits cancel them exactly
        assert sum((billed(e) for e in usage), Decimal(0)) == Decimal("0.000032")
        assert sum((billed(e) for e in credits), Decimal(0)) == Decimal("-0.000032")
        first = rows[0]
        assert isinstance(first.event, UsageRecorded)
        assert first.event.service == "Security Command Center"
        assert first.event.consumed_quantity == Decimal("24909.0")
        assert first.event.consumed_unit == "bytes"
        assert first.related[0].dimensions.tags["credit_type"] == "PROMOTION"
        assert first.related[0].event_id != first.event.event_id
        assert rows[3].event is not None
        assert rows[3].event.dimensions.tags["goog-resource-type"] == "bigquery_resource"

    def test_constructed_vertex_ai_rows(self) -> None:
        rows = read_path(DATA / "gcp_billing_export_vertex_ai_constructed.ndjson")
        events = usage_events(rows)
        assert [event.model for event in events] == [
            "gemini-2.5-pro",
            None,  # the credit
            "gemini-2.5-pro",
            "gemini-2.5-flash",
            "gemini-2.5-pro",
        ]
        assert events[0].dimensions.project_id == "research-genai-prod"
        assert events[0].dimensions.tags["team"] == "research"
        assert events[0].period_start == datetime(2026, 11, 3, 10, tzinfo=UTC)  # "2026-11-03 10:00:00 UTC"
        assert events[1].charge_category is ChargeCategory.CREDIT
        assert events[4].charge_category is ChargeCategory.ADJUSTMENT
        # usage 2.5 + 10.0 + 0.03 = 12.53; adjustment -0.4; credit -0.5
        usage = sum((billed(e) for e in events if e.charge_category is ChargeCategory.USAGE), Decimal(0))
        assert usage == Decimal("12.53")

    @pytest.mark.parametrize(
        ("sku", "expected"),
        [
            ("Gemini 2.5 Pro Text Input (≤200k)", ("gemini-2.5-pro", "input")),
            ("Gemini 2.5 Flash Cached Input", ("gemini-2.5-flash", "cached_input")),
            ("Online prediction node hours", (None, None)),
        ],
    )
    def test_vertex_sku_reading(self, sku: str, expected: tuple[str | None, str | None]) -> None:
        assert vertex_reading(sku) == expected

    def test_timestamp_without_zone_is_rejected(self) -> None:
        line = json.loads((DATA / "gcp_billing_export_vertex_ai_constructed.ndjson").read_text().splitlines()[0])
        line["usage_start_time"] = "2026-11-03 10:00:00"
        (row,) = read_bytes("gcp-billing-export", json.dumps(line).encode())
        assert row.error is not None
        assert row.error.field_path == "usage_start_time"


class TestLiteLLM:
    def test_spend_log_row(self) -> None:
        (event,) = usage_events(read_path(DATA / "litellm_spend_logs_payload.json"))
        assert event.provider == "openai"
        assert event.model == "gpt-4o"
        assert event.quantities == {B.INPUT_UNCACHED_TOKENS: 10, B.OUTPUT_TOKENS: 20}
        assert event.provider_cost is not None
        # 10 x 2.5e-06 + 20 x 1e-05 = 0.000225; LiteLLM summed it as a float and wrote the float's digits.
        assert event.provider_cost.amount == Decimal("0.00022500000000000002")
        assert event.period_start == datetime(2025, 1, 24, 9, 20, 46, 847371, tzinfo=UTC)  # no zone: read as UTC
        assert event.request_count == 1

    def test_logging_payload(self) -> None:
        (event,) = usage_events(read_path(FIXTURES / "litellm" / "standard_logging_payload.json"))
        assert event.quantities == {B.INPUT_UNCACHED_TOKENS: 10, B.OUTPUT_TOKENS: 20}
        assert event.provider_cost is not None
        assert event.provider_cost.amount == Decimal("0.00022500000000000002")

    def test_same_request_id_same_event(self) -> None:
        record = json.loads((DATA / "litellm_spend_logs_payload.json").read_text())
        rows = read_bytes("litellm-spend-logs", json.dumps([record, record]).encode())
        assert rows[0].event is not None and rows[1].event is not None
        assert rows[0].event.event_id == rows[1].event.event_id

    def test_cached_and_reasoning_tokens_are_split_out(self) -> None:
        record = json.loads((DATA / "litellm_spend_logs_payload.json").read_text())
        metadata = json.loads(record["metadata"])
        metadata["usage_object"] = {
            "prompt_tokens": 1000,
            "completion_tokens": 600,
            "prompt_tokens_details": {"cached_tokens": 300, "audio_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 450},
        }
        record.update(metadata=json.dumps(metadata), prompt_tokens=1000, completion_tokens=600, total_tokens=1600)
        (row,) = read_bytes("litellm-spend-logs", json.dumps(record).encode())
        assert isinstance(row.event, UsageRecorded)
        # 1000 prompt = 700 uncached + 300 cached; 600 completion = 150 output + 450 reasoning
        assert row.event.quantities == {
            B.INPUT_UNCACHED_TOKENS: 700,
            B.CACHE_READ_TOKENS: 300,
            B.OUTPUT_TOKENS: 150,
            B.REASONING_TOKENS: 450,
        }

    def test_total_must_add_up(self) -> None:
        record = json.loads((DATA / "litellm_spend_logs_payload.json").read_text())
        record["total_tokens"] = 31
        (row,) = read_bytes("litellm-spend-logs", json.dumps(record).encode())
        assert row.error is not None
        assert row.error.field_path == "total_tokens"
        assert "prompt_tokens 10 + completion_tokens 20 = 30" in row.error.reason

    def test_reasoning_above_completion_is_rejected(self) -> None:
        record = json.loads((DATA / "litellm_spend_logs_payload.json").read_text())
        metadata = json.loads(record["metadata"])
        metadata["usage_object"]["completion_tokens_details"] = {"reasoning_tokens": 25}
        record["metadata"] = json.dumps(metadata)
        (row,) = read_bytes("litellm-spend-logs", json.dumps(record).encode())
        assert row.error is not None
        assert row.error.field_path == "completion_tokens"

    def test_empty_request_id_is_rejected(self) -> None:
        record = json.loads((DATA / "litellm_spend_logs_payload.json").read_text())
        record["request_id"] = ""
        (row,) = read_bytes("litellm-spend-logs", json.dumps(record).encode())
        assert row.error is not None
        assert row.error.field_path == "request_id"

    def test_cache_hit_is_not_billed_usage(self) -> None:
        record = json.loads((DATA / "litellm_spend_logs_payload.json").read_text())
        record["cache_hit"] = "True"
        (row,) = read_bytes("litellm-spend-logs", json.dumps(record).encode())
        assert row.empty
        assert row.event is None


class TestOpenCost:
    def test_allocation_by_namespace(self) -> None:
        rows = read_path(FIXTURES / "opencost" / "allocation_compute_window2d_aggregate_namespace.json")
        events = usage_events(rows)
        assert [event.dimensions.tags["namespace"] for event in events] == ["kube-system", "opencost", "prometheus"]
        # kube-system: cpuCost 0.408822 + ramCost 0.016647 = totalCost 0.425469
        assert billed(events[0]) == Decimal("0.425469")
        assert billed(events[1]) == Decimal("0.030644")
        assert billed(events[2]) == Decimal("0.000000")
        assert all(event.quantities == {} for event in events)  # gpuHours are 0: no GPU in this cluster
        assert events[1].dimensions.resource_id == "i-064548f89b9d35c11"
        assert events[1].dimensions.tags["pod"] == "opencost-75dc7dcc49-xdx5t"
        assert events[0].period_start == datetime(2023, 1, 18, 11, 38, 45, tzinfo=UTC)
        assert events[0].period_end == datetime(2023, 1, 20, 11, 38, tzinfo=UTC)
        assert {event.provider_cost.currency for event in events if event.provider_cost} == {"USD"}

    def test_fractional_gpu_hours(self) -> None:
        document = json.loads(
            (FIXTURES / "opencost" / "allocation_compute_window2d_aggregate_namespace.json").read_text(),
            parse_float=str,
        )
        document["data"][0]["opencost"]["gpuHours"] = "0.500000"
        rows = read_bytes("opencost-allocation", json.dumps(document).encode(), currency="EUR")
        event = rows[1].event
        assert isinstance(event, UsageRecorded)
        assert event.quantities == {B.GPU_SECONDS: Decimal("1800")}  # half a GPU-hour is 1,800 GPU-seconds
        assert event.provider_cost is not None and event.provider_cost.currency == "EUR"

    def test_node_cost_model_is_not_importable(self) -> None:
        path = FIXTURES / "opencost" / "costDataModel_node_g4dn_xlarge_fragment.json"
        with pytest.raises(UnknownFormat, match="no time window"):
            detect_format(path.read_bytes(), path.name)


class TestDcgm:
    def test_scrape_without_timestamps_needs_observed_at(self) -> None:
        rows = read_path(FIXTURES / "gpu_metrics" / "dcgm_exporter_scrape_tesla_t4_trimmed.prom")
        assert len(rows) == 2
        assert rows[0].error is not None
        assert rows[0].error.field_path == "timestamp"
        assert rows[1].empty  # the A10G series has no utilisation metric, only DRAM activity

    def test_scrape_with_observed_at(self) -> None:
        observed = datetime(2026, 11, 3, 12, tzinfo=UTC)
        rows = read_path(FIXTURES / "gpu_metrics" / "dcgm_exporter_scrape_tesla_t4_trimmed.prom", observed_at=observed)
        event = rows[0].event
        assert isinstance(event, GpuUtilisationReported)
        assert event.host == "424773df46e0"
        assert event.gpu_id == "GPU-20c56d28-0da5-6d26-a36a-e7af1ce2586e"
        assert event.gpu_model == "Tesla T4"
        assert event.utilisation_percent == 0
        assert event.memory_used_mib == 0
        assert event.memory_total_mib == 15109  # 0 used + 15109 free
        assert event.window_start == observed

    def test_constructed_scrapes_mean_over_window(self) -> None:
        rows = read_path(DATA / "dcgm_exporter_scrapes_constructed.prom")
        t4, a10g = (row.event for row in rows)
        assert isinstance(t4, GpuUtilisationReported) and isinstance(a10g, GpuUtilisationReported)
        assert t4.utilisation_percent == 1  # (0 + 0 + 3) / 3
        assert a10g.utilisation_percent == 40  # (35 + 40 + 45) / 3
        assert a10g.memory_used_mib == 18_400  # the latest sample
        assert a10g.memory_total_mib == 22_500  # 18,400 used + 4,100 free
        assert a10g.window_start == datetime(2026, 11, 3, 10, tzinfo=UTC)
        assert a10g.window_end == datetime(2026, 11, 3, 10, 2, tzinfo=UTC)
        assert a10g.dimensions.tags == {"namespace": "llm-serving", "pod": "vllm-7d9f8c6b5-x2k4p", "container": "vllm"}

    def test_overlong_label_names_the_field(self) -> None:
        text = (DATA / "dcgm_exporter_scrapes_constructed.prom").read_text()
        rows = read_bytes("dcgm-exporter", text.replace("ip-10-0-12-34", "h" * 600).encode())
        assert rows[0].event is not None  # the T4 series is unaffected
        assert rows[1].error is not None
        assert rows[1].error.field_path == "host"
        assert "at most 512 characters" in rows[1].error.reason

    def test_broken_sample_line(self) -> None:
        with pytest.raises(FormatError, match="line 1"):
            read_bytes("dcgm-exporter", b'DCGM_FI_DEV_GPU_UTIL{gpu="0" 12\n')


class TestSeats:
    def test_copilot_seat_list(self) -> None:
        observed = datetime(2021, 10, 15, tzinfo=UTC)
        rows = read_path(DATA / "github_copilot_billing_seats_list.json", observed_at=observed)
        entitlement, first, second = (row.event for row in rows)
        assert isinstance(entitlement, SeatEntitlementReported)
        assert entitlement.entitled_seats == 2
        assert entitlement.pending_cancellation_seats == 1
        assert isinstance(first, SeatActivityReported) and isinstance(second, SeatActivityReported)
        assert first.seat_holder == "octocat"
        assert first.plan == "business"
        assert first.assigning_team == "Justice League"
        assert first.last_activity_at == datetime(2021, 10, 14, 6, 53, 32, tzinfo=UTC)  # 00:53:32-06:00
        assert first.last_activity_surface == "vscode"
        assert first.as_of == observed
        assert second.seat_holder == "octokitten"
        assert second.pending_cancellation_date == "2021-11-01"

    def test_seat_list_dated_by_day(self) -> None:
        rows = read_path(DATA / "github_copilot_billing_seats_list.json")
        assert isinstance(rows[1].event, SeatActivityReported)
        assert rows[1].event.as_of == datetime(2026, 11, 20, tzinfo=UTC)  # the UTC day it was received

    def test_copilot_billing_details(self) -> None:
        (row,) = read_path(FIXTURES / "seats_licences" / "github_copilot_org_billing_details.json")
        event = row.event
        assert isinstance(event, SeatEntitlementReported)
        assert event.entitled_seats == 12
        assert event.active_seats == 12
        assert event.inactive_seats == 11
        assert event.pending_cancellation_seats == 0

    def test_m365_copilot_json(self) -> None:
        (row,) = read_path(FIXTURES / "seats_licences" / "m365_copilot_usage_user_detail_docs.json")
        event = row.event
        assert isinstance(event, SeatActivityReported)
        assert event.vendor == "microsoft"
        assert event.seat_holder == "DC8C64D6EC3A3AA17481D7E5EB5B68A6"  # hashed by the tenant's privacy setting
        assert event.as_of == datetime(2024, 6, 26, tzinfo=UTC)
        assert event.last_activity_at == datetime(2024, 6, 12, tzinfo=UTC)
        assert event.last_activity_surface == "teams"  # 2024-06-12 is the latest of the per-app dates
        assert event.dimensions.tags["report_period_days"] == "7"

    def test_m365_copilot_csv_header_only(self) -> None:
        rows = read_path(FIXTURES / "seats_licences" / "m365_copilot_usage_user_detail_header_only.csv")
        assert rows == []

    def test_m365_copilot_csv_row(self) -> None:
        header = (FIXTURES / "seats_licences" / "m365_copilot_usage_user_detail_header_only.csv").read_text().strip()
        row_text = "2024-06-26,7,adele@contoso.com,Adele Vance,2024-06-20,2024-06-20,,,,,,,2024-06-01"
        (row,) = read_bytes("m365-copilot-usage", f"{header}\n{row_text}\n".encode())
        event = row.event
        assert isinstance(event, SeatActivityReported)
        assert event.seat_holder == "adele@contoso.com"
        assert event.last_activity_surface == "teams"
        assert event.dimensions.tags["report_period_days"] == "7"

    def test_metrics_report_index_is_not_importable(self) -> None:
        path = FIXTURES / "seats_licences" / "github_copilot_metrics_1_day_report.json"
        with pytest.raises(UnknownFormat, match="download"):
            detect_format(path.read_bytes(), path.name)


class TestCloudEvents:
    def test_constructed_gpu_cluster_events(self) -> None:
        events = usage_events(read_path(DATA / "cloudevents_gpu_cluster_constructed.json"))
        assert len(events) == 2
        training = events[0]
        assert training.provider == "in-house"
        assert training.pricing_basis is PricingBasis.PROVIDER_BILLED
        assert training.quantities == {B.GPU_SECONDS: Decimal(115_200)}  # 4 GPUs x 8 h x 3600 s
        assert billed(training) == Decimal("64.00")  # 32 GPU-hours x 2.00
        assert training.dimensions.tags["subject"] == "team:ml-platform"
        assert training.period_start == datetime(2026, 11, 4, 10, tzinfo=UTC)
        assert training.description == "fine-tuning run on 4 A100 GPUs for 8 hours at 2.00 USD per GPU-hour"

    def _event(self, **data: object) -> dict[str, object]:
        return {
            "specversion": "1.0",
            "type": "com.example.tokens",
            "id": "evt-1",
            "source": "//gateway",
            "time": "2026-11-05T10:00:00Z",
            "data": {"provider": "openai", "model": "gpt-5-mini", "quantities": {"output_tokens": 10}, **data},
        }

    def test_identity_is_source_and_id(self) -> None:
        first, second, other = (self._event(), self._event(), {**self._event(), "source": "//other"})
        rows = read_bytes("cloudevents", json.dumps([first, second, other]).encode())
        ids = [row.event.event_id for row in rows if row.event]
        assert ids[0] == ids[1]
        assert ids[0] != ids[2]

    @pytest.mark.parametrize(
        ("change", "field_path"),
        [
            ({"id": ""}, "[0].id"),
            ({"id": None}, "[0].id"),
            ({"specversion": "0.3"}, "[0].specversion"),
            ({"time": "2026-11-05T10:00:00"}, "[0].time"),
            (
                {"data": {"provider": "openai", "quantities": {"output_tokens": -1}}},
                "[0].data.quantities.output_tokens",
            ),
            ({"data": {"provider": "openai", "quantities": {"tokens": 5}}}, "[0].data.quantities.tokens"),
            (
                {"data": {"provider": "openai", "quantities": {"output_tokens": 1.5}}},
                "[0].data.quantities.output_tokens",
            ),
            ({"data": {"provider": "openai", "quantities": {}}}, "[0].data.quantities"),
            ({"data": {"provider": "openai", "quantity": 3}}, "[0].data.quantity"),
            ({"data": {"quantities": {"output_tokens": 1}}}, "[0].data.provider"),
            ({"data": {"provider": "x", "pricing_basis": "provider_billed"}}, "[0].data.cost"),
        ],
    )
    def test_bad_events_name_the_field(self, change: dict[str, object], field_path: str) -> None:
        event = {**self._event(), **change}
        (row,) = read_bytes("cloudevents", json.dumps(event).encode())
        assert row.error is not None
        assert row.error.field_path == field_path


class TestFocusVersions:
    def test_focus_1_2_service_provider_name(self) -> None:
        text = (DATA / "focus_1.0_sample_trimmed.csv").read_text()
        header, rest = text.split("\n", 1)
        renamed = header.replace('"ProviderName"', '"ServiceProviderName"')
        events = usage_events(read_bytes("focus-csv", f"{renamed}\n{rest}".encode()))
        assert len(events) == 200
        assert {event.provider for event in events} == {"aws", "azure", "oracle"}

    def test_no_provider_column(self) -> None:
        text = (DATA / "focus_1.0_sample_trimmed.csv").read_text()
        header, rest = text.split("\n", 1)
        with pytest.raises(FormatError, match="ProviderName or ServiceProviderName"):
            read_bytes("focus-csv", f"{header.replace('ProviderName', 'Vendor')}\n{rest}".encode())


class TestTimeAndSign:
    def test_focus_rule_reads_naive_times_as_utc(self) -> None:
        rows = read_path(DATA / "focus_1.0_sample_trimmed.csv")
        assert rows[0].event is not None
        assert rows[0].event.occurred_at.tzinfo is not None

    def test_anthropic_usage_rejects_naive_times(self) -> None:
        page = json.loads((DATA / "docs_example_usage_report_messages.json").read_text())
        page["data"][0]["ending_at"] = "2025-08-02T00:00:00"
        (row,) = read_bytes("anthropic-usage-report", json.dumps(page).encode())
        assert row.error is not None
        assert row.error.field_path == "data[0].ending_at"


class TestDetection:
    @pytest.mark.parametrize(
        ("path", "expected"),
        [
            (FIXTURES / "openai_usage_costs" / "spec_example_usage_embeddings.json", "openai-usage-embeddings"),
            (FIXTURES / "openai_usage_costs" / "spec_example_costs.json", "openai-costs"),
            (FIXTURES / "openai_usage_costs" / "dashboard_export_costs_daily.tsv", "openai-dashboard-costs"),
            (DATA / "cookbook_real_costs_buckets.json", "openai-costs"),
            (FIXTURES / "anthropic_admin_usage_cost" / "docs_example_cost_report.json", "anthropic-cost-report"),
            (
                FIXTURES / "anthropic_admin_usage_cost" / "docs_example_claude_code_usage_report.json",
                "anthropic-claude-code-usage",
            ),
            (FIXTURES / "aws_cur" / "koku_test_cur1_2018-06.csv", "aws-cur"),
            (DATA / "aws_cur2_bedrock_gpu_constructed.csv", "aws-cur"),
            (DATA / "azure_cost_export_openai_constructed.csv", "azure-cost-export"),
            (FIXTURES / "azure_cost_export" / "azure_focus_openai_constructed.csv", "focus-csv"),
            (FIXTURES / "gcp_billing_export" / "koku_gcp_billing_export_202011.csv", "gcp-billing-export"),
            (DATA / "gcp_billing_export_vertex_ai_constructed.ndjson", "gcp-billing-export"),
            (DATA / "litellm_spend_logs_payload.json", "litellm-spend-logs"),
            (FIXTURES / "litellm" / "standard_logging_payload.json", "litellm-logging-payload"),
            (FIXTURES / "opencost" / "allocation_compute_window2d_aggregate_namespace.json", "opencost-allocation"),
            (FIXTURES / "gpu_metrics" / "dcgm_exporter_scrape_tesla_t4_trimmed.prom", "dcgm-exporter"),
            (DATA / "github_copilot_billing_seats_list.json", "github-copilot-seats"),
            (FIXTURES / "seats_licences" / "github_copilot_org_billing_details.json", "github-copilot-billing"),
            (FIXTURES / "seats_licences" / "m365_copilot_usage_user_detail_docs.json", "m365-copilot-usage"),
            (FIXTURES / "seats_licences" / "m365_copilot_usage_user_detail_header_only.csv", "m365-copilot-usage"),
            (DATA / "cloudevents_gpu_cluster_constructed.json", "cloudevents"),
        ],
    )
    def test_detects_each_file(self, path: Path, expected: str) -> None:
        assert detect_format(path.read_bytes()[:65536], path.name).format_name == expected

    def test_format_names(self) -> None:
        assert sorted(NORMALISERS) == [
            "anthropic-claude-code-usage",
            "anthropic-cost-report",
            "anthropic-usage-report",
            "aws-cur",
            "azure-cost-export",
            "cloudevents",
            "dcgm-exporter",
            "focus-csv",
            "gcp-billing-export",
            "github-copilot-billing",
            "github-copilot-seats",
            "litellm-logging-payload",
            "litellm-spend-logs",
            "m365-copilot-usage",
            "openai-costs",
            "openai-dashboard-costs",
            "openai-dashboard-usage",
            "openai-usage-audio-speeches",
            "openai-usage-audio-transcriptions",
            "openai-usage-completions",
            "openai-usage-embeddings",
            "openai-usage-images",
            "openai-usage-moderations",
            "openai-usage-web-search-calls",
            "opencost-allocation",
        ]
