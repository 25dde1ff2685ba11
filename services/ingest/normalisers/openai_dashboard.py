"""OpenAI dashboard usage export (the "Export" button on the usage page), completions, as TSV or CSV.

Columns mirror the usage API's result fields with ``start_time``/``end_time`` in
Unix seconds; counts are written as floats (``59200.0``) and booleans as
``TRUE``/``FALSE``. A bucket with no usage is a row whose metric cells are all
empty: it is reported as empty, never turned into zeros.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import IO

from services.ingest.normalisers._csv import cell_count_error, read_rows
from services.ingest.normalisers.base import (
    ROW_ERRORS,
    FormatError,
    IdentityAllocator,
    ImportContext,
    RowResult,
    as_rejection,
    epoch_seconds,
    optional_str,
    sha256_hex,
    whole_number,
)
from services.ingest.normalisers.openai_usage import service_tier, token_buckets
from shared.events import Evidence, UsageDimensions, UsageRecorded

REQUIRED_COLUMNS = ("start_time", "end_time", "model", "input_tokens", "output_tokens", "num_model_requests")
METRIC_COLUMNS = ("num_model_requests", "input_tokens", "output_tokens", "input_cached_tokens")


def _check_header(header: list[str]) -> None:
    missing = [column for column in REQUIRED_COLUMNS if column not in header]
    if missing:
        raise FormatError(f"the OpenAI dashboard export lacks columns: {', '.join(missing)}")


class OpenAIDashboardUsageExport:
    format_name = "openai-dashboard-usage"
    description = "OpenAI dashboard usage export, completions (TSV or CSV)"
    reads_json = False

    def detect(self, head: bytes, file_name: str | None) -> bool:
        first_line = head.split(b"\n", 1)[0]
        return b"start_time" in first_line and b"input_tokens" in first_line and b"num_model_requests" in first_line

    def rows(self, stream: IO[bytes], context: ImportContext) -> Iterator[RowResult]:
        identities = IdentityAllocator(context.tenant, self.format_name)
        try:
            for row_number, _header, row in read_rows(
                stream, what="the OpenAI dashboard export", check_header=_check_header
            ):
                raw = json.dumps(row, ensure_ascii=False, sort_keys=True).encode()
                misaligned = cell_count_error(row)
                if misaligned is not None:
                    yield RowResult(row_number, raw, error=misaligned)
                    continue
                if all(not row.get(column, "").strip() for column in METRIC_COLUMNS):
                    yield RowResult(row_number, raw, empty=True)
                    continue
                try:
                    yield RowResult(row_number, raw, event=self._event(row, row_number, raw, context, identities))
                except ROW_ERRORS as error:
                    yield RowResult(row_number, raw, error=as_rejection(error))
        finally:
            identities.close()

    def _event(
        self, row: dict[str, str], row_number: int, raw: bytes, context: ImportContext, identities: IdentityAllocator
    ) -> UsageRecorded:
        start = epoch_seconds(row.get("start_time"), "start_time")
        end = epoch_seconds(row.get("end_time"), "end_time")
        quantities = token_buckets(dict(row), "")
        requests = whole_number(row.get("num_model_requests"), "num_model_requests", required=False)
        dimensions = UsageDimensions(
            project_id=optional_str(row.get("project_id"), "project_id"),
            user_id=optional_str(row.get("user_id"), "user_id"),
            api_key_id=optional_str(row.get("api_key_id"), "api_key_id"),
        )
        model = optional_str(row.get("model"), "model")
        tier = service_tier(row.get("batch"), row.get("service_tier"), "")
        natural_key = {
            "start": start.isoformat(),
            "end": end.isoformat(),
            "model": model,
            "tier": tier.value,
            "dimensions": dimensions.model_dump(),
        }
        return UsageRecorded(
            event_id=identities.event_id(natural_key),
            occurred_at=start,
            source=f"ingest.{self.format_name}",
            tenant=context.tenant,
            correlation_id=context.correlation_id,
            provider="openai",
            service="completions",
            model=model,
            service_tier=tier,
            period_start=start,
            period_end=end,
            dimensions=dimensions,
            quantities=dict(quantities),
            request_count=requests,
            evidence=Evidence(
                format=self.format_name, file_name=context.file_name, row_number=row_number, raw_sha256=sha256_hex(raw)
            ),
        )
