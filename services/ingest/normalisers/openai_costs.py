"""OpenAI's own cost statements: the costs API (``/v1/organization/costs``) and the dashboard's daily cost export.

Neither is a bill of record, so each result becomes a provider-cost-reported event
that allocation compares with the cost it computes from usage, and it never adds
to spend. Amounts are dollars written as JSON numbers, read as their exact decimal
text and never as binary floats, with a lower-case currency (``usd``).

``line_item`` is kept as written and also split when it has a known shape:
``"<model>, <token kind>"`` (``"ft-gpt-4o-2024-08-06, input"``) gives the model and
token kind, and ``"<product> | <detail>"`` keeps the product apart
(``"evals | gpt-4o-mini-2024-07-18, input"``).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime
from typing import IO, Any

from services.ingest.normalisers._csv import cell_count_error, read_rows
from services.ingest.normalisers._json import BucketResult, bucket_results, load_json, page_items
from services.ingest.normalisers.base import (
    ROW_ERRORS,
    FormatError,
    IdentityAllocator,
    ImportContext,
    RowRejected,
    RowResult,
    as_rejection,
    currency_code,
    decimal_value,
    epoch_seconds,
    object_at,
    optional_str,
    quoted,
    sha256_hex,
)
from shared.events import Evidence, Money, ProviderCostReported, UsageDimensions

RESULT_OBJECT = "organization.costs.result"
DASHBOARD_COLUMNS = ("start_time", "end_time", "amount_value", "amount_currency", "line_item", "project_id")
TOKEN_KINDS = frozenset(
    {"input", "output", "cached input", "cached_input", "cache write", "audio input", "audio output"}
)


def split_line_item(line_item: str | None) -> tuple[str | None, str | None]:
    """Return the model and token kind that a cost line item names, when it has the known shape."""
    if not line_item:
        return None, None
    detail = line_item.split(" | ", 1)[1] if " | " in line_item else line_item
    if ", " not in detail:
        return None, None
    model, kind = detail.rsplit(", ", 1)
    if kind.strip().lower() not in TOKEN_KINDS:
        return None, None
    return model.strip() or None, kind.strip().lower()


def _cost_event(
    *,
    format_name: str,
    context: ImportContext,
    identities: IdentityAllocator,
    start: datetime,
    end: datetime,
    amount: Money,
    line_item: str | None,
    dimensions: UsageDimensions,
    row_number: int,
    raw: bytes,
) -> ProviderCostReported:
    model, token_kind = split_line_item(line_item)
    natural_key = {
        "start": start.isoformat(),
        "end": end.isoformat(),
        "line_item": line_item,
        "dimensions": dimensions.model_dump(),
    }
    return ProviderCostReported(
        event_id=identities.event_id(natural_key),
        occurred_at=start,
        source=f"ingest.{format_name}",
        tenant=context.tenant,
        correlation_id=context.correlation_id,
        provider="openai",
        period_start=start,
        period_end=end,
        model=model,
        line_item=line_item,
        token_type=token_kind,
        dimensions=dimensions,
        amount=amount,
        evidence=Evidence(
            format=format_name, file_name=context.file_name, row_number=row_number, raw_sha256=sha256_hex(raw)
        ),
    )


class OpenAICosts:
    format_name = "openai-costs"
    description = "OpenAI organization costs API (JSON page or list of buckets); reconciled, not added to spend"
    reads_json = True

    def detect(self, head: bytes, file_name: str | None) -> bool:
        return f'"{RESULT_OBJECT}"'.encode() in head

    def rows(self, stream: IO[bytes], context: ImportContext) -> Iterator[RowResult]:
        buckets = page_items(load_json(stream, "the OpenAI costs report"), "an OpenAI costs report")
        identities = IdentityAllocator(context.tenant, self.format_name)
        try:
            for item in bucket_results(buckets, ("start_time", "end_time")):
                if item.error is not None:
                    yield RowResult(item.row_number, item.raw, error=item.error)
                    continue
                try:
                    event = self._event(item, context, identities)
                except ROW_ERRORS as error:
                    yield RowResult(item.row_number, item.raw, error=as_rejection(error))
                else:
                    yield RowResult(item.row_number, item.raw, event=event)
        finally:
            identities.close()

    def _event(self, item: BucketResult, context: ImportContext, identities: IdentityAllocator) -> ProviderCostReported:
        result, field_path = item.result, item.field_path
        if not isinstance(result, dict):
            raise RowRejected(field_path, "must be an object")
        if result.get("object") not in (None, RESULT_OBJECT):
            raise RowRejected(f"{field_path}.object", f"is {quoted(result.get('object'))}, expected {RESULT_OBJECT!r}")
        start = epoch_seconds(item.bucket.get("start_time"), f"{item.bucket_path}.start_time")
        end = epoch_seconds(item.bucket.get("end_time"), f"{item.bucket_path}.end_time")
        if end < start:
            raise RowRejected(f"{item.bucket_path}.end_time", f"is before start_time ({end} < {start})")

        amount = object_at(result, "amount", f"{field_path}.amount")
        value = decimal_value(amount.get("value"), f"{field_path}.amount.value")
        assert value is not None
        currency = currency_code(amount.get("currency"), f"{field_path}.amount.currency")
        dimensions = UsageDimensions(
            project_id=optional_str(result.get("project_id"), f"{field_path}.project_id"),
            api_key_id=optional_str(result.get("api_key_id"), f"{field_path}.api_key_id"),
            tags=_organization_tag(result.get("organization_id"), f"{field_path}.organization_id"),
        )
        return _cost_event(
            format_name=self.format_name,
            context=context,
            identities=identities,
            start=start,
            end=end,
            amount=Money(amount=value, currency=currency),
            line_item=optional_str(result.get("line_item"), f"{field_path}.line_item"),
            dimensions=dimensions,
            row_number=item.row_number,
            raw=item.raw,
        )


def _check_dashboard_header(header: list[str]) -> None:
    missing = [column for column in DASHBOARD_COLUMNS if column not in header]
    if missing:
        raise FormatError(f"the OpenAI dashboard cost export lacks columns: {', '.join(missing)}")


class OpenAIDashboardCosts:
    format_name = "openai-dashboard-costs"
    description = "OpenAI dashboard daily cost export (TSV or CSV); reconciled, not added to spend"
    reads_json = False

    def detect(self, head: bytes, file_name: str | None) -> bool:
        first_line = head.split(b"\n", 1)[0]
        return b"amount_value" in first_line and b"amount_currency" in first_line and b"start_time" in first_line

    def rows(self, stream: IO[bytes], context: ImportContext) -> Iterator[RowResult]:
        identities = IdentityAllocator(context.tenant, self.format_name)
        try:
            for row_number, _header, row in read_rows(
                stream, what="the OpenAI dashboard cost export", check_header=_check_dashboard_header
            ):
                raw = json.dumps(row, ensure_ascii=False, sort_keys=True).encode()
                misaligned = cell_count_error(row)
                if misaligned is not None:
                    yield RowResult(row_number, raw, error=misaligned)
                    continue
                if not row.get("amount_value", "").strip() and not row.get("amount_currency", "").strip():
                    yield RowResult(row_number, raw, empty=True)  # a day without charges, not a zero charge
                    continue
                try:
                    event = self._event(row, row_number, raw, context, identities)
                except ROW_ERRORS as error:
                    yield RowResult(row_number, raw, error=as_rejection(error))
                else:
                    yield RowResult(row_number, raw, event=event)
        finally:
            identities.close()

    def _event(
        self, row: dict[str, Any], row_number: int, raw: bytes, context: ImportContext, identities: IdentityAllocator
    ) -> ProviderCostReported:
        start = epoch_seconds(row.get("start_time"), "start_time")
        end = epoch_seconds(row.get("end_time"), "end_time")
        if end < start:
            raise RowRejected("end_time", f"is before start_time ({end} < {start})")
        value = decimal_value(row.get("amount_value"), "amount_value")
        assert value is not None
        dimensions = UsageDimensions(
            project_id=optional_str(row.get("project_id"), "project_id"),
            tags=_organization_tag(row.get("organization_id"), "organization_id"),
        )
        return _cost_event(
            format_name=self.format_name,
            context=context,
            identities=identities,
            start=start,
            end=end,
            amount=Money(amount=value, currency=currency_code(row.get("amount_currency"), "amount_currency")),
            line_item=optional_str(row.get("line_item"), "line_item"),
            dimensions=dimensions,
            row_number=row_number,
            raw=raw,
        )


def _organization_tag(value: object, field_path: str) -> dict[str, str]:
    """Keep the OpenAI organization as a tag, not an attribution key.

    OpenAI's usage reports never name the organization, so a statement scoped to it by account would match no
    usage; the organization is the whole of what the statement covers.
    """
    organization = optional_str(value, field_path)
    return {"organization_id": organization} if organization else {}
