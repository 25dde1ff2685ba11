"""Hostile input for every normaliser: whatever the bytes, a reader rejects rows or the input, and never crashes.

Each case starts from a real sample of the format and replaces values with random
JSON values or cells with random text, so the inputs get past the first checks and
reach the deep ones. A row may be rejected, or the input refused with FormatError;
any other exception is a bug.
"""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.ingest.normalisers import NORMALISERS, FormatError, ImportContext
from tests.conftest import EXAMPLES, ROOT

FIXTURES = ROOT / "tests" / "fixtures" / "ingest"
DATA = EXAMPLES / "data"

JSON_SAMPLES = {
    "openai-usage-completions": DATA / "spec_example_usage_completions.json",
    "openai-usage-images": FIXTURES / "openai_usage_costs" / "spec_example_usage_images.json",
    "openai-costs": FIXTURES / "openai_usage_costs" / "spec_example_costs.json",
    "anthropic-usage-report": DATA / "docs_example_usage_report_messages.json",
    "anthropic-cost-report": FIXTURES / "anthropic_admin_usage_cost" / "docs_example_cost_report.json",
    "anthropic-claude-code-usage": FIXTURES
    / "anthropic_admin_usage_cost"
    / "docs_example_claude_code_usage_report.json",
    "litellm-spend-logs": DATA / "litellm_spend_logs_payload.json",
    "litellm-logging-payload": FIXTURES / "litellm" / "standard_logging_payload.json",
    "opencost-allocation": FIXTURES / "opencost" / "allocation_compute_window2d_aggregate_namespace.json",
    "github-copilot-seats": DATA / "github_copilot_billing_seats_list.json",
    "github-copilot-billing": FIXTURES / "seats_licences" / "github_copilot_org_billing_details.json",
    "m365-copilot-usage": FIXTURES / "seats_licences" / "m365_copilot_usage_user_detail_docs.json",
    "cloudevents": DATA / "cloudevents_gpu_cluster_constructed.json",
}
TEXT_SAMPLES = {
    "focus-csv": DATA / "focus_1.0_sample_trimmed.csv",
    "aws-cur": DATA / "aws_cur2_bedrock_gpu_constructed.csv",
    "azure-cost-export": DATA / "azure_cost_export_openai_constructed.csv",
    "gcp-billing-export": FIXTURES / "gcp_billing_export" / "koku_gcp_billing_export_202011.csv",
    "openai-dashboard-usage": DATA / "dashboard_export_usage_completions.tsv",
    "openai-dashboard-costs": FIXTURES / "openai_usage_costs" / "dashboard_export_costs_daily.tsv",
    "dcgm-exporter": DATA / "dcgm_exporter_scrapes_constructed.prom",
}
CONTEXT = ImportContext(
    tenant="fuzz", correlation_id="fuzz", received_at=datetime(2026, 11, 20, tzinfo=UTC), observed_at=None
)

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**20), max_value=10**20)
    | st.text(max_size=30)
    | st.sampled_from(["", "NaN", "-1", "1e999", "2026-11-01T00:00:00", "2026-13-40", "0.5", "usd", "x" * 600]),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3),
    max_leaves=6,
)
cell_texts = st.text(max_size=40) | st.sampled_from(["", "NULL", "-0.5", "1e400", "nan", "{", '{"a": [1]}', "x" * 600])


def leaf_paths(node: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    if isinstance(node, dict):
        return [p for key, child in node.items() for p in leaf_paths(child, (*path, key))] or [path]
    if isinstance(node, list):
        return [p for index, child in enumerate(node) for p in leaf_paths(child, (*path, index))] or [path]
    return [path]


def replaced(document: Any, path: tuple[Any, ...], value: Any) -> Any:
    if not path:
        return value
    head, rest = path[0], path[1:]
    copy = dict(document) if isinstance(document, dict) else list(document)
    copy[head] = replaced(document[head], rest, value)
    return copy


def read_all(format_name: str, data: bytes) -> None:
    try:
        rows = list(NORMALISERS[format_name].rows(io.BytesIO(data), CONTEXT))
    except FormatError:
        return
    for row in rows:
        assert (row.error is not None) + bool(row.events) + row.empty == 1, row


@pytest.mark.parametrize("format_name", sorted(NORMALISERS))
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.binary(max_size=600))
def test_random_bytes(format_name: str, data: bytes) -> None:
    read_all(format_name, data)


@pytest.mark.parametrize("format_name", sorted(JSON_SAMPLES))
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(choices=st.data())
def test_mutated_json_samples(format_name: str, choices: st.DataObject) -> None:
    document = json.loads(Path(JSON_SAMPLES[format_name]).read_text(), parse_float=str)
    paths = leaf_paths(document)
    for _ in range(choices.draw(st.integers(min_value=1, max_value=3))):
        path = choices.draw(st.sampled_from(paths))
        document = replaced(document, path, choices.draw(json_values))
    read_all(format_name, json.dumps(document).encode())


@pytest.mark.parametrize("format_name", sorted(TEXT_SAMPLES))
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(choices=st.data())
def test_mutated_text_samples(format_name: str, choices: st.DataObject) -> None:
    lines = Path(TEXT_SAMPLES[format_name]).read_text().splitlines()[:6]
    if format_name == "dcgm-exporter":
        index = choices.draw(st.integers(min_value=0, max_value=len(lines) - 1))
        lines[index] = lines[index][: choices.draw(st.integers(0, len(lines[index])))] + choices.draw(cell_texts)
        read_all(format_name, "\n".join(lines).encode())
        return
    delimiter = "\t" if "\t" in lines[0] else ","
    rows = list(csv.reader(lines, delimiter=delimiter))
    for _ in range(choices.draw(st.integers(min_value=1, max_value=4))):
        row = choices.draw(st.integers(min_value=1, max_value=len(rows) - 1))
        cell = choices.draw(st.integers(min_value=0, max_value=len(rows[row]) - 1))
        rows[row][cell] = choices.draw(cell_texts)
    output = io.StringIO()
    csv.writer(output, delimiter=delimiter, lineterminator="\n").writerows(rows)
    read_all(format_name, output.getvalue().encode())
