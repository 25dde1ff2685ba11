"""OpenAI organization usage API (``/v1/organization/usage/<endpoint>``), one format per endpoint.

A page contains buckets (``start_time``/``end_time`` as Unix seconds), and each
bucket contains results grouped by the ``group_by`` of the request. Keys that were
not grouped by are null. The input may be one page object or a list of buckets (pages joined).

Token conventions of the completions endpoint, per OpenAI's API reference:
``input_tokens`` counts text input and includes ``input_cached_tokens`` and
``input_cache_write_tokens``, so the uncached share is the difference; when the
provider also states ``input_uncached_tokens`` the two must agree. Audio tokens
are counted apart from text (``input_audio_tokens``, ``output_audio_tokens``) and
go to their own buckets. The API does not report reasoning tokens apart from
``output_tokens``, so all text output is billed as output.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import IO, Any

from services.ingest.normalisers._json import BucketResult, bucket_results, load_json, page_items
from services.ingest.normalisers.base import (
    ROW_ERRORS,
    IdentityAllocator,
    ImportContext,
    RowRejected,
    RowResult,
    as_rejection,
    epoch_seconds,
    optional_str,
    quoted,
    sha256_hex,
    string_tags,
    whole_number,
)
from shared.events import Evidence, ServiceTier, UsageBucket, UsageDimensions, UsageRecorded

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
        raise RowRejected(_path(field_path, "batch"), f"must be true, false or null, got {quoted(batch)}")
    key = tier.lower() if isinstance(tier, str) else tier
    if key == "":
        key = None
    if not isinstance(key, str | None) or key not in _TIERS:
        raise RowRejected(_path(field_path, "service_tier"), f"unknown service tier {quoted(tier)}")
    return _TIERS[key]


def token_buckets(result: dict[str, Any], field_path: str) -> dict[UsageBucket, int]:
    """Split OpenAI's inclusive text input count into exclusive buckets, checking that they add up."""
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

    buckets = {
        UsageBucket.INPUT_UNCACHED_TOKENS: uncached,
        UsageBucket.CACHE_READ_TOKENS: cached,
        UsageBucket.CACHE_WRITE_TOKENS: cache_write,
        UsageBucket.OUTPUT_TOKENS: output,
    }
    for name, bucket in (
        ("input_audio_tokens", UsageBucket.AUDIO_INPUT_TOKENS),
        ("output_audio_tokens", UsageBucket.AUDIO_OUTPUT_TOKENS),
    ):
        count = whole_number(result.get(name), _path(field_path, name), required=False)
        if count is not None:
            buckets[bucket] = count
    return buckets


def _counted(name: str, bucket: UsageBucket) -> Callable[[dict[str, Any], str], dict[UsageBucket, int]]:
    def read(result: dict[str, Any], field_path: str) -> dict[UsageBucket, int]:
        count = whole_number(result.get(name), _path(field_path, name))
        assert count is not None
        return {bucket: count}

    return read


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One usage endpoint: its result object, the service it bills and how its counts map to buckets."""

    format_name: str
    path: str
    result_object: str
    service: str
    quantities: Callable[[dict[str, Any], str], dict[UsageBucket, int]]
    tag_fields: tuple[str, ...] = ()


ENDPOINTS = (
    Endpoint(
        "openai-usage-completions", "completions", "organization.usage.completions.result", "completions", token_buckets
    ),
    Endpoint(
        "openai-usage-embeddings",
        "embeddings",
        "organization.usage.embeddings.result",
        "embeddings",
        _counted("input_tokens", UsageBucket.INPUT_UNCACHED_TOKENS),
    ),
    Endpoint(
        "openai-usage-moderations",
        "moderations",
        "organization.usage.moderations.result",
        "moderations",
        _counted("input_tokens", UsageBucket.INPUT_UNCACHED_TOKENS),
    ),
    Endpoint(
        "openai-usage-images",
        "images",
        "organization.usage.images.result",
        "images",
        _counted("images", UsageBucket.IMAGES),
        ("size", "source"),
    ),
    Endpoint(
        "openai-usage-audio-speeches",
        "audio_speeches",
        "organization.usage.audio_speeches.result",
        "audio_speeches",
        _counted("characters", UsageBucket.CHARACTERS),
    ),
    Endpoint(
        "openai-usage-audio-transcriptions",
        "audio_transcriptions",
        "organization.usage.audio_transcriptions.result",
        "audio_transcriptions",
        _counted("seconds", UsageBucket.AUDIO_SECONDS),
    ),
    Endpoint(
        "openai-usage-web-search-calls",
        "web_search_calls",
        "organization.usage.web_searches.result",
        "web_search",
        _counted("num_requests", UsageBucket.WEB_SEARCH_CALLS),
        ("context_level",),
    ),
)


class OpenAIUsage:
    """Reads the pages of one usage endpoint into usage events priced from the catalogue."""

    reads_json = True

    def __init__(self, endpoint: Endpoint) -> None:
        self.endpoint = endpoint
        self.format_name = endpoint.format_name
        self.description = f"OpenAI organization usage API, {endpoint.path} (JSON page or list of buckets)"

    def detect(self, head: bytes, file_name: str | None) -> bool:
        return f'"{self.endpoint.result_object}"'.encode() in head

    def rows(self, stream: IO[bytes], context: ImportContext) -> Iterator[RowResult]:
        buckets = page_items(load_json(stream, "the OpenAI usage report"), "an OpenAI usage report")
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

    def _event(self, item: BucketResult, context: ImportContext, identities: IdentityAllocator) -> UsageRecorded:
        result, field_path = item.result, item.field_path
        if not isinstance(result, dict):
            raise RowRejected(field_path, "must be an object")
        result_object = result.get("object")
        if result_object is not None and result_object != self.endpoint.result_object:
            raise RowRejected(
                f"{field_path}.object",
                f"is {quoted(result_object)}, but format {self.format_name} reads "
                f"{self.endpoint.result_object!r}; import this page with its own format",
            )
        start = epoch_seconds(item.bucket.get("start_time"), f"{item.bucket_path}.start_time")
        end = epoch_seconds(item.bucket.get("end_time"), f"{item.bucket_path}.end_time")
        if end < start:
            raise RowRejected(f"{item.bucket_path}.end_time", f"is before start_time ({end} < {start})")

        quantities = self.endpoint.quantities(result, field_path)
        requests = whole_number(result.get("num_model_requests"), f"{field_path}.num_model_requests", required=False)
        tags = string_tags(
            {name: optional_str(result.get(name), f"{field_path}.{name}") for name in self.endpoint.tag_fields}
        )
        dimensions = UsageDimensions(
            project_id=optional_str(result.get("project_id"), f"{field_path}.project_id"),
            user_id=optional_str(result.get("user_id"), f"{field_path}.user_id"),
            api_key_id=optional_str(result.get("api_key_id"), f"{field_path}.api_key_id"),
            tags=tags,
        )
        model = optional_str(result.get("model"), f"{field_path}.model")
        tier = service_tier(result.get("batch"), result.get("service_tier"), field_path)

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
            service=self.endpoint.service,
            model=model,
            service_tier=tier,
            period_start=start,
            period_end=end,
            dimensions=dimensions,
            quantities=dict(quantities),
            request_count=requests,
            evidence=Evidence(
                format=self.format_name,
                file_name=context.file_name,
                row_number=item.row_number,
                raw_sha256=sha256_hex(item.raw),
            ),
        )


OPENAI_USAGE_NORMALISERS = tuple(OpenAIUsage(endpoint) for endpoint in ENDPOINTS)
