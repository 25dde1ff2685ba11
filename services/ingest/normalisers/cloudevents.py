"""Usage from in-house meters and GPU clusters as CloudEvents 1.0, the envelope OpenMeter ingests.

Input is one event in structured JSON mode (``application/cloudevents+json``), a
JSON array of them (``application/cloudevents-batch+json``), or one event a line.
Envelope attributes, per CloudEvents 1.0:

- ``specversion`` must be ``"1.0"``. ``id`` and ``source`` are required non-empty
  strings, and together they are the event's identity, as in OpenMeter. The same
  ``source`` and ``id`` sent again is a duplicate, and an empty or missing id is rejected.
- ``type`` names the meter (kept as the event's description); ``subject`` is who
  the usage is for and goes to the tag ``subject``.
- ``time`` is an RFC 3339 instant with a zone; it dates the usage when ``data``
  gives no period.

``data`` must be an object with these fields; any other field is rejected, so a
misspelt quantity cannot be dropped silently:

- ``provider`` (required): who supplied the usage, such as ``openai`` or ``in-house``.
- ``quantities`` (required unless ``pricing_basis`` is ``provider_billed``): usage
  bucket name to amount, such as ``{"input_uncached_tokens": 1200, "gpu_seconds":
  "3600.5"}``. Bucket names are those of ``shared.events.UsageBucket``, token counts
  are whole numbers and no amount is negative.
- ``model``, ``service``, ``region``, ``description``: strings.
- ``service_tier``: standard (default), batch, flex or priority.
- ``period_start``, ``period_end``: RFC 3339; both default to ``time``.
- ``request_count``: whole number of requests.
- ``dimensions``: ``project_id``, ``api_key_id``, ``workspace_id``, ``user_id``,
  ``account_id``, ``resource_id`` and ``tags`` (string to string).
- ``pricing_basis``: ``catalogue`` (default: priced from the catalogue) or
  ``provider_billed`` (``cost`` is the cost, for meters that bill).
- ``cost``: ``{"amount": "1.25", "currency": "USD"}``; the cost itself for billed
  usage, a figure to reconcile against otherwise.
- ``charge_category``: usage (default), purchase, tax, credit, refund or adjustment.
"""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from typing import IO, Any

from services.ingest.normalisers._json import canonical_bytes, load_json_or_lines
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
    rfc3339,
    sha256_hex,
    string_tags,
    whole_number,
)
from shared.events import (
    TOKEN_BUCKETS,
    ChargeCategory,
    Evidence,
    Money,
    PricingBasis,
    ServiceTier,
    UsageBucket,
    UsageDimensions,
    UsageRecorded,
)

DATA_FIELDS = frozenset(
    {
        "provider",
        "quantities",
        "model",
        "service",
        "region",
        "description",
        "service_tier",
        "period_start",
        "period_end",
        "request_count",
        "dimensions",
        "pricing_basis",
        "cost",
        "charge_category",
    }
)
DIMENSION_FIELDS = ("project_id", "api_key_id", "workspace_id", "user_id", "account_id", "resource_id")


def _choice(enum: Any, value: Any, default: Any, field_path: str) -> Any:
    if value is None:
        return default
    try:
        return enum(value)
    except ValueError:
        allowed = ", ".join(item.value for item in enum)
        raise RowRejected(field_path, f"must be one of {allowed}, got {quoted(value)}") from None


def _quantities(value: Any, field_path: str) -> dict[UsageBucket, Decimal]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise RowRejected(field_path, "must be an object of bucket name to amount")
    quantities: dict[UsageBucket, Decimal] = {}
    for name, amount in value.items():
        path = f"{field_path}.{name}"
        bucket = _choice(UsageBucket, name, None, path)
        if bucket in TOKEN_BUCKETS:
            count = whole_number(amount, path)
            assert count is not None
            quantities[bucket] = Decimal(count)
            continue
        number = decimal_value(amount, path)
        assert number is not None
        if number < 0:
            raise RowRejected(path, f"must not be negative, got {number}")
        quantities[bucket] = number
    return quantities


