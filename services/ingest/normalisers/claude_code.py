"""Anthropic Claude Code analytics report (``/v1/organizations/usage_report/claude_code``).

Each record is one actor's day (``date`` is an RFC 3339 UTC midnight) with a
``model_breakdown``. Every model entry becomes one usage event priced from the
catalogue. The token counts follow Anthropic's messages usage convention, in
which input, cache reads and cache writes never overlap, so they map one to one:
``input`` to uncached input, ``cache_read`` to cache reads, ``cache_creation`` to
cache writes. ``estimated_cost.amount`` is in cents and is kept as the provider's
cost for reconciliation (1025 cents is 10.25 USD), never as the cost itself.

The actor is a user (``email_address``) or an API key (``api_key_name``). Either
goes to ``user_id``, with ``actor_type`` in the tags. The per-day productivity metrics
(sessions, lines of code, commits) are not usage and stay in the evidence only.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import IO, Any

from services.ingest.normalisers._json import canonical_bytes, load_json, page_items
from services.ingest.normalisers.base import (
    ROW_ERRORS,
    IdentityAllocator,
    ImportContext,
    RowRejected,
    RowResult,
    as_rejection,
    currency_code,
    decimal_value,
    object_at,
    optional_str,
    quoted,
    sha256_hex,
    string_tags,
    utc_day,
    whole_number,
)
from shared.events import Evidence, Money, UsageBucket, UsageDimensions, UsageRecorded

_TOKEN_FIELDS = (
    ("input", UsageBucket.INPUT_UNCACHED_TOKENS),
    ("cache_read", UsageBucket.CACHE_READ_TOKENS),
    # NOTE: the report does not say which cache lifetime was written; the default 5-minute one is assumed.
    ("cache_creation", UsageBucket.CACHE_WRITE_TOKENS),
    ("output", UsageBucket.OUTPUT_TOKENS),
)
_ACTOR_KEYS = {"user_actor": "email_address", "api_actor": "api_key_name"}


class ClaudeCodeUsageReport:
    format_name = "anthropic-claude-code-usage"
    description = "Anthropic Claude Code analytics report: tokens per actor, day and model (JSON page)"
    reads_json = True

    def detect(self, head: bytes, file_name: str | None) -> bool:
        return b'"model_breakdown"' in head and b'"actor"' in head

    def rows(self, stream: IO[bytes], context: ImportContext) -> Iterator[RowResult]:
        records = page_items(load_json(stream, "the Claude Code usage report"), "a Claude Code usage report")
        identities = IdentityAllocator(context.tenant, self.format_name)
        row_number = 0
        try:
            for record_index, record in enumerate(records):
                record_path = f"data[{record_index}]"
                breakdown = record.get("model_breakdown") if isinstance(record, dict) else None
                if not isinstance(breakdown, list):
                    row_number += 1
                    error = RowRejected(f"{record_path}.model_breakdown", "must be a list")
                    yield RowResult(row_number, canonical_bytes(record), error=error)
                    continue
                for entry_index, entry in enumerate(breakdown):
                    row_number += 1
                    field_path = f"{record_path}.model_breakdown[{entry_index}]"
                    raw = canonical_bytes(
                        {**{k: v for k, v in record.items() if k != "model_breakdown"}, "entry": entry}
                    )
                    try:
                        event = self._event(
                            record, record_path, entry, field_path, context, identities, row_number, raw
                        )
                    except ROW_ERRORS as error:
                        yield RowResult(row_number, raw, error=as_rejection(error))
                    else:
                        yield RowResult(row_number, raw, event=event)
        finally:
            identities.close()

    def _event(
        self,
        record: dict[str, Any],
        record_path: str,
        entry: Any,
        field_path: str,
        context: ImportContext,
        identities: IdentityAllocator,
        row_number: int,
        raw: bytes,
    ) -> UsageRecorded:
        if not isinstance(entry, dict):
            raise RowRejected(field_path, "must be an object")
        start, end = utc_day(record.get("date"), f"{record_path}.date")
        actor = object_at(record, "actor", f"{record_path}.actor")
        actor_type = actor.get("type")
        if not isinstance(actor_type, str) or actor_type not in _ACTOR_KEYS:
            raise RowRejected(f"{record_path}.actor.type", f"must be user_actor or api_actor, got {quoted(actor_type)}")
        actor_key = _ACTOR_KEYS[actor_type]
        actor_name = optional_str(actor.get(actor_key), f"{record_path}.actor.{actor_key}")
        if actor_name is None:
            raise RowRejected(f"{record_path}.actor.{actor_key}", "is missing")

        tokens = object_at(entry, "tokens", f"{field_path}.tokens")
        quantities: dict[UsageBucket, int] = {}
        for name, bucket in _TOKEN_FIELDS:
            count = whole_number(tokens.get(name), f"{field_path}.tokens.{name}", required=False)
            if count is not None:
                quantities[bucket] = count
        if not quantities:
            raise RowRejected(f"{field_path}.tokens", "has no token counts")
        cost = object_at(entry, "estimated_cost", f"{field_path}.estimated_cost")
        provider_cost = None
        if cost:
            cents = decimal_value(cost.get("amount"), f"{field_path}.estimated_cost.amount")
            assert cents is not None
            currency = currency_code(cost.get("currency"), f"{field_path}.estimated_cost.currency")
            provider_cost = Money(amount=cents.scaleb(-2), currency=currency)  # cents to units, exactly

        tags = string_tags(
            {
                "actor_type": actor_type,
                "customer_type": optional_str(record.get("customer_type"), f"{record_path}.customer_type"),
                "terminal_type": optional_str(record.get("terminal_type"), f"{record_path}.terminal_type"),
                "subscription_type": optional_str(record.get("subscription_type"), f"{record_path}.subscription_type"),
            }
        )
        dimensions = UsageDimensions(
            user_id=actor_name,
            account_id=optional_str(record.get("organization_id"), f"{record_path}.organization_id"),
            tags=tags,
        )
        model = optional_str(entry.get("model"), f"{field_path}.model")
        natural_key = {"day": start.date().isoformat(), "model": model, "dimensions": dimensions.model_dump()}
        return UsageRecorded(
            event_id=identities.event_id(natural_key),
            occurred_at=start,
            source=f"ingest.{self.format_name}",
            tenant=context.tenant,
            correlation_id=context.correlation_id,
            provider="anthropic",
            service="claude_code",
            model=model,
            period_start=start,
            period_end=end,
            dimensions=dimensions,
            quantities=dict(quantities),
            provider_cost=provider_cost,
            evidence=Evidence(
                format=self.format_name, file_name=context.file_name, row_number=row_number, raw_sha256=sha256_hex(raw)
            ),
        )
