"""Normalisers read the real sample files into exclusive usage buckets; expected values are worked by hand."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from services.ingest.normalisers import (
    NORMALISERS,
    FormatError,
    ImportContext,
    InvalidSyntax,
    RowResult,
    UnknownFormat,
    detect_format,
)
from services.ingest.normalisers.base import IdentityAllocator, OccurrenceCounter
from shared.events import ChargeCategory, ServiceTier, UsageBucket
from tests.conftest import EXAMPLES

DATA = EXAMPLES / "data"
B = UsageBucket


def context(tenant: str = "acme") -> ImportContext:
    return ImportContext(
        tenant=tenant, correlation_id="test", received_at=datetime(2026, 1, 1, tzinfo=UTC), file_name="sample"
    )


def read(format_name: str, data: bytes, tenant: str = "acme") -> list[RowResult]:
    return list(NORMALISERS[format_name].rows(io.BytesIO(data), context(tenant)))


def read_file(name: str, tenant: str = "acme") -> list[RowResult]:
    path = DATA / name
    normaliser = detect_format(path.read_bytes()[:65536], name)
    return list(normaliser.rows(io.BytesIO(path.read_bytes()), context(tenant)))


class TestOpenAIUsageCompletions:
    def test_spec_example_splits_inclusive_input(self) -> None:
        rows = read_file("spec_example_usage_completions.json")
        assert len(rows) == 1
        event = rows[0].event
        assert event is not None
        # input_tokens 1000 includes 400 cached and 100 cache-write tokens: 1000 - 400 - 100 = 500 uncached.
        # Audio tokens are counted apart from text input and output, so they get their own buckets.
        assert event.quantities == {
            B.INPUT_UNCACHED_TOKENS: 500,
            B.CACHE_READ_TOKENS: 400,
            B.CACHE_WRITE_TOKENS: 100,
            B.OUTPUT_TOKENS: 500,
            B.AUDIO_INPUT_TOKENS: 50,
            B.AUDIO_OUTPUT_TOKENS: 50,
        }
        assert event.request_count == 5
        assert event.model is None
        assert event.period_start == datetime(2024, 11, 1, tzinfo=UTC)  # 1730419200
        assert event.period_end == datetime(2024, 11, 2, tzinfo=UTC)  # 1730505600
        assert event.service_tier is ServiceTier.STANDARD

    def test_cookbook_totals_match_the_notebook(self) -> None:
        rows = read_file("cookbook_real_usage_completions_buckets.json")
        events = [row.event for row in rows if row.event]
        assert len(rows) == 26  # 31 buckets, 5 of them with no results
        assert len(events) == 26
        input_total = sum(
            sum(e.quantities.get(b, 0) for b in (B.INPUT_UNCACHED_TOKENS, B.CACHE_READ_TOKENS, B.CACHE_WRITE_TOKENS))
            for e in events
        )
        assert input_total == 16_951_009
        assert sum(e.quantities[B.OUTPUT_TOKENS] for e in events) == 729_421
        assert sum(e.request_count or 0 for e in events) == 19_347
        assert sum(e.quantities[B.AUDIO_INPUT_TOKENS] for e in events) == 49_963
        assert sum(e.quantities[B.AUDIO_OUTPUT_TOKENS] for e in events) == 18_042

    def test_cookbook_third_bucket(self) -> None:
        events = [row.event for row in read_file("cookbook_real_usage_completions_buckets.json") if row.event]
        third = next(e for e in events if e.period_start == datetime.fromtimestamp(1736726400, UTC))
        # input 3,718,360 of which 76,544 cached: 3,718,360 - 76,544 = 3,641,816 uncached.
        assert third.quantities[B.INPUT_UNCACHED_TOKENS] == 3_641_816
        assert third.quantities[B.CACHE_READ_TOKENS] == 76_544
        assert third.quantities[B.OUTPUT_TOKENS] == 97_756
        assert third.quantities[B.AUDIO_INPUT_TOKENS] == 5_776
        assert third.quantities[B.AUDIO_OUTPUT_TOKENS] == 3_166
        assert third.request_count == 3_053

    def test_first_bucket_is_partial(self) -> None:
        events = [row.event for row in read_file("cookbook_real_usage_completions_buckets.json") if row.event]
        assert events[0].period_start == datetime(2025, 1, 11, 17, 31, tzinfo=UTC)

    def test_stated_uncached_count_must_agree(self) -> None:
        page = json.loads((DATA / "spec_example_usage_completions.json").read_text())
        page["data"][0]["results"][0]["input_uncached_tokens"] = 501
        rows = read("openai-usage-completions", json.dumps(page).encode())
        assert rows[0].event is None
        assert rows[0].error is not None
        assert rows[0].error.field_path == "data[0].results[0].input_uncached_tokens"
        assert "1000 - input_cached_tokens 400 - input_cache_write_tokens 100 = 500" in rows[0].error.reason

    def test_cached_above_input_is_rejected(self) -> None:
        page = json.loads((DATA / "spec_example_usage_completions.json").read_text())
        result = page["data"][0]["results"][0]
        result["input_cached_tokens"] = 950  # 950 + 100 cache writes > 1000 input
        del result["input_uncached_tokens"]
        rows = read("openai-usage-completions", json.dumps(page).encode())
        assert rows[0].error is not None
        assert rows[0].error.field_path == "data[0].results[0].input_tokens"

    @pytest.mark.parametrize(
        ("value", "reason"),
        [
            (-1, "must not be negative"),
            ("12x", "must be a whole number"),
            (1.5, "must be a whole number"),
            (True, "boolean"),
            (None, "is missing"),
        ],
    )
    def test_bad_output_tokens_name_the_field(self, value: object, reason: str) -> None:
        page = json.loads((DATA / "spec_example_usage_completions.json").read_text())
        page["data"][0]["results"][0]["output_tokens"] = value
        rows = read("openai-usage-completions", json.dumps(page).encode())
        assert rows[0].error is not None
        assert rows[0].error.field_path == "data[0].results[0].output_tokens"
        assert reason in rows[0].error.reason

    def test_batch_flag_selects_batch_tier(self) -> None:
        page = json.loads((DATA / "spec_example_usage_completions.json").read_text())
        page["data"][0]["results"][0]["batch"] = True
        event = read("openai-usage-completions", json.dumps(page).encode())[0].event
        assert event is not None
        assert event.service_tier is ServiceTier.BATCH

    def test_not_json_is_a_syntax_error(self) -> None:
        with pytest.raises(InvalidSyntax):
            read("openai-usage-completions", b"{not json")

    def test_wrong_shape_is_a_format_error(self) -> None:
        with pytest.raises(FormatError):
            read("openai-usage-completions", b'{"object": "page"}')


class TestOpenAIDashboardExport:
    def test_first_row(self) -> None:
        rows = read_file("dashboard_export_usage_completions.tsv")
        first = rows[0].event
        assert first is not None
        assert first.model == "gpt-4o-2024-08-06"
        assert first.dimensions.project_id == "proj_4BhNtYH0z7dWbBtzhibxa65W"
        assert first.dimensions.api_key_id == "key_OYRZfEkH5R9CNgtY"
        # input 59,200 = cached 5,760 + uncached 53,440.
        assert first.quantities[B.INPUT_UNCACHED_TOKENS] == 53_440
        assert first.quantities[B.CACHE_READ_TOKENS] == 5_760
        assert first.quantities[B.OUTPUT_TOKENS] == 10_646
        assert first.request_count == 10

    def test_empty_bucket_is_not_zero_usage(self) -> None:
        rows = read_file("dashboard_export_usage_completions.tsv")
        assert len(rows) == 7
        empty = [row for row in rows if row.empty]
        assert [row.row_number for row in empty] == [5]  # the 2025-10-08 bucket
        assert empty[0].event is None

    def test_same_keys_same_day_are_two_events(self) -> None:
        events = [row.event for row in read_file("dashboard_export_usage_completions.tsv") if row.event]
        october_sixth = [e for e in events if e.period_start == datetime(2025, 10, 6, tzinfo=UTC)]
        assert [e.request_count for e in october_sixth] == [8, 1]
        assert october_sixth[0].event_id != october_sixth[1].event_id


class TestAnthropicUsageReport:
    def test_buckets_are_already_exclusive(self) -> None:
        rows = read_file("docs_example_usage_report_messages.json")
        event = rows[0].event
        assert event is not None
        assert event.quantities == {
            B.INPUT_UNCACHED_TOKENS: 1500,
            B.CACHE_READ_TOKENS: 200,
            B.CACHE_WRITE_TOKENS: 500,
            B.CACHE_WRITE_1H_TOKENS: 1000,
            B.OUTPUT_TOKENS: 500,
            B.WEB_SEARCH_CALLS: 10,
        }
        # The provider's total input: 1,500 + 200 + 1,000 + 500 = 3,200 tokens.
        assert (
            sum(
                event.quantities[b]
                for b in (B.INPUT_UNCACHED_TOKENS, B.CACHE_READ_TOKENS, B.CACHE_WRITE_TOKENS, B.CACHE_WRITE_1H_TOKENS)
            )
            == 3200
        )
        assert event.model == "claude-opus-4-6"
        assert event.dimensions.workspace_id == "wrkspc_01JwQvzr7rXLA5AGx3HKfFUJ"
        assert event.dimensions.api_key_id == "apikey_01Rj2N8SVvo6BePZj99NhmiT"
        assert event.dimensions.user_id == "user_01WCz1FkmYMm4gnmykNKUu3Q"
        assert event.dimensions.tags["context_window"] == "0-200k"
        assert event.period_start == datetime(2025, 8, 1, tzinfo=UTC)

    def test_timestamp_without_zone_is_rejected(self) -> None:
        page = json.loads((DATA / "docs_example_usage_report_messages.json").read_text())
        page["data"][0]["starting_at"] = "2025-08-01T00:00:00"
        rows = read("anthropic-usage-report", json.dumps(page).encode())
        assert rows[0].error is not None
        assert rows[0].error.field_path == "data[0].starting_at"
        assert "no time zone" in rows[0].error.reason


class TestFocusCsv:
    def test_all_rows_and_billed_total(self) -> None:
        events = [row.event for row in read_file("focus_1.0_sample_trimmed.csv") if row.event]
        assert len(events) == 200
        total = sum((e.provider_cost.amount for e in events if e.provider_cost), Decimal(0))
        assert total == Decimal("11.47015605009")

    def test_gpu_row(self) -> None:
        rows = read_file("focus_1.0_sample_trimmed.csv")
        gpu = rows[83].event  # data row 84
        assert gpu is not None
        assert gpu.provider == "aws"
        assert gpu.provider_cost is not None and gpu.provider_cost.amount == Decimal("1.62400000000")
        assert gpu.provider_effective_cost is not None
        assert gpu.provider_effective_cost.amount == Decimal("2.00000000000")
        assert gpu.consumed_quantity == Decimal("1.000000000000000")
        assert gpu.consumed_unit == "Hours"
        assert gpu.dimensions.resource_id == "i-006flle71l19b488a"
        assert gpu.dimensions.tags["application"] == "BrightPathMatrix"
        assert gpu.period_start == datetime(2024, 9, 27, 15, tzinfo=UTC)  # "2024-09-27 15:00:00" read as UTC

    def test_credit_and_refund_keep_their_category(self) -> None:
        rows = read_file("focus_1.0_sample_trimmed.csv")
        credit = rows[104].event  # data row 105
        refund = rows[154].event  # data row 155: negative usage on Azure Machine Learning
        assert credit is not None and refund is not None
        assert credit.charge_category is ChargeCategory.CREDIT
        assert credit.provider_cost is not None and credit.provider_cost.amount == Decimal("-2.61370000000")
        assert credit.consumed_quantity is None  # the cell is NULL
        assert refund.charge_category is ChargeCategory.REFUND
        assert refund.quantities == {}

    def test_missing_required_column(self) -> None:
        with pytest.raises(FormatError, match="BilledCost"):
            read("focus-csv", b"ChargePeriodStart,ProviderName\n2024-09-01 00:00:00,AWS\n")

    def test_bad_cost_names_the_column(self) -> None:
        header, first, *_ = (DATA / "focus_1.0_sample_trimmed.csv").read_text().splitlines()
        broken = first.replace("0.00000080000", "lots", 1)
        rows = read("focus-csv", f"{header}\n{broken}\n".encode())
        assert rows[0].error is not None
        assert rows[0].error.field_path == "BilledCost"


class TestIdentity:
    def test_rereading_gives_the_same_ids(self) -> None:
        first = [row.event.event_id for row in read_file("dashboard_export_usage_completions.tsv") if row.event]
        second = [row.event.event_id for row in read_file("dashboard_export_usage_completions.tsv") if row.event]
        assert first == second
        assert len(set(first)) == 6

    def test_ids_are_scoped_by_tenant(self) -> None:
        acme = {row.event.event_id for row in read_file("focus_1.0_sample_trimmed.csv", "acme") if row.event}
        other = {row.event.event_id for row in read_file("focus_1.0_sample_trimmed.csv", "other") if row.event}
        assert len(acme) == 200
        assert acme.isdisjoint(other)


class TestDetection:
    @pytest.mark.parametrize(
        ("name", "expected"),
        [
            ("spec_example_usage_completions.json", "openai-usage-completions"),
            ("cookbook_real_usage_completions_buckets.json", "openai-usage-completions"),
            ("dashboard_export_usage_completions.tsv", "openai-dashboard-usage"),
            ("docs_example_usage_report_messages.json", "anthropic-usage-report"),
            ("anthropic_usage_webhook_2026-11.json", "anthropic-usage-report"),
            ("focus_1.0_sample_trimmed.csv", "focus-csv"),
        ],
    )
    def test_detects_each_sample(self, name: str, expected: str) -> None:
        assert detect_format((DATA / name).read_bytes()[:65536], name).format_name == expected

    def test_unknown_input(self) -> None:
        with pytest.raises(UnknownFormat, match="--format"):
            detect_format(b"hello,world\n1,2\n", "mystery.csv")


class TestOccurrenceCounter:
    def test_counts_survive_spilling_to_disk(self) -> None:
        counter = OccurrenceCounter(memory_keys=3)
        keys = [b"a", b"b", b"a", b"c", b"d", b"a", b"d", b"e"]
        # a is seen 3 times, d twice; the counts carry over when the fourth key moves them to SQLite.
        assert [counter.next(key) for key in keys] == [1, 1, 2, 1, 1, 3, 2, 1]
        assert counter._spilled is not None
        counter.close()

    def test_ids_do_not_change_when_counts_spill(self) -> None:
        keys = [{"day": index % 7} for index in range(40)]
        in_memory = IdentityAllocator("acme", "test")
        spilled = IdentityAllocator("acme", "test", OccurrenceCounter(memory_keys=2))
        in_memory_ids = [in_memory.event_id(key) for key in keys]
        spilled_ids = [spilled.event_id(key) for key in keys]
        assert in_memory_ids == spilled_ids
        assert len(set(in_memory_ids)) == 40  # 7 distinct keys, and every repeat gets its own occurrence
        spilled.close()


def test_header_json_matches_json_dumps() -> None:
    # Evidence hashes and event ids depend on these bytes, so the fast path must equal json.dumps exactly.
    from services.ingest.normalisers._csv import HeaderJson

    header = ["b", "a", "Ω", "c d"]
    values = ['é中文 "q" \\x', "line\nbreak\ttab", "\x01", "😀", "</script>", ""]
    encoder = HeaderJson(header, ("a", "Ω"))
    for shift in range(len(values)):
        row = {name: values[(index + shift) % len(values)] for index, name in enumerate(header)}
        assert encoder.row(row) == json.dumps(row, ensure_ascii=False, sort_keys=True)
        key = {"a": row["a"], "Ω": row["Ω"]}
        assert encoder.key(row) == json.dumps(key, sort_keys=True, default=str, separators=(",", ":"))
    short = {"b": "1", "a": "2"}  # a row with fewer cells than the header falls back
    assert encoder.row(short) == json.dumps(short, ensure_ascii=False, sort_keys=True)
    assert encoder.key(short) == '{"a":"2","\\u03a9":null}'
    repeated = HeaderJson(["a", "a", "b"])  # a repeated column name never takes the fast path
    assert repeated.complete is False
    assert repeated.row({"a": "2", "b": "3"}) == '{"a": "2", "b": "3"}'
