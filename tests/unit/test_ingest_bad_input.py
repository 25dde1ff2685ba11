"""Bad input as a new user would feed it: each case ends in a clear error naming the line or field.

The cases start from the sample files in examples/data and tests/fixtures/ingest,
which the SOURCES.md beside them lists with their sources.
"""

from __future__ import annotations

import codecs
import csv
import gzip
import io
import json
import os
import re
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner

from aifinops.cli import main
from services.ingest.batch import choose_normaliser
from services.ingest.normalisers import (
    NORMALISERS,
    EmptyInput,
    FormatError,
    ImportContext,
    InvalidSyntax,
    RowResult,
    _csv,
    detect_format,
)
from services.ingest.normalisers._json import load_json
from services.ingest.normalisers.azure_cost import azure_day
from services.ingest.normalisers.base import (
    RowRejected,
    currency_code,
    decimal_value,
    rfc3339,
    utc_day,
    utc_timestamp,
    whole_number,
)
from shared.events import UsageBucket
from tests.conftest import EXAMPLES, ROOT

FIXTURES = ROOT / "tests" / "fixtures" / "ingest"
DATA = EXAMPLES / "data"
CSV_SAMPLES = {
    "focus-csv": DATA / "focus_1.0_sample_trimmed.csv",
    "aws-cur": DATA / "aws_cur2_bedrock_gpu_constructed.csv",
    "azure-cost-export": DATA / "azure_cost_export_openai_constructed.csv",
    "gcp-billing-export": FIXTURES / "gcp_billing_export" / "koku_gcp_billing_export_202011.csv",
    "openai-dashboard-usage": DATA / "dashboard_export_usage_completions.tsv",
    "openai-dashboard-costs": FIXTURES / "openai_usage_costs" / "dashboard_export_costs_daily.tsv",
}
CONTEXT = ImportContext(tenant="acme", correlation_id="test", received_at=datetime(2026, 11, 20, tzinfo=UTC))


def read(format_name: str, data: bytes) -> list[RowResult]:
    return list(NORMALISERS[format_name].rows(io.BytesIO(data), CONTEXT))


def event_fields(row: RowResult) -> list[dict[str, object]]:
    return [event.model_dump(exclude={"produced_at"}) for event in row.events]


def rejection(row: RowResult) -> tuple[str, str] | None:
    return (row.error.field_path, row.error.reason) if row.error is not None else None


def sample_rows(path: Path) -> tuple[str, list[list[str]]]:
    """Return the delimiter and the header plus the first three data rows of a sample, as cells."""
    lines = path.read_text(encoding="utf-8-sig").splitlines()
    delimiter = "\t" if "\t" in lines[0] else ","
    return delimiter, list(csv.reader(lines[:4], delimiter=delimiter))


def written(delimiter: str, rows: list[list[str]]) -> bytes:
    buffer = io.StringIO()
    csv.writer(buffer, delimiter=delimiter, lineterminator="\n").writerows(rows)
    return buffer.getvalue().encode()


