"""Anthropic Admin API messages usage report (``/v1/organizations/usage_report/messages``).

Buckets carry RFC 3339 ``starting_at``/``ending_at``. Anthropic's token counts are
already exclusive: ``uncached_input_tokens``, ``cache_read_input_tokens`` and the
two cache-creation lifetimes never overlap, so they map one to one onto buckets.
Server tool use (web search) is billed per request.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import IO, Any

from services.ingest.normalisers._json import bucket_results, load_json, page_items
from services.ingest.normalisers.base import (
    ROW_ERRORS,
    IdentityAllocator,
    ImportContext,
    RowRejected,
    RowResult,
    as_rejection,
    optional_str,
    quoted,
    rfc3339,
    sha256_hex,
    whole_number,
)
from shared.events import Evidence, ServiceTier, UsageBucket, UsageDimensions, UsageRecorded

_TIERS = {
    None: ServiceTier.STANDARD,
    "standard": ServiceTier.STANDARD,
    "batch": ServiceTier.BATCH,
    "priority": ServiceTier.PRIORITY,
    "flex": ServiceTier.FLEX,
}


class AnthropicUsageReport:
    format_name = "anthropic-usage-report"
    description = "Anthropic Admin API messages usage report (JSON page)"
    reads_json = True

    def detect(self, head: bytes, file_name: str | None) -> bool:
        keys = (b'"uncached_input_tokens":', b'"cache_read_input_tokens":')
        return b"starting_at" in head and any(key in head for key in keys)

    def rows(self, stream: IO[bytes], context: ImportContext) -> Iterator[RowResult]:
        buckets = page_items(load_json(stream, "the Anthropic usage report"), "an Anthropic usage report")
        identities = IdentityAllocator(context.tenant, self.format_name)
        try:
            for item in bucket_results(buckets, ("starting_at", "ending_at")):
                if item.error is not None:
                    yield RowResult(item.row_number, item.raw, error=item.error)
                    continue
                try:
                    event = self._event(
                        item.bucket,
                        item.bucket_path,
                        item.result,
                        item.field_path,
                        context,
                        identities,
                        item.row_number,
                        item.raw,
                    )
                except ROW_ERRORS as error:
                    yield RowResult(item.row_number, item.raw, error=as_rejection(error))
                else:
                    yield RowResult(item.row_number, item.raw, event=event)
        finally:
            identities.close()

    def _event(
        self,
        bucket: dict[str, Any],
        bucket_path: str,
        result: Any,
        field_path: str,
        context: ImportContext,
        identities: IdentityAllocator,
        row_number: int,
        raw: bytes,
    ) -> UsageRecorded:
        if not isinstance(result, dict):
            raise RowRejected(field_path, "must be an object")
        start = rfc3339(bucket.get("starting_at"), f"{bucket_path}.starting_at")
        end = rfc3339(bucket.get("ending_at"), f"{bucket_path}.ending_at")
        if end < start:
            raise RowRejected(f"{bucket_path}.ending_at", f"is before starting_at ({end} < {start})")
        cache_creation = result.get("cache_creation") or {}
        if not isinstance(cache_creation, dict):
            raise RowRejected(f"{field_path}.cache_creation", "must be an object")
        server_tools = result.get("server_tool_use") or {}
        if not isinstance(server_tools, dict):
            raise RowRejected(f"{field_path}.server_tool_use", "must be an object")
        counts = {
            UsageBucket.INPUT_UNCACHED_TOKENS: whole_number(
                result.get("uncached_input_tokens"), f"{field_path}.uncached_input_tokens"
            ),
            UsageBucket.CACHE_READ_TOKENS: whole_number(
                result.get("cache_read_input_tokens"), f"{field_path}.cache_read_input_tokens", required=False
            ),
            UsageBucket.CACHE_WRITE_TOKENS: whole_number(
                cache_creation.get("ephemeral_5m_input_tokens"),
                f"{field_path}.cache_creation.ephemeral_5m_input_tokens",
                required=False,
            ),
            UsageBucket.CACHE_WRITE_1H_TOKENS: whole_number(
                cache_creation.get("ephemeral_1h_input_tokens"),
                f"{field_path}.cache_creation.ephemeral_1h_input_tokens",
                required=False,
            ),
            UsageBucket.OUTPUT_TOKENS: whole_number(result.get("output_tokens"), f"{field_path}.output_tokens"),
            UsageBucket.WEB_SEARCH_CALLS: whole_number(
                server_tools.get("web_search_requests"),
                f"{field_path}.server_tool_use.web_search_requests",
                required=False,
            ),
        }
        quantities = {bucket_name: count for bucket_name, count in counts.items() if count is not None}
        tier_name = result.get("service_tier")
        if not isinstance(tier_name, str | None) or tier_name not in _TIERS:
            raise RowRejected(f"{field_path}.service_tier", f"unknown service tier {quoted(tier_name)}")
        tags = {
            name: value
            for name in ("context_window", "inference_geo", "service_account_id")
            if (value := optional_str(result.get(name), f"{field_path}.{name}")) is not None
        }
        dimensions = UsageDimensions(
            workspace_id=optional_str(result.get("workspace_id"), f"{field_path}.workspace_id"),
            api_key_id=optional_str(result.get("api_key_id"), f"{field_path}.api_key_id"),
            user_id=optional_str(result.get("account_id"), f"{field_path}.account_id"),
            tags=tags,
        )
        model = optional_str(result.get("model"), f"{field_path}.model")
        natural_key = {
            "start": start.isoformat(),
            "end": end.isoformat(),
            "model": model,
            "tier": _TIERS[tier_name].value,
            "dimensions": dimensions.model_dump(),
        }
        return UsageRecorded(
            event_id=identities.event_id(natural_key),
            occurred_at=start,
            source=f"ingest.{self.format_name}",
            tenant=context.tenant,
            correlation_id=context.correlation_id,
            provider="anthropic",
            service="messages",
            model=model,
            service_tier=_TIERS[tier_name],
            region=tags.get("inference_geo"),
            period_start=start,
            period_end=end,
            dimensions=dimensions,
            quantities=quantities,  # type: ignore[arg-type]
            evidence=Evidence(
                format=self.format_name, file_name=context.file_name, row_number=row_number, raw_sha256=sha256_hex(raw)
            ),
        )