class CloudEventsUsage:
    format_name = "cloudevents"
    description = "CloudEvents 1.0 usage events from in-house meters and GPU clusters (OpenMeter-compatible JSON)"
    reads_json = True

    def detect(self, head: bytes, file_name: str | None) -> bool:
        return b'"specversion"' in head

    def rows(self, stream: IO[bytes], context: ImportContext) -> Iterator[RowResult]:
        identities = IdentityAllocator(context.tenant, self.format_name)
        try:
            for index, envelope in enumerate(load_json_or_lines(stream, "the CloudEvents input")):
                row_number = index + 1
                raw = canonical_bytes(envelope)
                try:
                    event = self._event(envelope, f"[{index}]", context, identities, row_number, raw)
                except ROW_ERRORS as error:
                    yield RowResult(row_number, raw, error=as_rejection(error))
                else:
                    yield RowResult(row_number, raw, event=event)
        finally:
            identities.close()

    def _event(
        self,
        envelope: Any,
        path: str,
        context: ImportContext,
        identities: IdentityAllocator,
        row_number: int,
        raw: bytes,
    ) -> UsageRecorded:
        if not isinstance(envelope, dict):
            raise RowRejected(path, "must be a CloudEvents object")
        if envelope.get("specversion") != "1.0":
            raise RowRejected(f"{path}.specversion", f'must be "1.0", got {quoted(envelope.get("specversion"))}')
        source = envelope.get("source")
        if not isinstance(source, str) or not source.strip():
            raise RowRejected(f"{path}.source", f"must be a non-empty string, got {quoted(source)}")
        event_id = identities.provider_id(source, envelope.get("id"), f"{path}.id")
        event_type = optional_str(envelope.get("type"), f"{path}.type")
        if event_type is None:
            raise RowRejected(f"{path}.type", "is missing")
        time = rfc3339(envelope["time"], f"{path}.time") if envelope.get("time") is not None else None

        data = envelope.get("data")
        if not isinstance(data, dict):
            raise RowRejected(f"{path}.data", "must be an object")
        unknown = sorted(set(data) - DATA_FIELDS)
        if unknown:
            raise RowRejected(
                f"{path}.data.{unknown[0]}",
                f"is not a known field; the known fields are {', '.join(sorted(DATA_FIELDS))}",
            )
        provider = optional_str(data.get("provider"), f"{path}.data.provider")
        if provider is None:
            raise RowRejected(f"{path}.data.provider", "is missing")

        start_text, end_text = data.get("period_start"), data.get("period_end")
        start = rfc3339(start_text, f"{path}.data.period_start") if start_text is not None else time
        end = rfc3339(end_text, f"{path}.data.period_end") if end_text is not None else (time or start)
        if start is None or end is None:
            raise RowRejected(f"{path}.time", "is missing and data has no period_start")
        if end < start:
            raise RowRejected(f"{path}.data.period_end", f"is before period_start ({end} < {start})")

        basis = _choice(PricingBasis, data.get("pricing_basis"), PricingBasis.CATALOGUE, f"{path}.data.pricing_basis")
        quantities = _quantities(data.get("quantities"), f"{path}.data.quantities")
        cost = self._cost(data, f"{path}.data.cost")
        if basis is PricingBasis.PROVIDER_BILLED and cost is None:
            raise RowRejected(f"{path}.data.cost", "is required when pricing_basis is provider_billed")
        if basis is PricingBasis.CATALOGUE and not quantities:
            raise RowRejected(f"{path}.data.quantities", "must name at least one usage bucket")
        return UsageRecorded(
            event_id=event_id,
            occurred_at=time or start,
            source=f"ingest.{self.format_name}",
            tenant=context.tenant,
            correlation_id=context.correlation_id,
            provider=provider,
            service=optional_str(data.get("service"), f"{path}.data.service"),
            model=optional_str(data.get("model"), f"{path}.data.model"),
            service_tier=_choice(
                ServiceTier, data.get("service_tier"), ServiceTier.STANDARD, f"{path}.data.service_tier"
            ),
            region=optional_str(data.get("region"), f"{path}.data.region"),
            period_start=start,
            period_end=end,
            dimensions=self._dimensions(data, envelope, path),
            quantities=quantities,
            request_count=whole_number(data.get("request_count"), f"{path}.data.request_count", required=False),
            charge_category=_choice(
                ChargeCategory, data.get("charge_category"), ChargeCategory.USAGE, f"{path}.data.charge_category"
            ),
            pricing_basis=basis,
            provider_cost=cost,
            description=optional_str(data.get("description"), f"{path}.data.description") or event_type,
            evidence=Evidence(
                format=self.format_name, file_name=context.file_name, row_number=row_number, raw_sha256=sha256_hex(raw)
            ),
        )

    @staticmethod
    def _cost(data: dict[str, Any], field_path: str) -> Money | None:
        cost = object_at(data, "cost", field_path)
        if not cost:
            return None
        amount = decimal_value(cost.get("amount"), f"{field_path}.amount")
        assert amount is not None
        return Money(amount=amount, currency=currency_code(cost.get("currency"), f"{field_path}.currency"))

    @staticmethod
    def _dimensions(data: dict[str, Any], envelope: dict[str, Any], path: str) -> UsageDimensions:
        stated = object_at(data, "dimensions", f"{path}.data.dimensions")
        unknown = sorted(set(stated) - {*DIMENSION_FIELDS, "tags"})
        if unknown:
            raise RowRejected(f"{path}.data.dimensions.{unknown[0]}", "is not a known dimension")
        tags_value = object_at(stated, "tags", f"{path}.data.dimensions.tags")
        for key, value in tags_value.items():
            if not isinstance(value, str):
                raise RowRejected(f"{path}.data.dimensions.tags.{key}", "must be a string")
        subject = optional_str(envelope.get("subject"), f"{path}.subject")
        tags = string_tags(tags_value) | string_tags({"subject": subject})
        values = {name: optional_str(stated.get(name), f"{path}.data.dimensions.{name}") for name in DIMENSION_FIELDS}
        return UsageDimensions(**values, tags=tags)
