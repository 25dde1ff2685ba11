"""FOCUS (FinOps Open Cost and Usage Specification) 1.0 to 1.2 cost and usage CSV, from any provider.

A FOCUS row is a billed charge, not token usage: its cost is the provider's
``BilledCost`` in ``BillingCurrency``, kept beside ``ListCost`` and
``EffectiveCost``. Reading rules:

- Unquoted and quoted ``NULL`` both mean null (the csv module cannot tell them apart).
- ``ChargePeriodStart``/``End`` without a zone are read as UTC, which FOCUS requires.
- ``Credit``, ``Adjustment``, ``Purchase`` and ``Tax`` keep their own charge
  category; a ``Usage`` row with a negative cost is a refund, never netted into usage.
- A row whose ``ChargeClass`` is ``Correction`` (FOCUS 1.1 and later) corrects an
  earlier period: it is an adjustment, never netted into that period's usage.
- ``Tags`` is a JSON object inside the cell; non-string tag values are kept as JSON text.
- The provider is ``ProviderName`` (1.0, 1.1) or ``ServiceProviderName`` (1.2).
- Microsoft's extension columns ``x_SkuMeterCategory``, ``x_SkuMeterSubcategory`` and
  ``x_SkuMeterName`` are kept as tags, and an Azure OpenAI meter also gives the
  model, token kind and deployment (see ``azure_meters``).
- The event identity hashes every column except the measured amounts (columns whose
  names contain Cost, Quantity or Price), so a restated row is caught as a conflict.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import IO

from services.ingest.normalisers._csv import HeaderJson, cell_count_error, read_rows
from services.ingest.normalisers.azure_meters import read_meter
from services.ingest.normalisers.base import (
    CURRENCY_PATTERN,
    ROW_ERRORS,
    FormatError,
    IdentityAllocator,
    ImportContext,
    RowRejected,
    RowResult,
    as_rejection,
    checked_text,
    decimal_value,
    plausible_instant,
    quoted,
    sha256_hex,
    string_tags,
)
from shared.events import (
    ChargeCategory,
    Evidence,
    Money,
    PricingBasis,
    ServiceTier,
    UsageDimensions,
    UsageRecorded,
)

REQUIRED_COLUMNS = (
    "BilledCost",
    "BillingCurrency",
    "ChargePeriodStart",
    "ChargePeriodEnd",
    "ChargeCategory",
    "ServiceName",
)
PROVIDER_COLUMNS = ("ProviderName", "ServiceProviderName")
MEASURE_MARKERS = ("Cost", "Quantity", "Price")

_CATEGORIES = {
    "usage": ChargeCategory.USAGE,
    "purchase": ChargeCategory.PURCHASE,
    "tax": ChargeCategory.TAX,
    "credit": ChargeCategory.CREDIT,
    "adjustment": ChargeCategory.ADJUSTMENT,
}

_PROVIDERS = {
    "aws": "aws",
    "amazon web services": "aws",
    "microsoft": "azure",
    "azure": "azure",
    "google cloud": "gcp",
    "gcp": "gcp",
    "oracle": "oracle",
}


def _cell(row: dict[str, str], column: str) -> str | None:
    value = row.get(column)
    if value is None:
        return None
    value = value.strip()
    return None if value in ("", "NULL") else value


def _instant(value: str | None, column: str) -> datetime:
    if value is None:
        raise RowRejected(column, "is missing")
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise RowRejected(column, f"must be a timestamp, got {quoted(value)}") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)  # FOCUS date-times are UTC
    return plausible_instant(parsed, column, value)


def _currency(value: str | None, column: str) -> str:
    if value is None or not CURRENCY_PATTERN.fullmatch(value):
        raise RowRejected(column, f"must be an ISO 4217 currency code, got {quoted(value)}")
    return value.upper()


class FocusCsv:
    format_name = "focus-csv"
    description = "FOCUS 1.0-1.2 cost and usage export (CSV)"
    reads_json = False

    def detect(self, head: bytes, file_name: str | None) -> bool:
        first_line = head.split(b"\n", 1)[0]
        return b"BilledCost" in first_line and (b"ChargePeriodStart" in first_line or b"ChargeCategory" in first_line)

    def rows(self, stream: IO[bytes], context: ImportContext) -> Iterator[RowResult]:
        identities = IdentityAllocator(context.tenant, self.format_name)
        header_json: HeaderJson | None = None
        try:
            for row_number, header, row in read_rows(
                stream, what="the FOCUS file", delimiter=",", check_header=_check_header
            ):
                if header_json is None:
                    header_json = HeaderJson(header, _identity_columns(tuple(header)))
                raw = header_json.row(row).encode()
                misaligned = cell_count_error(row)
                if misaligned is not None:
                    yield RowResult(row_number, raw, error=misaligned)
                    continue
                try:
                    event = self._event(row, row_number, raw, context, identities, header_json)
                    yield RowResult(row_number, raw, event=event)
                except ROW_ERRORS as error:
                    yield RowResult(row_number, raw, error=as_rejection(error))
        finally:
            identities.close()

    def _event(
        self,
        row: dict[str, str],
        row_number: int,
        raw: bytes,
        context: ImportContext,
        identities: IdentityAllocator,
        header_json: HeaderJson,
    ) -> UsageRecorded:
        start = _instant(_cell(row, "ChargePeriodStart"), "ChargePeriodStart")
        end = _instant(_cell(row, "ChargePeriodEnd"), "ChargePeriodEnd")
        if end < start:
            raise RowRejected("ChargePeriodEnd", f"is before ChargePeriodStart ({end} < {start})")
        currency = _currency(_cell(row, "BillingCurrency"), "BillingCurrency")
        billed = decimal_value(_cell(row, "BilledCost"), "BilledCost")
        assert billed is not None  # required=True never returns None
        list_cost = decimal_value(_cell(row, "ListCost"), "ListCost", required=False)
        effective_cost = decimal_value(_cell(row, "EffectiveCost"), "EffectiveCost", required=False)
        consumed = decimal_value(_cell(row, "ConsumedQuantity"), "ConsumedQuantity", required=False)

        category_name = (_cell(row, "ChargeCategory") or "").lower()
        if category_name not in _CATEGORIES:
            raise RowRejected("ChargeCategory", f"unknown charge category {quoted(_cell(row, 'ChargeCategory'))}")
        category = _CATEGORIES[category_name]
        if (_cell(row, "ChargeClass") or "").lower() == "correction":
            category = ChargeCategory.ADJUSTMENT
        elif category is ChargeCategory.USAGE and billed < 0:
            category = ChargeCategory.REFUND

        provider_column = next((column for column in PROVIDER_COLUMNS if _cell(row, column)), PROVIDER_COLUMNS[0])
        provider_name = _cell(row, provider_column)
        if provider_name is None:
            raise RowRejected(provider_column, "is missing")
        provider = _PROVIDERS.get(provider_name.lower(), provider_name.lower())

        meter_category = _cell(row, "x_SkuMeterCategory")
        meter_subcategory = _cell(row, "x_SkuMeterSubcategory")
        meter_name = _cell(row, "x_SkuMeterName")
        meter = read_meter(meter_category, meter_subcategory, meter_name, _cell(row, "x_PricingUnitDescription"))
        tags = _tags(_cell(row, "Tags")) | string_tags(
            {
                "meter_category": meter_category,
                "meter_subcategory": meter_subcategory,
                "meter_name": meter_name,
                **meter.tags(),
            }
        )
        dimensions = UsageDimensions(
            account_id=_cell(row, "SubAccountId"),
            resource_id=_cell(row, "ResourceId"),
            tags=tags,
        )
        if header_json.complete and len(row) == len(header_json.columns):
            event_id = identities.event_id_of_canonical(header_json.key(row))
        else:  # a short row: its identity columns are those it has
            event_id = identities.event_id({column: row.get(column) for column in _identity_columns(tuple(row))})
        return UsageRecorded(
            event_id=event_id,
            occurred_at=start,
            source=f"ingest.{self.format_name}",
            tenant=context.tenant,
            correlation_id=context.correlation_id,
            provider=provider,
            service=_cell(row, "ServiceName"),
            model=meter.model,
            service_tier=ServiceTier.BATCH if meter.batch else ServiceTier.STANDARD,
            region=_cell(row, "RegionId"),
            period_start=start,
            period_end=end,
            dimensions=dimensions,
            charge_category=category,
            pricing_basis=PricingBasis.PROVIDER_BILLED,
            provider_cost=Money(amount=billed, currency=currency),
            provider_list_cost=Money(amount=list_cost, currency=currency) if list_cost is not None else None,
            provider_effective_cost=(
                Money(amount=effective_cost, currency=currency) if effective_cost is not None else None
            ),
            consumed_quantity=consumed,
            consumed_unit=_cell(row, "ConsumedUnit"),
            description=_cell(row, "ChargeDescription"),
            evidence=Evidence(
                format=self.format_name, file_name=context.file_name, row_number=row_number, raw_sha256=sha256_hex(raw)
            ),
        )


def _check_header(header: list[str]) -> None:
    missing = [column for column in REQUIRED_COLUMNS if column not in header]
    if not any(column in header for column in PROVIDER_COLUMNS):
        missing.append(" or ".join(PROVIDER_COLUMNS))
    if missing:
        raise FormatError(f"the FOCUS file lacks required columns: {', '.join(missing)}")


@functools.lru_cache(maxsize=16)
def _identity_columns(columns: tuple[str, ...]) -> tuple[str, ...]:
    """Return the columns that identify a row: all but the measured amounts, worked out once per header."""
    return tuple(column for column in columns if not any(marker in column for marker in MEASURE_MARKERS))


def _tags(cell: str | None) -> dict[str, str]:
    if cell is None:
        return {}
    try:
        parsed = checked_text(json.loads(cell, parse_float=Decimal), "Tags")
    except (ValueError, RecursionError):
        raise RowRejected("Tags", f"must be a JSON object, got {quoted(cell)}") from None
    if not isinstance(parsed, dict):
        raise RowRejected("Tags", "must be a JSON object")
    return {
        str(key): value if isinstance(value, str) else json.dumps(value, default=str) for key, value in parsed.items()
    }
