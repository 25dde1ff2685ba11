"""Anthropic Admin API cost report (``/v1/organizations/cost_report``).

The cost report is Anthropic's own statement, not a bill of record, so each result
becomes a provider-cost-reported event for reconciliation and never adds to spend.
``amount`` is a decimal string in cents of ``currency``, divided by 100 exactly:
``"123.78912"`` USD is 1.2378912 USD. ``cost_type`` (tokens, web_search,
code_execution, session_usage) is kept as the line item and ``token_type`` as
written (``uncached_input_tokens``, ``cache_creation.ephemeral_1h_input_tokens`` ...).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import IO

from services.ingest.normalisers._json import BucketResult, bucket_results, load_json, page_items
from services.ingest.normalisers.base import (
    ROW_ERRORS,
    IdentityAllocator,
    ImportContext,
    RowRejected,
    RowResult,
    as_rejection,
    currency_code,
    decimal_value,
    optional_str,
    quoted,
    rfc3339,
    sha256_hex,
    string_tags,
)
from shared.events import Evidence, Money, ProviderCostReported, ServiceTier, UsageDimensions

_TIERS = {None: None, "standard": ServiceTier.STANDARD, "batch": ServiceTier.BATCH, "priority": ServiceTier.PRIORITY}


class AnthropicCostReport:
    format_name = "anthropic-cost-report"
    description = "Anthropic Admin API cost report (JSON page); reconciled, not added to spend"
    reads_json = True

    def detect(self, head: bytes, file_name: str | None) -> bool:
        return b'"starting_at"' in head and b'"cost_type"' in head

    def rows(self, stream: IO[bytes], context: ImportContext) -> Iterator[RowResult]:
        buckets = page_items(load_json(stream, "the Anthropic cost report"), "an Anthropic cost report")
        identities = IdentityAllocator(context.tenant, self.format_name)
        try:
            for item in bucket_results(buckets, ("starting_at", "ending_at")):
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
        start = rfc3339(item.bucket.get("starting_at"), f"{item.bucket_path}.starting_at")
        end = rfc3339(item.bucket.get("ending_at"), f"{item.bucket_path}.ending_at")
        if end < start:
            raise RowRejected(f"{item.bucket_path}.ending_at", f"is before starting_at ({end} < {start})")
        cents = decimal_value(result.get("amount"), f"{field_path}.amount")
        assert cents is not None
        currency = currency_code(result.get("currency"), f"{field_path}.currency")
        tier_name = result.get("service_tier")
        if not isinstance(tier_name, str | None) or tier_name not in _TIERS:
            raise RowRejected(f"{field_path}.service_tier", f"unknown service tier {quoted(tier_name)}")
        tags = string_tags(
            {
                name: optional_str(result.get(name), f"{field_path}.{name}")
                for name in ("context_window", "inference_geo", "description")
            }
        )
        dimensions = UsageDimensions(
            workspace_id=optional_str(result.get("workspace_id"), f"{field_path}.workspace_id"), tags=tags
        )
        model = optional_str(result.get("model"), f"{field_path}.model")
        cost_type = optional_str(result.get("cost_type"), f"{field_path}.cost_type")
        token_type = optional_str(result.get("token_type"), f"{field_path}.token_type")
        natural_key = {
            "start": start.isoformat(),
            "end": end.isoformat(),
            "model": model,
            "cost_type": cost_type,
            "token_type": token_type,
            "tier": tier_name,
            "dimensions": dimensions.model_dump(),
        }
        return ProviderCostReported(
            event_id=identities.event_id(natural_key),
            occurred_at=start,
            source=f"ingest.{self.format_name}",
            tenant=context.tenant,
            correlation_id=context.correlation_id,
            provider="anthropic",
            period_start=start,
            period_end=end,
            model=model,
            line_item=cost_type,
            token_type=token_type,
            service_tier=_TIERS[tier_name],
            dimensions=dimensions,
            amount=Money(amount=cents.scaleb(-2), currency=currency),  # cents to units, exactly
            evidence=Evidence(
                format=self.format_name,
                file_name=context.file_name,
                row_number=item.row_number,
                raw_sha256=sha256_hex(item.raw),
            ),
        )