class TestRowLength:
    @pytest.mark.parametrize("format_name", sorted(CSV_SAMPLES))
    def test_short_and_long_rows_rejected_with_line(self, format_name: str) -> None:
        delimiter, rows = sample_rows(CSV_SAMPLES[format_name])
        header, first, second, third = rows
        width = len(header)
        rows = [header, first, second[:-2], [*third, "surplus"]]  # data rows 2 and 3 sit on lines 3 and 4

        results = read(format_name, written(delimiter, rows))

        assert [row.row_number for row in results] == [1, 2, 3]
        assert results[0].error is None
        short, long = results[1].error, results[2].error
        assert short is not None and long is not None
        assert short.field_path == "line 3"
        assert short.reason.startswith(f"has {width - 2} cells, fewer than the {width} columns of the header")
        assert long.field_path == "line 4"
        assert long.reason.startswith(f"has {width + 1} cells, more than the {width} columns of the header")

    def test_short_row_is_not_counted_as_empty(self) -> None:
        # The dashboard export counts a row without metrics as empty, and a row cut short must not pass for one.
        delimiter, rows = sample_rows(CSV_SAMPLES["openai-dashboard-usage"])
        header, first = rows[0], rows[1]

        results = read("openai-dashboard-usage", written(delimiter, [header, first[:3]]))

        assert len(results) == 1
        assert results[0].empty is False
        assert results[0].error is not None
        assert results[0].error.field_path == "line 2"

    def test_quoted_newline_counts_its_lines(self) -> None:
        # A cell with a line break inside quotes spans two lines, so the next row starts on line 4, not 3.
        delimiter, rows = sample_rows(CSV_SAMPLES["focus-csv"])
        header, first, second = rows[0], rows[1], rows[2]
        description = header.index("ChargeDescription")
        first[description] = "first line\nsecond line"

        results = read("focus-csv", written(delimiter, [header, first, second[:-1]]))

        assert results[0].error is None
        assert results[1].error is not None
        assert results[1].error.field_path == "line 4"

    def test_m365_csv_row_length(self) -> None:
        path = FIXTURES / "seats_licences" / "m365_copilot_usage_user_detail_header_only.csv"
        header = path.read_text(encoding="utf-8-sig").splitlines()[0]

        results = read("m365-copilot-usage", f"{header}\n2026-11-30,7,someone@example.com\n".encode())

        assert len(results) == 1
        assert results[0].error is not None
        assert results[0].error.field_path == "line 2"
        assert "3 cells, fewer than" in results[0].error.reason


