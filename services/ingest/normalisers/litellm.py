"""LiteLLM proxy spend logs: rows of the ``LiteLLM_SpendLogs`` table and the standard logging payload of its callbacks.

Each record is one request through the gateway. It becomes one usage event priced
from the catalogue, with LiteLLM's own ``spend`` (``response_cost`` in the logging
payload), in US dollars, kept as the provider cost for reconciliation. The event id
derives from the request id, so a record that arrives twice is recorded once.

Token convention: LiteLLM reports usage the way OpenAI does. ``prompt_tokens``
includes cached, cache-write and audio input tokens, and ``completion_tokens``
includes reasoning and audio output tokens. The parts come from the usage object
(``metadata.usage_object`` in a spend log, ``response.usage`` in the payload), and
each is moved into its own bucket. A part larger than its total, or a
``total_tokens`` that is not prompt plus completion, rejects the record.

NOTE: for Anthropic models LiteLLM is assumed to count cache reads and cache
writes inside ``prompt_tokens`` as well; check one record against Anthropic's
usage report before relying on the split.

Reading rules:

- ``startTime``/``endTime`` without a zone are read as UTC; LiteLLM writes the
  proxy's clock, so run the proxy in UTC. Numbers are Unix seconds.
- ``metadata``, ``request_tags`` and the other JSON columns may be JSON text
  inside a string, as the table stores them.
- A cache hit (``cache_hit`` true) was answered from LiteLLM's cache without a
  provider call, so it is read as empty, not as billed usage.
- Input is one JSON record, a JSON array, newline-delimited JSON, or a CSV export.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import IO, Any

from services.ingest.normalisers._csv import cell_count_error, peek, read_rows
from services.ingest.normalisers._json import canonical_bytes, load_json_or_lines
from services.ingest.normalisers.base import (
    NUMBER_PATTERN,
    ROW_ERRORS,
    FormatError,
    IdentityAllocator,
    ImportContext,
    RowRejected,
    RowResult,
    as_rejection,
    checked_text,
    decimal_value,
    non_negative,
    optional_str,
    plausible_instant,
    quoted,
    sha256_hex,
    string_tags,
    utc_timestamp,
    whole_number,
)
from shared.events import Evidence, Money, UsageBucket, UsageDimensions, UsageRecorded

LITELLM_CURRENCY = "USD"  # LiteLLM's price map and spend are in US dollars
_PROVIDERS = {
    "bedrock": "aws",
    "bedrock_converse": "aws",
    "sagemaker": "aws",
    "vertex_ai": "gcp",
    "vertex_ai_beta": "gcp",
    "azure": "azure",
    "azure_ai": "azure",
    "azure_text": "azure",
}


def _json_field(value: Any, field_path: str) -> Any:
    if isinstance(value, str) and value.strip()[:1] in ("{", "["):
        try:
            return checked_text(json.loads(value, parse_float=str), field_path)
        except (ValueError, RecursionError):
            raise RowRejected(field_path, f"must be JSON, got {quoted(value)}") from None
    return value


def _instant(value: Any, field_path: str) -> datetime:
    if isinstance(value, str) and NUMBER_PATTERN.fullmatch(value.strip()):
        value = decimal_value(value, field_path)  # Unix seconds written as a JSON number
    if isinstance(value, int | Decimal):
        try:
            return plausible_instant(datetime.fromtimestamp(float(value), UTC), field_path, value)
        except (OverflowError, OSError, ValueError, InvalidOperation):
            raise RowRejected(field_path, f"is not a valid Unix time: {quoted(value)}") from None
    return utc_timestamp(value, field_path)


def _detail(usage: dict[str, Any], group: str, name: str, field_path: str) -> int:
    details = usage.get(group)
    if not isinstance(details, dict):
        return 0
    return whole_number(details.get(name), f"{field_path}.{group}.{name}", required=False) or 0


def split_tokens(
    prompt: int, completion: int, total: int | None, usage: dict[str, Any], usage_path: str
) -> dict[UsageBucket, int]:
    """Split OpenAI-convention prompt and completion counts into exclusive buckets, checking every sum."""
    if total is not None and total != prompt + completion:
        raise RowRejected(
            "total_tokens",
            f"is {total}, but prompt_tokens {prompt} + completion_tokens {completion} = {prompt + completion}",
        )

    # OpenAI-style usage objects name cached input in the details, Anthropic-style ones at the top level.
    cached = _detail(usage, "prompt_tokens_details", "cached_tokens", usage_path)
    if not cached:
        path = f"{usage_path}.cache_read_input_tokens"
        cached = whole_number(usage.get("cache_read_input_tokens"), path, required=False) or 0
    cache_write = (
        whole_number(
            usage.get("cache_creation_input_tokens"), f"{usage_path}.cache_creation_input_tokens", required=False
        )
        or 0
    )
    audio_in = _detail(usage, "prompt_tokens_details", "audio_tokens", usage_path)
    reasoning = _detail(usage, "completion_tokens_details", "reasoning_tokens", usage_path)
    audio_out = _detail(usage, "completion_tokens_details", "audio_tokens", usage_path)

    uncached = prompt - cached - cache_write - audio_in
    if uncached < 0:
        raise RowRejected(
            "prompt_tokens",
            f"prompt_tokens {prompt} is less than cached {cached} + cache writes {cache_write} + audio {audio_in}",
        )
    output = completion - reasoning - audio_out
    if output < 0:
        raise RowRejected(
            "completion_tokens",
            f"completion_tokens {completion} is less than reasoning {reasoning} + audio {audio_out}",
        )

    buckets = {
        UsageBucket.INPUT_UNCACHED_TOKENS: uncached,
        UsageBucket.CACHE_READ_TOKENS: cached,
        UsageBucket.CACHE_WRITE_TOKENS: cache_write,
        UsageBucket.AUDIO_INPUT_TOKENS: audio_in,
        UsageBucket.OUTPUT_TOKENS: output,
        UsageBucket.REASONING_TOKENS: reasoning,
        UsageBucket.AUDIO_OUTPUT_TOKENS: audio_out,
    }
    always = (UsageBucket.INPUT_UNCACHED_TOKENS, UsageBucket.OUTPUT_TOKENS)
    return {bucket: count for bucket, count in buckets.items() if count or bucket in always}


class _LiteLLMRecords:
    """Shared reading of LiteLLM records; subclasses name the id, cost and metadata fields of their shape."""

    format_name: str
    description: str
    reads_json = True
    id_field: str
    cost_field: str

    def rows(self, stream: IO[bytes], context: ImportContext) -> Iterator[RowResult]:
        identities = IdentityAllocator(context.tenant, self.format_name)
        try:
            for row_number, record, raw in self._records(stream):
                try:
                    event = self._event(record, row_number, raw, context, identities)
                except ROW_ERRORS as error:
                    yield RowResult(row_number, raw, error=as_rejection(error))
                else:
                    yield RowResult(row_number, raw, event=event, empty=event is None)
        finally:
            identities.close()

    def _records(self, stream: IO[bytes]) -> Iterator[tuple[int, Any, bytes]]:
        buffered, head = peek(stream)
        if head.lstrip()[:1] in (b"{", b"["):
            for index, record in enumerate(load_json_or_lines(buffered, "the LiteLLM log"), start=1):
                yield index, record, canonical_bytes(record)
            return
        for row_number, _header, row in read_rows(
            buffered, what="the LiteLLM log", delimiter=",", check_header=self._check_csv_header
        ):
            yield row_number, row, json.dumps(row, ensure_ascii=False, sort_keys=True).encode()

    def _check_csv_header(self, header: list[str]) -> None:
        missing = [column for column in (self.id_field, "startTime") if column not in header]
        if missing:
            raise FormatError(f"the LiteLLM log lacks columns: {', '.join(missing)}")

    def _metadata(self, record: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any], str]:
        """Return the metadata object, the usage object and the usage object's field path."""
        raise NotImplementedError

    def _event(
        self, record: Any, row_number: int, raw: bytes, context: ImportContext, identities: IdentityAllocator
    ) -> UsageRecorded | None:
        if not isinstance(record, dict):
            raise RowRejected(f"record {row_number}", "must be an object")
        misaligned = cell_count_error(record)
        if misaligned is not None:
            raise misaligned
        event_id = identities.provider_id("request", record.get(self.id_field), self.id_field)
        if str(record.get("cache_hit")).lower() == "true":
            return None
        start = _instant(record.get("startTime"), "startTime")
        end = _instant(record.get("endTime") or record.get("startTime"), "endTime")
        if end < start:
            raise RowRejected("endTime", f"is before startTime ({end} < {start})")
        metadata, usage, usage_path = self._metadata(record)
        prompt = whole_number(record.get("prompt_tokens"), "prompt_tokens")
        completion = whole_number(record.get("completion_tokens"), "completion_tokens")
        total = whole_number(record.get("total_tokens"), "total_tokens", required=False)
        assert prompt is not None and completion is not None
        quantities = split_tokens(prompt, completion, total, usage, usage_path)
        spend = non_negative(
            decimal_value(record.get(self.cost_field), self.cost_field, required=False), self.cost_field
        )

        provider_name = optional_str(record.get("custom_llm_provider"), "custom_llm_provider")
        model = optional_str(record.get("model"), "model")
        if provider_name is None and model and "/" in model:
            provider_name = model.split("/", 1)[0]
        if provider_name is None:
            raise RowRejected("custom_llm_provider", "is missing and the model names no provider")
        request_tags = _json_field(record.get("request_tags"), "request_tags") or []
        if not isinstance(request_tags, list):
            raise RowRejected("request_tags", "must be a list")
        tags = string_tags(
            {
                "team_id": record.get("team_id") or metadata.get("user_api_key_team_id"),
                "team_alias": metadata.get("user_api_key_team_alias"),
                "end_user": record.get("end_user") or metadata.get("user_api_key_end_user_id"),
                "key_alias": metadata.get("user_api_key_alias"),
                "request_tags": ",".join(str(tag) for tag in request_tags),
                "model_group": record.get("model_group"),
                "status": record.get("status"),
                "gateway": "litellm",
            }
        )
        dimensions = UsageDimensions(
            api_key_id=optional_str(record.get("api_key") or metadata.get("user_api_key_hash"), "api_key"),
            user_id=optional_str(record.get("user") or metadata.get("user_api_key_user_id"), "user"),
            project_id=optional_str(metadata.get("user_api_key_project_id"), "metadata.user_api_key_project_id"),
            account_id=optional_str(
                record.get("organization_id") or metadata.get("user_api_key_org_id"), "organization_id"
            ),
            tags=tags,
        )
        return UsageRecorded(
            event_id=event_id,
            occurred_at=start,
            source=f"ingest.{self.format_name}",
            tenant=context.tenant,
            correlation_id=context.correlation_id,
            provider=_PROVIDERS.get(provider_name, provider_name),
            service=optional_str(record.get("call_type"), "call_type"),
            model=model,
            period_start=start,
            period_end=end,
            dimensions=dimensions,
            quantities=dict(quantities),
            request_count=1,
            provider_cost=Money(amount=spend, currency=LITELLM_CURRENCY) if spend is not None else None,
            evidence=Evidence(
                format=self.format_name, file_name=context.file_name, row_number=row_number, raw_sha256=sha256_hex(raw)
            ),
        )


