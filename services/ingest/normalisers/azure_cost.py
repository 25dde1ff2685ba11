"""Azure Cost Management cost details export (the native "actual cost" or "amortized cost" CSV).

Every row is a line of a bill of record: its cost is ``CostInBillingCurrency``
(MCA exports; EA exports write ``Cost``, older ones ``PreTaxCost``) in
``BillingCurrencyCode``. Column names differ in case and spelling between
agreement types, so they are matched without regard to case. Reading rules:

- ``Date`` is a calendar day (``2026-05-01``, or ``05/01/2026`` month first as EA
  exports write it) and the charge covers that UTC day.
- ``ChargeType`` keeps its own category (Purchase, Tax, Refund), and unused
  reservation or savings-plan hours and rounding are adjustments. A Usage row with a negative
  cost is a refund, never netted into usage.
- A reservation or savings plan is spend once, whichever dataset the export is (see
  ``commitment_dataset``): its Purchase row in the actual-cost dataset, its
  UnusedReservation or UnusedSavingsPlan rows with the amortized usage in the
  amortized-cost dataset.
- Azure OpenAI meters (``MeterCategory`` "Azure OpenAI") also give the model, token
  kind and deployment as tags (see ``azure_meters``). The quantity stays in the
  export's own unit (``UnitOfMeasure``), because exports are not consistent about
  whether ``Quantity`` counts tokens or blocks of a million.
- An export without a currency column needs the currency named on import
  (``--currency``), so that no row gets a guessed currency.
"""

from __future__ import annotations

import csv
import io
import json
import shutil
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import IO

from services.ingest.normalisers._csv import cell_count_error, read_rows
from services.ingest.normalisers.azure_meters import read_meter
from services.ingest.normalisers.base import (
    ROW_ERRORS,
    FormatError,
    IdentityAllocator,
    ImportContext,
    RowRejected,
    RowResult,
    as_rejection,
    checked_text,
    currency_code,
    decimal_value,
    plausible_instant,
    quoted,
    sha256_hex,
    string_tags,
    utc_day,
)
from shared.events import ChargeCategory, Evidence, Money, PricingBasis, ServiceTier, UsageDimensions, UsageRecorded

ALIASES = {
    "date": ("date", "usagedate", "usagedatetime"),
    "charge_type": ("chargetype",),
    "cost": ("costinbillingcurrency", "cost", "pretaxcost"),
    "list_cost": ("paygcostinbillingcurrency",),
    "currency": ("billingcurrencycode", "billingcurrency", "currency"),
    "meter_category": ("metercategory",),
    "meter_subcategory": ("metersubcategory",),
    "meter_name": ("metername",),
    "unit": ("unitofmeasure",),
    "quantity": ("quantity", "usagequantity"),
    "subscription": ("subscriptionid", "subscriptionguid"),
    "resource_id": ("resourceid", "instanceid", "instancename"),
    "location": ("resourcelocation", "location"),
    "resource_group": ("resourcegroup", "resourcegroupname"),
    "tags": ("tags",),
    "description": ("productname", "product"),
    "pricing_model": ("pricingmodel",),
}

_CHARGE_TYPES = {
    "usage": ChargeCategory.USAGE,
    "purchase": ChargeCategory.PURCHASE,
    "tax": ChargeCategory.TAX,
    "refund": ChargeCategory.REFUND,
    "credit": ChargeCategory.CREDIT,
    "unusedreservation": ChargeCategory.ADJUSTMENT,
    "unusedsavingsplan": ChargeCategory.ADJUSTMENT,
    "roundingadjustment": ChargeCategory.ADJUSTMENT,
    "adjustment": ChargeCategory.ADJUSTMENT,
}
MEASURE_MARKERS = ("cost", "quantity", "price")

# Actual-cost and amortized-cost exports have the same columns, so the rows tell which dataset a file is.
# Source: Microsoft Learn, "Get Enterprise Agreement and Microsoft Customer Agreement reservation costs and usage"
# (https://learn.microsoft.com/azure/cost-management-billing/reservations/understand-reserved-instance-usage-ea).
# The actual-cost dataset has the reservation purchases (ChargeType Purchase) and no unused reservation rows.
# The amortized-cost dataset has no purchase records: it spreads the purchase over the usage it covered and shows
# the unused hours with their value as ChargeType UnusedReservation. Savings plans follow the same rule with
# UnusedSavingsPlan. So an unused row is spend only when its purchase is not in the file. A file with both
# restates part of the purchase, and its unused rows are read as empty.
# NOTE: such a mixed file may also carry amortized cost on covered usage rows, which this rule cannot see.
UNUSED_COMMITMENT_KINDS = {"unusedreservation": "reservation", "unusedsavingsplan": "savingsplan"}
SPOOL_MEMORY_BYTES = 16 * 1024 * 1024