class TestEncoding:
    @pytest.mark.parametrize("format_name", sorted(CSV_SAMPLES))
    def test_invalid_utf8_names_byte_offset(self, format_name: str) -> None:
        data = CSV_SAMPLES[format_name].read_bytes()
        second_line = data.index(b"\n") + 1
        broken = data[: second_line + 4] + b"\xff" + data[second_line + 5 :]

        with pytest.raises(InvalidSyntax) as raised:
            read(format_name, broken)

        assert f"byte 0xff at offset {second_line + 4} (line 2) is invalid" in str(raised.value)

    @pytest.mark.parametrize(
        ("format_name", "path"),
        [
            ("gcp-billing-export", DATA / "gcp_billing_export_vertex_ai_constructed.ndjson"),
            ("cloudevents", DATA / "cloudevents_gpu_cluster_constructed.json"),
            ("openai-usage-completions", DATA / "spec_example_usage_completions.json"),
            ("dcgm-exporter", DATA / "dcgm_exporter_scrapes_constructed.prom"),
        ],
    )
    def test_invalid_utf8_in_json_and_metrics(self, format_name: str, path: Path) -> None:
        data = path.read_bytes()
        at = data.index(b"\n", 100) + 1  # the start of the line after byte 100
        line = data.count(b"\n", 0, at) + 1

        with pytest.raises(InvalidSyntax) as raised:
            read(format_name, data[:at] + b"\xc3(" + data[at:])

        assert f"byte 0xc3 at offset {at} (line {line}) is invalid" in str(raised.value)

    def test_utf16_is_named(self) -> None:
        text = CSV_SAMPLES["openai-dashboard-usage"].read_text()

        with pytest.raises(InvalidSyntax, match="is UTF-16 text; save or export it as UTF-8"):
            read("openai-dashboard-usage", text.encode("utf-16"))

    @pytest.mark.parametrize(
        ("format_name", "path"),
        [
            *sorted(CSV_SAMPLES.items()),
            ("gcp-billing-export", DATA / "gcp_billing_export_vertex_ai_constructed.ndjson"),
            ("cloudevents", DATA / "cloudevents_gpu_cluster_constructed.json"),
            ("dcgm-exporter", DATA / "dcgm_exporter_scrapes_constructed.prom"),
        ],
    )
    def test_bom_reads_like_no_bom(self, format_name: str, path: Path) -> None:
        plain = read(format_name, path.read_bytes().removeprefix(codecs.BOM_UTF8))
        with_bom = read(format_name, codecs.BOM_UTF8 + path.read_bytes().removeprefix(codecs.BOM_UTF8))

        assert len(with_bom) == len(plain)
        assert [event_fields(row) for row in with_bom] == [event_fields(row) for row in plain]
        assert [rejection(row) for row in with_bom] == [rejection(row) for row in plain]

    def test_line_longer_than_limit(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setattr(_csv, "MAX_LINE_BYTES", 200)
        data = CSV_SAMPLES["focus-csv"].read_bytes()

        with pytest.raises(InvalidSyntax, match="the FOCUS file line 1 is longer than 200 bytes"):
            read("focus-csv", data)


class TestDetection:
    @pytest.mark.parametrize(
        ("path", "expected"),
        [
            (DATA / "spec_example_usage_completions.json", "openai-usage-completions"),
            (DATA / "cookbook_real_usage_completions_buckets.json", "openai-usage-completions"),
            (FIXTURES / "openai_usage_costs" / "spec_example_usage_embeddings.json", "openai-usage-embeddings"),
        ],
    )
    def test_minified_json_before_csv(self, path: Path, expected: str) -> None:
        # On one line, the page's keys include every column the dashboard export detector looks for.
        minified = json.dumps(json.loads(path.read_bytes())).encode()

        assert detect_format(minified, path.name).format_name == expected

    def test_json_list_before_csv(self) -> None:
        path = DATA / "spec_example_usage_completions.json"
        buckets = json.dumps(json.loads(path.read_bytes())["data"]).encode()

        assert detect_format(codecs.BOM_UTF8 + b"  " + buckets, path.name).format_name == "openai-usage-completions"

    def test_bom_ndjson(self) -> None:
        path = DATA / "gcp_billing_export_vertex_ai_constructed.ndjson"

        assert detect_format(codecs.BOM_UTF8 + path.read_bytes(), path.name).format_name == "gcp-billing-export"

    @pytest.mark.parametrize("data", [b"", b" \n\t\r\n", codecs.BOM_UTF8, codecs.BOM_UTF8 + b"\n"])
    def test_empty_file(self, data: bytes) -> None:
        with pytest.raises(EmptyInput, match="^the file is empty$"):
            detect_format(data, "export.csv")

    @pytest.mark.parametrize("format_name", sorted(CSV_SAMPLES))
    def test_header_only_reads_no_rows(self, format_name: str) -> None:
        header = CSV_SAMPLES[format_name].read_bytes().split(b"\n", 1)[0]

        assert detect_format(header, "export.csv").format_name == format_name
        assert read(format_name, header) == []
        assert read(format_name, header + b"\n") == []

    @pytest.mark.parametrize("format_name", ["focus-csv", "openai-costs", "cloudevents", "dcgm-exporter"])
    def test_empty_file_with_format(self, format_name: str) -> None:
        with pytest.raises(EmptyInput, match="is empty"):
            read(format_name, b"")


class TestImportCommand:
    @pytest.fixture
    def environment(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
        monkeypatch.chdir(tmp_path)  # no demo connection file here
        monkeypatch.setenv("AIFINOPS_DATA_DIR", str(tmp_path / "data"))
        monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9")  # nothing listens: events stay in the outbox
        monkeypatch.delenv("DATABASE_URL", raising=False)
        return tmp_path

    def test_empty_file_exits_2(self, environment: Path) -> None:
        empty = environment / "usage.csv"
        empty.write_bytes(b"")

        result = CliRunner().invoke(main, ["import", str(empty)])

        assert result.exit_code == 2
        assert "the file is empty" in " ".join(result.output.split())

    def test_header_only_says_nothing_imported(self, environment: Path) -> None:
        export = environment / "costs.tsv"
        export.write_bytes(CSV_SAMPLES["openai-dashboard-costs"].read_bytes().split(b"\n", 1)[0] + b"\n")

        result = CliRunner().invoke(main, ["import", str(export)])

        assert result.exit_code == 0, result.output
        assert "read 0, accepted 0" in result.output
        assert "costs.tsv has no data rows" in " ".join(result.output.split())


class TestNumbers:
    @pytest.mark.parametrize("text", ["١٢٣", "１２", "1_000", "²", "٣.٥", "12e٣"])
    def test_only_ascii_digits(self, text: str) -> None:
        for read_number in (decimal_value, whole_number):
            with pytest.raises(RowRejected) as raised:
                read_number(text, "quantity")

            assert raised.value.field_path == "quantity"
            assert "in ASCII digits" in raised.value.reason

    @pytest.mark.parametrize("text", ["0x10", "12 34", "1,5", "1e", "+-1", "1.2.3"])
    def test_not_a_number(self, text: str) -> None:
        with pytest.raises(RowRejected) as raised:
            decimal_value(text, "cost")

        assert raised.value.reason == f"must be a number, got {text!r}"

    @pytest.mark.parametrize("text", ["NaN", "-nan", "Infinity", "+inf", "sNaN"])
    def test_non_finite(self, text: str) -> None:
        with pytest.raises(RowRejected, match="must be a finite number"):
            decimal_value(text, "cost")

    @pytest.mark.parametrize(
        ("value", "reason"),
        [
            ("1e308", "is implausibly large ('1e308')"),
            ("-1e19", "is implausibly large ('-1e19')"),
            (2**63, "is implausibly large (9223372036854775808)"),
            ("1e-31", "is too small ('1e-31'); the smallest non-zero value read is 1E-30"),
        ],
    )
    def test_out_of_range(self, value: object, reason: str) -> None:
        with pytest.raises(RowRejected) as raised:
            decimal_value(value, "cost")

        assert raised.value.reason == reason

    @pytest.mark.parametrize(
        ("text", "reason"),
        [
            ("1e9999999999", "is implausibly large ('1e9999999999')"),
            ("1e-9999999999", "is too small ('1e-9999999999'); the smallest non-zero value read is 1E-30"),
        ],
    )
    def test_extreme_exponent(self, text: str, reason: str) -> None:
        # abs() of these raised decimal.Overflow or ran into the context's limits.
        for read_number in (decimal_value, whole_number):
            with pytest.raises(RowRejected) as raised:
                read_number(text, "cost")

            assert raised.value.reason == reason

    def test_zero_with_extreme_exponent(self) -> None:
        assert decimal_value("0e9999999999", "cost") == 0
        assert str(decimal_value("0e9999999999", "cost")) == "0"
        assert str(decimal_value("-0e-9999999999", "cost")) == "0"

    def test_signed_zero_is_zero(self) -> None:
        assert str(decimal_value("-0", "cost")) == "0"
        assert str(decimal_value("-0.00", "cost")) == "0.00"
        assert whole_number("-0", "tokens") == 0

    def test_whole_number_limits(self) -> None:
        assert whole_number("59200.0", "tokens") == 59200
        assert whole_number(10**18, "tokens") == 10**18
        with pytest.raises(RowRejected, match="implausibly large"):
            whole_number(2**63, "tokens")
        with pytest.raises(RowRejected, match="must be a whole number, got '1e-30'"):
            whole_number("1e-30", "tokens")

    def test_long_value_quoted_short(self) -> None:
        with pytest.raises(RowRejected) as raised:
            decimal_value("9" * 50 + "x" * 10_000, "cost")

        # 40 quoted characters, then the length of the whole value.
        assert (
            raised.value.reason == f"must be a number of at most 100 characters, got {'9' * 40!r}... (10050 characters)"
        )

    def test_focus_cost_in_arabic_digits(self) -> None:
        delimiter, rows = sample_rows(CSV_SAMPLES["focus-csv"])
        header, first = rows[0], rows[1]
        first[header.index("BilledCost")] = "٠٫٥"

        results = read("focus-csv", written(delimiter, [header, first]))

        assert results[0].error is not None
        assert results[0].error.field_path == "BilledCost"
        assert results[0].error.reason == "must be a number in ASCII digits, got '٠٫٥'"

    def test_dashboard_tokens_in_full_width_digits(self) -> None:
        delimiter, rows = sample_rows(CSV_SAMPLES["openai-dashboard-usage"])
        header, first = rows[0], rows[1]
        first[header.index("input_tokens")] = "５９２００"

        results = read("openai-dashboard-usage", written(delimiter, [header, first]))

        assert results[0].error is not None
        assert results[0].error.field_path == "input_tokens"
        assert "in ASCII digits" in results[0].error.reason

    @pytest.mark.parametrize("start", ["123abc", "١٧٣٧٧١٠٨٤٦"])
    def test_litellm_start_time_not_a_time(self, start: str) -> None:
        record = json.loads((DATA / "litellm_spend_logs_payload.json").read_bytes())
        record["startTime"] = start

        results = read("litellm-spend-logs", json.dumps(record).encode())

        assert results[0].error is not None
        assert results[0].error.field_path == "startTime"


class TestGpuMetrics:
    SAMPLE = DATA / "dcgm_exporter_scrapes_constructed.prom"
    FIRST_VALUE = re.compile(r"(DCGM_FI_DEV_GPU_UTIL\{[^}]*\}) [0-9.]+ [0-9]+")

    def scrape(self, replacement: str) -> bytes:
        text, count = self.FIRST_VALUE.subn(rf"\1 {replacement}", self.SAMPLE.read_text(), count=1)
        assert count == 1
        return text.encode()

    @pytest.mark.parametrize(("value", "shown"), [("NaN", "NaN"), ("+Inf", "Infinity"), ("-Inf", "-Infinity")])
    def test_non_finite_sample_rejects_series(self, value: str, shown: str) -> None:
        results = read("dcgm-exporter", self.scrape(f"{value} 1793700000000"))

        errors = [row.error for row in results if row.error is not None]
        assert len(errors) == 1
        assert errors[0].field_path == "DCGM_FI_DEV_GPU_UTIL"
        assert errors[0].reason == f"has the sample value {shown}, but utilisation must be a finite number"

    @pytest.mark.parametrize("value", ["٣٥", "３５", "1_0"])
    def test_sample_value_in_other_digits(self, value: str) -> None:
        with pytest.raises(InvalidSyntax, match="is not a number in ASCII digits"):
            read("dcgm-exporter", self.scrape(f"{value} 1793700000000"))

    def test_timestamp_out_of_range(self) -> None:
        with pytest.raises(InvalidSyntax, match="line 4: timestamp '99999999999999999999' is not a time"):
            read("dcgm-exporter", self.scrape("35 99999999999999999999"))


def completions_page(**result_changes: str) -> bytes:
    """Return the OpenAI completions sample page as text, with result fields replaced by raw JSON text."""
    text = (DATA / "spec_example_usage_completions.json").read_text()
    for name, value in result_changes.items():
        replacement = f'"{name}": {value}'
        text, count = re.subn(rf'"{name}": [^,\n]+', lambda _match, new=replacement: new, text, count=1)
        assert count == 1, name
    return text.encode()


class TestHostileJson:
    @pytest.mark.parametrize("data", [b"[" * 100_000 + b"]" * 100_000, b'{"a":' * 40 + b"1" + b"}" * 40])
    def test_deep_nesting(self, data: bytes) -> None:
        with pytest.raises(FormatError, match="^the OpenAI usage report is nested deeper than 32 levels$"):
            read("openai-usage-completions", data)

    def test_depth_limit(self) -> None:
        # The root is level 1, so 31 nested lists put the number on level 32, the deepest read.
        assert load_json(io.BytesIO(b"[" * 31 + b"0" + b"]" * 31), "the input") is not None
        with pytest.raises(FormatError, match="nested deeper than 32 levels"):
            load_json(io.BytesIO(b"[" * 32 + b"0" + b"]" * 32), "the input")

    @pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
    def test_non_finite_constants(self, constant: str) -> None:
        with pytest.raises(InvalidSyntax, match=f"{constant} is not a JSON number; write a number or null"):
            read("openai-usage-completions", completions_page(input_tokens=constant))

    @pytest.mark.parametrize(
        ("value", "reason"),
        [
            ("1e308", "is implausibly large ('1e308')"),
            ("9223372036854775808", "is implausibly large (9223372036854775808)"),
            ("9" * 5000, f"must be a whole number of at most 100 characters, got {'9' * 40!r}... (5000 characters)"),
            ('"٢٢"', "must be a whole number in ASCII digits, got '٢٢'"),
        ],
    )
    def test_bad_token_count_names_field(self, value: str, reason: str) -> None:
        results = read("openai-usage-completions", completions_page(input_tokens=value))

        assert len(results) == 1
        assert results[0].error is not None
        assert results[0].error.field_path == "data[0].results[0].input_tokens"
        assert results[0].error.reason == reason

    def test_negative_zero_reads_as_zero(self) -> None:
        # input_tokens 500 = cached 400 + cache write 100 + uncached 0, so an uncached count of -0 is consistent.
        results = read("openai-usage-completions", completions_page(input_uncached_tokens="-0", input_tokens="500"))

        assert results[0].error is None
        event = results[0].events[0]
        assert event.quantities.get(UsageBucket.INPUT_UNCACHED_TOKENS, 0) == 0

    def test_repeated_key(self) -> None:
        data = completions_page(input_tokens='1000, "input_tokens": 5')

        with pytest.raises(InvalidSyntax, match="the key 'input_tokens' appears twice in one object"):
            read("openai-usage-completions", data)

    def test_unpaired_surrogate(self) -> None:
        data = completions_page(project_id='"\\ud800"')

        with pytest.raises(InvalidSyntax, match=r"unpaired surrogate \(\\ud800 on line 26\)"):
            read("openai-usage-completions", data)

    @pytest.mark.parametrize("escape", ["\\ud800", "\\u0000"])
    def test_escape_in_json_inside_a_cell(self, escape: str) -> None:
        # The Tags cell is JSON text inside a CSV cell, so the file-level check does not see its escapes.
        delimiter, rows = sample_rows(CSV_SAMPLES["focus-csv"])
        header, first = rows[0], rows[1]
        first[header.index("Tags")] = '{"team": "a' + escape + '"}'

        results = read("focus-csv", written(delimiter, [header, first]))

        assert results[0].error is not None
        assert results[0].error.field_path == "Tags"
        assert results[0].error.reason.startswith("has text with a NUL or an unpaired surrogate")

    def test_nested_json_in_a_field(self) -> None:
        record = json.loads((DATA / "litellm_spend_logs_payload.json").read_bytes())
        record["metadata"] = "[" * 50_000 + "]" * 50_000

        results = read("litellm-spend-logs", json.dumps(record).encode())

        assert results[0].error is not None
        assert results[0].error.field_path == "metadata"
        assert results[0].error.reason.endswith("... (100000 characters)")


class TestWrongFormat:
    FILES = sorted(
        path
        for folder in (DATA, FIXTURES)
        for path in folder.rglob("*")
        if path.is_file()
        and path.suffix in {".json", ".ndjson", ".csv", ".tsv", ".prom"}
        and path.name not in {"outcomes.csv", "outcomes_support_2026-10.csv"}
    )

    @pytest.mark.parametrize("format_name", sorted(NORMALISERS))
    def test_every_file_fails_clearly(self, format_name: str) -> None:
        for path in self.FILES:
            try:
                results = read(format_name, path.read_bytes())
            except FormatError as error:
                assert str(error), path
                continue
            errors = [row.error for row in results if row.error is not None]
            accepted = [row for row in results if row.events]

            # Nothing is read in silence: rows are accepted or rejected with a field, or the file has no data rows.
            assert accepted or errors or path.name.endswith("header_only.csv"), (path.name, format_name)
            assert all(error.field_path and error.reason for error in errors), (path.name, format_name)

    @pytest.mark.parametrize("format_name", sorted(CSV_SAMPLES))
    def test_header_of_another_format(self, format_name: str) -> None:
        header = (FIXTURES / "seats_licences" / "m365_copilot_usage_user_detail_header_only.csv").read_bytes()

        with pytest.raises(FormatError, match="lacks"):
            read(format_name, header)

    @pytest.mark.parametrize("format_name", sorted(set(CSV_SAMPLES) - {"gcp-billing-export"}))  # it reads NDJSON too
    def test_json_given_to_csv_reader(self, format_name: str) -> None:
        data = json.dumps(json.loads((DATA / "spec_example_usage_completions.json").read_bytes())).encode()

        with pytest.raises(FormatError, match="starts like JSON, not like a CSV header"):
            read(format_name, data)

    def test_command_names_detected_format(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.chdir(tmp_path)
        monkeypatch.setenv("AIFINOPS_DATA_DIR", str(tmp_path / "data"))
        monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9")
        monkeypatch.delenv("DATABASE_URL", raising=False)
        sample = str(DATA / "spec_example_usage_completions.json")

        result = CliRunner().invoke(main, ["import", "--format", "anthropic-usage-report", sample])

        output = " ".join(result.output.split())
        assert result.exit_code == 1
        assert "rejected row 1: data[0].starting_at:" in output
        assert "every row was rejected; the file looks like format openai-usage-completions" in output


class TestNotText:
    @pytest.mark.parametrize(
        ("data", "advice"),
        [
            (gzip.compress(b"BilledCost,ChargePeriodStart\n"), "is gzip-compressed; decompress it first"),
            (b"PK\x03\x04\x14\x00\x06\x00", "is a ZIP archive or an Excel workbook"),
            (b"PAR1\x15\x04\x15\x80", "is a Parquet file"),
        ],
    )
    def test_compressed_or_binary_file(self, data: bytes, advice: str) -> None:
        with pytest.raises(InvalidSyntax, match=f"^the file {advice}"):
            detect_format(data, "export.csv")
        with pytest.raises(InvalidSyntax, match=f"^the FOCUS file {advice}"):
            read("focus-csv", data)
        with pytest.raises(InvalidSyntax, match=f"^the OpenAI usage report {advice}"):
            read("openai-usage-completions", data)

    def test_nul_byte_in_csv(self) -> None:
        data = CSV_SAMPLES["focus-csv"].read_bytes()
        at = data.index(b"\n") + 20  # 19 bytes into line 2

        with pytest.raises(InvalidSyntax, match=f"^the FOCUS file has a NUL byte at offset {at} \\(line 2\\)"):
            read("focus-csv", data[:at] + b"\x00" + data[at:])

    def test_nul_in_json(self) -> None:
        with pytest.raises(InvalidSyntax, match="NUL character"):
            read("openai-usage-completions", completions_page(project_id='"a\\u0000b"'))
        with pytest.raises(InvalidSyntax, match=r"has a NUL byte at offset 2 \(line 1\)"):
            read("openai-usage-completions", b'{"\x00": 1}')

    @pytest.mark.parametrize("format_name", sorted(CSV_SAMPLES))
    def test_bare_cr_line_ends(self, format_name: str) -> None:
        data = CSV_SAMPLES[format_name].read_bytes()
        mac = data.replace(b"\r\n", b"\n").replace(b"\n", b"\r")

        assert [event_fields(row) for row in read(format_name, mac)] == [
            event_fields(row) for row in read(format_name, data)
        ]

    def test_bare_cr_line_numbers(self) -> None:
        delimiter, rows = sample_rows(CSV_SAMPLES["focus-csv"])
        data = written(delimiter, [rows[0], rows[1], rows[2][:-1]]).replace(b"\n", b"\r")

        results = read("focus-csv", data)

        assert results[1].error is not None
        assert results[1].error.field_path == "line 3"


class TestCurrency:
    @pytest.mark.parametrize("value", ["ÄÖÜ", "ＵＳＤ", "US", "USDT", "U$D", ""])
    def test_not_three_ascii_letters(self, value: str) -> None:
        with pytest.raises(RowRejected, match="must be an ISO 4217 currency code"):
            currency_code(value, "currency")

    def test_lower_case_is_read(self) -> None:
        assert currency_code(" usd ", "currency") == "USD"

    def test_focus_currency_in_other_letters(self) -> None:
        delimiter, rows = sample_rows(CSV_SAMPLES["focus-csv"])
        header, first = rows[0], rows[1]
        first[header.index("BillingCurrency")] = "ＵＳＤ"

        results = read("focus-csv", written(delimiter, [header, first]))

        assert results[0].error is not None
        assert results[0].error.field_path == "BillingCurrency"


class TestDates:
    @pytest.mark.parametrize(
        ("read_time", "value"),
        [
            (utc_day, "9999-12-31"),
            (utc_day, "0001-01-01"),
            (rfc3339, "9999-12-31T23:59:59-05:00"),
            (utc_timestamp, "0001-01-01T00:00:00+01:00"),
            (utc_timestamp, "1969-12-31T23:59:59Z"),
            (azure_day, "12/31/9999"),
        ],
    )
    def test_far_dates_rejected(self, read_time: Callable[[str, str], object], value: str) -> None:
        # Each of these overflowed datetime (a day later, or a conversion to UTC) or lies before 1970.
        with pytest.raises(RowRejected) as raised:
            read_time(value, "period")

        assert raised.value.field_path == "period"
        assert raised.value.reason == f"is outside the years 1970 to 2199: {value!r}"

    def test_last_plausible_instant(self) -> None:
        assert rfc3339("2199-12-31T23:59:59Z", "period") == datetime(2199, 12, 31, 23, 59, 59, tzinfo=UTC)

    def test_focus_charge_period_in_year_9999(self) -> None:
        delimiter, rows = sample_rows(CSV_SAMPLES["focus-csv"])
        header, first = rows[0], rows[1]
        first[header.index("ChargePeriodEnd")] = "9999-12-31 23:59:59"

        results = read("focus-csv", written(delimiter, [header, first]))

        assert results[0].error is not None
        assert results[0].error.field_path == "ChargePeriodEnd"


class TestHeaderAndPath:
    def test_repeated_column_name(self) -> None:
        delimiter, rows = sample_rows(CSV_SAMPLES["focus-csv"])
        header = ["BilledCost" if name == "AvailabilityZone" else name for name in rows[0]]

        with pytest.raises(FormatError, match="has the column 'BilledCost' twice in its header"):
            read("focus-csv", written(delimiter, [header, rows[1]]))

    def test_unnamed_columns_may_repeat(self) -> None:
        # Trailing delimiters make unnamed columns; they hold nothing the reader uses.
        delimiter, rows = sample_rows(CSV_SAMPLES["focus-csv"])
        header, first = [*rows[0], "", ""], [*rows[1], "", ""]

        results = read("focus-csv", written(delimiter, [header, first]))

        assert results[0].error is None

    def test_too_many_columns(self) -> None:
        header = ",".join(f"column{index}" for index in range(10_001))

        with pytest.raises(FormatError, match="has 10001 columns in its header, more than the 10000 read"):
            read("focus-csv", header.encode() + b"\n")

    def test_fifo_is_not_read(self, tmp_path: Path) -> None:
        fifo = tmp_path / "usage.csv"
        os.mkfifo(fifo)

        with pytest.raises(FormatError, match="not a regular file"):
            choose_normaliser(fifo, "focus-csv")