class LiteLLMSpendLogs(_LiteLLMRecords):
    format_name = "litellm-spend-logs"
    description = "LiteLLM proxy spend logs, rows of LiteLLM_SpendLogs (JSON, NDJSON or CSV)"
    id_field = "request_id"
    cost_field = "spend"

    def detect(self, head: bytes, file_name: str | None) -> bool:
        if b'"request_id"' in head and b'"spend"' in head:
            return True
        columns = head.split(b"\n", 1)[0].split(b",")
        return b"request_id" in columns and b"spend" in columns

    def _metadata(self, record: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any], str]:
        metadata = _json_field(record.get("metadata"), "metadata") or {}
        if not isinstance(metadata, dict):
            raise RowRejected("metadata", "must be an object")
        usage = metadata.get("usage_object") or {}
        if not isinstance(usage, dict):
            raise RowRejected("metadata.usage_object", "must be an object")
        return metadata, usage, "metadata.usage_object"


class LiteLLMLoggingPayload(_LiteLLMRecords):
    format_name = "litellm-logging-payload"
    description = "LiteLLM standard logging payload, as its callbacks and generic webhook send it (JSON)"
    id_field = "id"
    cost_field = "response_cost"

    def detect(self, head: bytes, file_name: str | None) -> bool:
        return b'"response_cost"' in head and b'"model_map_information"' in head

    def _metadata(self, record: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any], str]:
        metadata = record.get("metadata") or {}
        if not isinstance(metadata, dict):
            raise RowRejected("metadata", "must be an object")
        response = record.get("response") if isinstance(record.get("response"), dict) else {}
        usage = (response or {}).get("usage") or {}
        if not isinstance(usage, dict):
            raise RowRejected("response.usage", "must be an object")
        return metadata, usage, "response.usage"