def _columns(header: list[str]) -> dict[str, str]:
    by_lower = {name.lower(): name for name in header}
    found: dict[str, str] = {}
    for key, spellings in ALIASES.items():
        for spelling in spellings:
            if spelling in by_lower:
                found[key] = by_lower[spelling]
                break
    return found


def _cell(row: dict[str, str], columns: dict[str, str], key: str) -> str | None:
    column = columns.get(key)
    value = (row.get(column) or "").strip() if column else ""
    return value or None


def azure_day(value: str | None, column: str) -> tuple[datetime, datetime]:
    """Read an export date, ISO (2026-05-01) or month first (05/01/2026), as its UTC day."""
    if value and value.count("/") == 2:
        parts = value.split(" ", 1)[0].split("/")
        month, day, year = (part if part.isascii() and part.isdigit() else "invalid" for part in parts)
        try:
            start = datetime(int(year), int(month), int(day), tzinfo=UTC)
        except ValueError:
            raise RowRejected(column, f"must be a date MM/DD/YYYY or YYYY-MM-DD, got {quoted(value)}") from None
        start = plausible_instant(start, column, value)
        return start, start + timedelta(days=1)
    return utc_day(value, column)


def azure_tags(cell: str | None) -> dict[str, str]:
    """Parse the Tags cell: a JSON object, or its body without braces as older exports write it."""
    if not cell:
        return {}
    text = cell if cell.lstrip().startswith("{") else "{" + cell + "}"
    try:
        parsed = checked_text(json.loads(text), "Tags")
    except (ValueError, RecursionError):
        raise RowRejected("Tags", f"must be a JSON object, got {quoted(cell)}") from None
    if not isinstance(parsed, dict):
        raise RowRejected("Tags", "must be a JSON object")
    return string_tags(parsed)


def commitment_dataset(stream: IO[bytes]) -> set[str]:
    """Return the commitment kinds ("reservation", "savingsplan") whose Purchase rows the export contains.

    A Purchase row in an export without a PricingModel column counts for both kinds, because no column shows
    which one it bought.
    The stream stays open. Text that is not UTF-8 or not CSV ends the scan, and the import then reports it.
    """
    purchased: set[str] = set()
    text = io.TextIOWrapper(stream, encoding="utf-8-sig", newline="")
    try:
        reader = csv.reader(text, delimiter=",")
        header = [name.strip() for name in next(reader, [])]
        columns = _columns(header)
        for cells in reader:
            row = dict(zip(header, cells, strict=False))
            if (_cell(row, columns, "charge_type") or "").lower() != "purchase":
                continue
            if "pricing_model" not in columns:
                purchased |= set(UNUSED_COMMITMENT_KINDS.values())
                continue
            model = (_cell(row, columns, "pricing_model") or "").lower().replace(" ", "")
            if model in UNUSED_COMMITMENT_KINDS.values():
                purchased.add(model)
    except (csv.Error, UnicodeDecodeError):
        pass  # the second pass raises the same error with the row number
    finally:
        text.detach()
    return purchased


def _check_header(header: list[str]) -> None:
    columns = _columns(header)
    missing = [key for key in ("date", "cost") if key not in columns]
    if missing:
        names = " or ".join(ALIASES[missing[0]])
        raise FormatError(f"the Azure cost export lacks a {missing[0]} column ({names})")


