"""Hostile input against every normaliser: malformed, huge, deeply nested, wrong-typed, unicode and numeric edges.

Whatever the input, a normaliser either rejects the whole input with FormatError (or its InvalidSyntax subclass)
or yields one result per row that is an event, a rejection naming a field, or an empty row. It never crashes, and
an event it yields never holds a negative, fractional or non-finite token count.
"""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.ingest.normalisers import NORMALISERS, FormatError, ImportContext, RowResult
from shared.events import TOKEN_BUCKETS, UsageRecorded

CONTEXT = ImportContext(tenant="fuzz", correlation_id="fuzz", received_at=datetime(2026, 1, 1, tzinfo=UTC))

EDGE_NUMBERS = [0, -0.0, -1, 1e308, -1e308, 2**63, 2**63 - 1, -(2**63), 2**64, 1.5, 1e-310, "NaN", "Infinity", "1e400"]
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from(EDGE_NUMBERS),
    st.text(max_size=40),
    st.sampled_from(["", "NULL", "2025-10-05T00:00:00Z", "2025-10-05 00:00:00", "\u202e\u0000", "💸" * 10]),
)
json_values = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=20), children, max_size=6),
    max_leaves=40,
)
FIELD_NAMES = [
    "start_time", "end_time", "starting_at", "ending_at", "results", "data", "input_tokens", "output_tokens",
    "input_cached_tokens", "input_uncached_tokens", "input_cache_write_tokens", "uncached_input_tokens",
    "cache_read_input_tokens", "cache_creation", "num_model_requests", "model", "project_id", "batch",
    "service_tier", "workspace_id", "server_tool_use",
]  # fmt: skip
usage_like = st.dictionaries(st.sampled_from(FIELD_NAMES), json_values, max_size=12)
pages = st.one_of(
    json_values,
    st.builds(lambda buckets: {"object": "page", "data": buckets}, st.lists(usage_like, max_size=4)),
    st.builds(
        lambda results: {
            "data": [
                {
                    "start_time": 1730419200,
                    "end_time": 1730505600,
                    "starting_at": "2025-08-01T00:00:00Z",
                    "ending_at": "2025-08-02T00:00:00Z",
                    "results": results,
                }
            ]
        },
        st.lists(usage_like, max_size=4),
    ),
)


def _check_results(results: list[RowResult]) -> None:
    for result in results:
        outcomes = [result.event is not None, result.error is not None, result.empty]
        assert sum(outcomes) == 1, result
        if result.error is not None:
            assert result.error.field_path
            assert result.error.reason
        if isinstance(result.event, UsageRecorded):
            for bucket, quantity in result.event.quantities.items():
                assert quantity.is_finite()
                assert quantity >= 0
                if bucket in TOKEN_BUCKETS:
                    assert quantity == quantity.to_integral_value()


def _normalise(format_name: str, data: bytes) -> None:
    try:
        results = list(NORMALISERS[format_name].rows(io.BytesIO(data), CONTEXT))
    except FormatError:
        return
    _check_results(results)


def _to_json(value: Any) -> bytes:
    return json.dumps(value, default=str).encode()


@pytest.mark.parametrize("format_name", sorted(NORMALISERS))
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(document=pages)
def test_json_documents_never_crash(format_name: str, document: Any) -> None:
    _normalise(format_name, _to_json(document))


@pytest.mark.parametrize("format_name", sorted(NORMALISERS))
@settings(max_examples=150, deadline=None)
@given(data=st.binary(max_size=2000))
def test_random_bytes_never_crash(format_name: str, data: bytes) -> None:
    _normalise(format_name, data)


@pytest.mark.parametrize("format_name", sorted(NORMALISERS))
@settings(max_examples=100, deadline=None)
@given(
    header=st.lists(
        st.sampled_from(
            FIELD_NAMES
            + [
                "BilledCost",
                "ChargePeriodStart",
                "ChargePeriodEnd",
                "BillingCurrency",
                "ChargeCategory",
                "ProviderName",
                "ServiceName",
                "Tags",
            ]
        ),
        min_size=1,
        max_size=12,
    ),
    rows=st.lists(st.lists(st.text(max_size=30), max_size=14), max_size=5),
)
def test_csv_like_input_never_crashes(format_name: str, header: list[str], rows: list[list[str]]) -> None:
    lines = ["\t".join(header) if format_name == "openai-dashboard-usage" else ",".join(header)]
    separator = "\t" if format_name == "openai-dashboard-usage" else ","
    lines += [separator.join(cell.replace("\n", " ") for cell in row) for row in rows]
    _normalise(format_name, "\n".join(lines).encode("utf-8", errors="replace"))


@pytest.mark.parametrize("format_name", sorted(NORMALISERS))
def test_deep_nesting_is_refused(format_name: str) -> None:
    nested: Any = 1
    for _ in range(10_000):
        nested = [nested]
    _normalise(format_name, _to_json_deep(nested))


def _to_json_deep(value: Any) -> bytes:
    depth = 0
    while isinstance(value, list):
        value = value[0]
        depth += 1
    return b"[" * depth + b"1" + b"]" * depth


@pytest.mark.parametrize("value", ["1e308", "-0", "-0.0", "9223372036854775808", "1.5", "NaN", "Infinity", "-1"])
def test_numeric_edges_in_token_counts(value: str) -> None:
    result = '{"input_tokens": ' + value + ', "output_tokens": 5, "num_model_requests": 1}'
    page = (
        '{"object": "page", "data": [{"start_time": 1730419200, "end_time": 1730505600, "results": [' + result + "]}]}"
    ).encode()
    try:
        results = list(NORMALISERS["openai-usage-completions"].rows(io.BytesIO(page), CONTEXT))
    except FormatError:
        assert value in ("NaN", "Infinity")  # JSON has no such numbers; the whole document is invalid
        return
    _check_results(results)
    event = results[0].event
    if value in ("-0", "-0.0"):
        assert event is not None
        assert event.quantities  # zero tokens is real (zero) usage, stored as 0, not -0
        assert all(str(quantity) != "-0" for quantity in event.quantities.values())
    elif value in ("9223372036854775808", "1e308"):  # 2^63 and 1e308 tokens: above the 10^18 plausibility cap
        assert results[0].error is not None
        assert "implausibly large" in results[0].error.reason
    else:
        assert results[0].error is not None
        assert results[0].error.field_path.endswith("input_tokens")
