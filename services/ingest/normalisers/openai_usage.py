"""OpenAI organization usage API, completions endpoint (``/v1/organization/usage/completions``).

A page holds buckets (``start_time``/``end_time`` as Unix seconds) and each bucket
holds results grouped by whatever ``group_by`` the caller asked for; ungrouped
keys are null. ``input_tokens`` includes ``input_cached_tokens`` and
``input_cache_write_tokens``, so the uncached share is the difference; when the
provider also states ``input_uncached_tokens`` the two must agree. The API does
not report reasoning tokens apart from ``output_tokens``, so all output is billed
as output. The input may be one page object or a list of buckets (pages joined).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import IO, Any

from services.ingest.normalisers._json import canonical_bytes, load_json
from services.ingest.normalisers.base import (
    FormatError,
    IdentityAllocator,
    ImportContext,
    RowRejected,
    RowResult,
    epoch_seconds,
    optional_str,
    sha256_hex,
    whole_number,
)
from shared.events import Evidence, ServiceTier, UsageBucket, UsageDimensions, UsageRecorded

RESULT_OBJECT = "organization.usage.completions.result"

_TIERS = {
    None: ServiceTier.STANDARD,
    "default": ServiceTier.STANDARD,
    "auto": ServiceTier.STANDARD,
    "standard": ServiceTier.STANDARD,
    "flex": ServiceTier.FLEX,
    "priority": ServiceTier.PRIORITY,
    "scale": ServiceTier.PRIORITY,
    "batch": ServiceTier.BATCH,
}


def _path(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


def service_tier(batch: Any, tier: Any, field_path: str) -> ServiceTier:
    if batch is True or str(batch).upper() == "TRUE":
        return ServiceTier.BATCH
    if batch not in (None, False, "", "FALSE", "False", "false"):
        raise RowRejected(_path(field_path, "batch"), f"must be true, false or null, got {batch!r}")
    key = tier.lower() if isinstance(tier, str) else tier
    if key == "":
        key = None
    if key not in _TIERS:
        raise RowRejected(_path(field_path, "service_tier"), f"unknown service tier {tier!r}")
    return _TIERS[key]


def token_buckets(result: dict[str, Any], field_path: str) -> dict[UsageBucket, int]:
    """Split OpenAI's inclusive input count into exclusive buckets, checking that they add up."""
    total_input = whole_number(result.get("input_tokens"), _path(field_path, "input_tokens"))
    cached = (
        whole_number(result.get("input_cached_tokens"), _path(field_path, "input_cached_tokens"), required=False) or 0
    )
    cache_write = (
        whole_number(
            result.get("input_cache_write_tokens"), _path(field_path, "input_cache_write_tokens"), required=False
        )
        or 0
    )
    output = whole_number(result.get("output_tokens"), _path(field_path, "output_tokens"))
    assert total_input is not None and output is not None  # required fields never come back None
    uncached = total_input - cached - cache_write
    if uncached < 0:
        raise RowRejected(
            _path(field_path, "input_tokens"),
            f"input_tokens {total_input} is less than input_cached_tokens {cached} + input_cache_write_tokens "
            f"{cache_write}",
        )
    stated = whole_number(
        result.get("input_uncached_tokens"), _path(field_path, "input_uncached_tokens"), required=False
    )
    if stated is not None and stated != uncached:
        raise RowRejected(
            _path(field_path, "input_uncached_tokens"),
            f"is {stated} but input_tokens {total_input} - input_cached_tokens {cached} - input_cache_write_tokens "
            f"{cache_write} = {uncached}",
        )
    return {
        UsageBucket.INPUT_UNCACHED_TOKENS: uncached,
        UsageBucket.CACHE_READ_TOKENS: cached,
        UsageBucket.CACHE_WRITE_TOKENS: cache_write,
        UsageBucket.OUTPUT_TOKENS: output,
    }


class OpenAIUsageCompletions:
    format_name = "openai-usage-completions"
    description = "OpenAI organization usage API, completions (JSON page or list of buckets)"

    def detect(self, head: bytes, file_name: str | None) -> bool:
        return RESULT_OBJECT.encode() in head or (b'"object": "bucket"' in head and b"input_tokens" in head)

    def rows(self, stream: IO[bytes], context: ImportContext) -> Iterator[RowResult]:
        document = load_json(stream, "the OpenAI usage report")
        buckets = _buckets(document)
        identities = IdentityAllocator(context.tenant, self.format_name)
        row_number = 0
        for bucket_index, bucket in enumerate(buckets):
            bucket_path = f"data[{bucket_index}]"
            if not isinstance(bucket, dict):
                row_number += 1
                yield RowResult(
                    row_number, canonical_bytes(bucket), error=RowRejected(bucket_path, "must be an object")
                )
                continue
            results = bucket.get("results")
            if not isinstance(results, list):
                row_number += 1
                yield RowResult(
                    row_number, canonical_bytes(bucket), error=RowRejected(f"{bucket_path}.results", "must be a list")
                )
                continue
            for result_index, result in enumerate(results):
                row_number += 1
                field_path = f"{bucket_path}.results[{result_index}]"
                raw = canonical_bytes(
                    {"start_time": bucket.get("start_time"), "end_time": bucket.get("end_time"), "result": result}
                )
                try:
                    event = self._event(bucket, bucket_path, result, field_path, context, identities, row_number, raw)
                except RowRejected as error:
                    yield RowResult(row_number, raw, error=error)
                else:
                    yield RowResult(row_number, raw, event=event)

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
        start = epoch_seconds(bucket.get("start_time"), f"{bucket_path}.start_time")
        end = epoch_seconds(bucket.get("end_time"), f"{bucket_path}.end_time")
        if end < start:
            raise RowRejected(f"{bucket_path}.end_time", f"is before start_time ({end} < {start})")
        quantities = token_buckets(result, field_path)
        requests = whole_number(result.get("num_model_requests"), f"{field_path}.num_model_requests", required=False)
        dimensions = UsageDimensions(
            project_id=optional_str(result.get("project_id"), f"{field_path}.project_id"),
            user_id=optional_str(result.get("user_id"), f"{field_path}.user_id"),
            api_key_id=optional_str(result.get("api_key_id"), f"{field_path}.api_key_id"),
        )
        model = optional_str(result.get("model"), f"{field_path}.model")
        tier = service_tier(result.get("batch"), result.get("service_tier"), field_path)
        natural_key = {
            "start": start.isoformat(),
            "end": end.isoformat(),
            "model": model,
            "tier": tier.value,
            "dimensions": dimensions.model_dump(),
            "quantities": {k.value: v for k, v in quantities.items()},
            "requests": requests,
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
            quantities={bucket: quantity for bucket, quantity in quantities.items()},
            request_count=requests,
            evidence=Evidence(
                format=self.format_name, file_name=context.file_name, row_number=row_number, raw_sha256=sha256_hex(raw)
            ),
        )


def _buckets(document: Any) -> list[Any]:
    if isinstance(document, list):
        return document
    if isinstance(document, dict) and isinstance(document.get("data"), list):
        return list(document["data"])
    raise FormatError("an OpenAI usage report must be a page object with a 'data' list, or a list of buckets")