class AzureCostExport:
    format_name = "azure-cost-export"
    description = "Azure Cost Management cost details export, actual or amortized (CSV)"
    reads_json = False

    def detect(self, head: bytes, file_name: str | None) -> bool:
        first_line = head.split(b"\n", 1)[0].lower()
        return b"metercategory" in first_line and b"chargetype" in first_line and b"billedcost" not in first_line

    def rows(self, stream: IO[bytes], context: ImportContext) -> Iterator[RowResult]:
        identities = IdentityAllocator(context.tenant, self.format_name)
        columns: dict[str, str] | None = None
        # Two passes: the first finds the purchases that decide how unused commitment rows read.
        spool = tempfile.SpooledTemporaryFile(max_size=SPOOL_MEMORY_BYTES)  # noqa: SIM115 (closed in finally)
        try:
            shutil.copyfileobj(stream, spool)
            spool.seek(0)
            purchased = commitment_dataset(spool)  # type: ignore[arg-type]
            spool.seek(0)
            for row_number, header, row in read_rows(
                spool,  # type: ignore[arg-type]
                what="the Azure cost export",
                delimiter=",",
                check_header=_check_header,
            ):
                if columns is None:
                    columns = _columns(header)
                raw = json.dumps(row, ensure_ascii=False, sort_keys=True).encode()
                misaligned = cell_count_error(row)
                if misaligned is not None:
                    yield RowResult(row_number, raw, error=misaligned)
                    continue
                unused_kind = UNUSED_COMMITMENT_KINDS.get((_cell(row, columns, "charge_type") or "").lower())
                if unused_kind in purchased:
                    yield RowResult(row_number, raw, empty=True)
                    continue
                try:
                    event = self._event(row, columns, row_number, raw, context, identities)
                except ROW_ERRORS as error:
                    yield RowResult(row_number, raw, error=as_rejection(error))
                else:
                    yield RowResult(row_number, raw, event=event)
        finally:
            identities.close()
            spool.close()

    def _event(
        self,
        row: dict[str, str],
        columns: dict[str, str],
        row_number: int,
        raw: bytes,
        context: ImportContext,
        identities: IdentityAllocator,
    ) -> UsageRecorded:
        start, end = azure_day(_cell(row, columns, "date"), columns["date"])
        cost = decimal_value(_cell(row, columns, "cost"), columns["cost"])
        assert cost is not None
        stated_currency = _cell(row, columns, "currency")
        if stated_currency is not None:
            currency = currency_code(stated_currency, columns["currency"])
        elif context.currency is not None:
            currency = context.currency
        else:
            raise RowRejected(
                columns.get("currency", "BillingCurrencyCode"),
                "is missing; this export has no currency column, so name it on import (--currency EUR)",
            )
        charge_type = _cell(row, columns, "charge_type") or "Usage"
        category = _CHARGE_TYPES.get(charge_type.lower())
        if category is None:
            raise RowRejected(columns.get("charge_type", "ChargeType"), f"unknown charge type {quoted(charge_type)}")
        if category is ChargeCategory.USAGE and cost < 0:
            category = ChargeCategory.REFUND

        meter_category = _cell(row, columns, "meter_category")
        meter_subcategory = _cell(row, columns, "meter_subcategory")
        meter_name = _cell(row, columns, "meter_name")
        unit = _cell(row, columns, "unit")
        meter = read_meter(meter_category, meter_subcategory, meter_name, unit)
        tags = azure_tags(_cell(row, columns, "tags"))
        tags |= string_tags(
            {
                "meter_category": meter_category,
                "meter_subcategory": meter_subcategory,
                "meter_name": meter_name,
                "resource_group": _cell(row, columns, "resource_group"),
                **meter.tags(),
            }
        )
        dimensions = UsageDimensions(
            account_id=_cell(row, columns, "subscription"),
            resource_id=_cell(row, columns, "resource_id"),
            tags=tags,
        )
        list_cost = decimal_value(_cell(row, columns, "list_cost"), columns.get("list_cost", ""), required=False)
        quantity = decimal_value(_cell(row, columns, "quantity"), columns.get("quantity", "Quantity"), required=False)
        natural_key = {
            name: value for name, value in row.items() if not any(marker in name.lower() for marker in MEASURE_MARKERS)
        }
        return UsageRecorded(
            event_id=identities.event_id(natural_key),
            occurred_at=start,
            source=f"ingest.{self.format_name}",
            tenant=context.tenant,
            correlation_id=context.correlation_id,
            provider="azure",
            service=meter_category,
            model=meter.model,
            service_tier=ServiceTier.BATCH if meter.batch else ServiceTier.STANDARD,
            region=_cell(row, columns, "location"),
            period_start=start,
            period_end=end,
            dimensions=dimensions,
            charge_category=category,
            pricing_basis=PricingBasis.PROVIDER_BILLED,
            provider_cost=Money(amount=cost, currency=currency),
            provider_list_cost=Money(amount=list_cost, currency=currency) if list_cost is not None else None,
            consumed_quantity=quantity,
            consumed_unit=unit,
            description=meter_name,
            evidence=Evidence(
                format=self.format_name, file_name=context.file_name, row_number=row_number, raw_sha256=sha256_hex(raw)
            ),
        )
