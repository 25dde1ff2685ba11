"""AWS Cost and Usage Report, CUR 1 (``lineItem/UsageStartDate`` columns) and CUR 2.0 (``line_item_usage_start_date``).

Every row is a line of a bill of record. Column names are read in their CUR 2.0
form; a CUR 1 name ``category/FieldName`` becomes ``category_field_name``. The
charge category and the costs follow ``lineItem/LineItemType``, the way AWS's own
FOCUS export treats them:

- Usage, DiscountedUsage (reserved instances): usage; billed cost is the unblended
  cost, effective cost is ``reservation/EffectiveCost`` for discounted usage.
- SavingsPlanCoveredUsage: usage billed at 0, because a SavingsPlanNegation line
  cancels its unblended cost (the on-demand price) and the plan's fee lines carry the
  charge. Its effective cost is ``savingsPlan/SavingsPlanEffectiveCost``, and the
  SavingsPlanNegation line is read as empty, not as a charge.
- SavingsPlanRecurringFee, SavingsPlanUpfrontFee, RIFee, Fee: purchases.
- Tax: tax. Credit and the discount lines (EdpDiscount, BundledDiscount,
  PrivateRateDiscount, DistributorDiscount): credits. Refund: refund. Negative
  Usage is a refund. None of them is netted into usage.

``UsageStartDate``/``UsageEndDate`` without a zone are UTC, as AWS documents for CUR.

Amazon Bedrock: first-party models bill under product code ``AmazonBedrock`` with
usage types like ``EUW2-NovaLite-input-tokens`` or ``EU-Qwen3-32B-input-tokens-batch``;
Anthropic models bill as AWS Marketplace products named ``"<Model> (Amazon
Bedrock Edition)"`` with usage types like ``USW2-MP:USW2_InputTokenCount-Units``.
The model and token kind are read from those spellings. Token counts are not put
into usage buckets, because CUR states them in ``pricing/unit`` blocks whose size is
not documented per model. The amount stays in ``consumed_quantity`` with its unit.
GPU instance hours (``product/gpu`` GPUs per instance) become GPU-seconds.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from decimal import Decimal
from typing import IO

from services.ingest.normalisers._csv import cell_count_error, read_rows
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
    quoted,
    sha256_hex,
    string_tags,
    utc_timestamp,
)
from shared.events import (
    ChargeCategory,
    Evidence,
    Money,
    PricingBasis,
    ServiceTier,
    UsageBucket,
    UsageDimensions,
    UsageRecorded,
)

REQUIRED = (
    "line_item_line_item_type",
    "line_item_usage_start_date",
    "line_item_usage_end_date",
    "line_item_unblended_cost",
    "line_item_currency_code",
)
_USAGE_TYPES = {"usage": ChargeCategory.USAGE, "discountedusage": ChargeCategory.USAGE}
_CATEGORIES = {
    "usage": ChargeCategory.USAGE,
    "discountedusage": ChargeCategory.USAGE,
    "savingsplancoveredusage": ChargeCategory.USAGE,
    "savingsplanrecurringfee": ChargeCategory.PURCHASE,
    "savingsplanupfrontfee": ChargeCategory.PURCHASE,
    "rifee": ChargeCategory.PURCHASE,
    "fee": ChargeCategory.PURCHASE,
    "tax": ChargeCategory.TAX,
    "credit": ChargeCategory.CREDIT,
    "edpdiscount": ChargeCategory.CREDIT,
    "bundleddiscount": ChargeCategory.CREDIT,
    "privateratediscount": ChargeCategory.CREDIT,
    "distributordiscount": ChargeCategory.CREDIT,
    "refund": ChargeCategory.REFUND,
}
ABSORBED_TYPES = frozenset({"savingsplannegation"})
# Columns left out of the event identity: measured amounts, and ids AWS assigns anew in each report version.
MEASURE_MARKERS = ("cost", "amount", "rate")
UNSTABLE_COLUMNS = frozenset({"identity_line_item_id", "bill_invoice_id"})
BEDROCK_EDITION = " (Amazon Bedrock Edition)"
SECONDS_PER_HOUR = Decimal(3600)
_REGION_PREFIX = re.compile(r"^[A-Z]{2,4}\d?-")
_FIRST_PARTY_SUFFIX = re.compile(
    r"-(cache-?read|cache-?write)?-?(input|output)-tokens?(-count)?(-batch)?$", re.IGNORECASE
)


def snake_name(column: str) -> str:
    """Turn a CUR 1 column name (``lineItem/UsageStartDate``) into its CUR 2.0 form (``line_item_usage_start_date``)."""
    if "/" not in column:
        return column.strip().lower()
    parts = [re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", part).lower() for part in column.strip().split("/")]
    return "_".join(parts)


def _token_type(usage_type: str) -> str | None:
    text = usage_type.lower().replace("_", "").replace("-", "")
    if "cacheread" in text:
        return "cache_read"
    if "cachewrite" in text:
        return "cache_write"
    if "input" in text:
        return "input"
    if "output" in text:
        return "output"
    return None


def bedrock_reading(
    product_code: str | None, product_name: str | None, usage_type: str
) -> tuple[str | None, dict[str, str]]:
    """Return the model and tags (token type, deployment) of an Amazon Bedrock line, or (None, {}) for other lines."""
    if product_name and product_name.endswith(BEDROCK_EDITION):
        model: str | None = product_name[: -len(BEDROCK_EDITION)].strip() or None
    elif product_code == "AmazonBedrock":
        stripped = _REGION_PREFIX.sub("", usage_type)
        model = _FIRST_PARTY_SUFFIX.sub("", stripped) or None
    else:
        return None, {}
    tags = {"token_type": _token_type(usage_type), "deployment": "global" if "global" in usage_type.lower() else None}
    return model, {name: value for name, value in tags.items() if value}


def _check_header(header: list[str]) -> None:
    names = {snake_name(name) for name in header}
    missing = [column for column in REQUIRED if column not in names]
    if missing:
        raise FormatError(f"the CUR file lacks required columns: {', '.join(missing)}")


class AwsCur:
    format_name = "aws-cur"
    description = "AWS Cost and Usage Report, CUR 1 or CUR 2.0 (CSV)"
    reads_json = False

    def detect(self, head: bytes, file_name: str | None) -> bool:
        first_line = head.split(b"\n", 1)[0]
        return b"lineItem/UsageStartDate" in first_line or b"line_item_usage_start_date" in first_line

    def rows(self, stream: IO[bytes], context: ImportContext) -> Iterator[RowResult]:
        identities = IdentityAllocator(context.tenant, self.format_name)
        try:
            for row_number, _header, cells in read_rows(
                stream, what="the CUR file", delimiter=",", check_header=_check_header
            ):
                row = {snake_name(name): value for name, value in cells.items()}
                raw = json.dumps(cells, ensure_ascii=False, sort_keys=True).encode()
                misaligned = cell_count_error(cells)
                if misaligned is not None:
                    yield RowResult(row_number, raw, error=misaligned)
                    continue
                line_type = (row.get("line_item_line_item_type") or "").strip().lower()
                if line_type in ABSORBED_TYPES:
                    yield RowResult(row_number, raw, empty=True)
                    continue
                try:
                    event = self._event(row, line_type, row_number, raw, context, identities)
                except ROW_ERRORS as error:
                    yield RowResult(row_number, raw, error=as_rejection(error))
                else:
                    yield RowResult(row_number, raw, event=event)
        finally:
            identities.close()

    def _event(
        self,
        row: dict[str, str],
        line_type: str,
        row_number: int,
        raw: bytes,
        context: ImportContext,
        identities: IdentityAllocator,
    ) -> UsageRecorded:
        def cell(name: str) -> str | None:
            value = (row.get(name) or "").strip()
            return value or None

        category = _CATEGORIES.get(line_type)
        if category is None:
            raise RowRejected(
                "lineItem/LineItemType", f"unknown line item type {quoted(cell('line_item_line_item_type'))}"
            )
        start = utc_timestamp(cell("line_item_usage_start_date"), "lineItem/UsageStartDate")
        end = utc_timestamp(cell("line_item_usage_end_date"), "lineItem/UsageEndDate")
        if end < start:
            raise RowRejected("lineItem/UsageEndDate", f"is before lineItem/UsageStartDate ({end} < {start})")
        currency = currency_code(cell("line_item_currency_code"), "lineItem/CurrencyCode")
        unblended = decimal_value(cell("line_item_unblended_cost"), "lineItem/UnblendedCost")
        assert unblended is not None
        list_cost = decimal_value(cell("pricing_public_on_demand_cost"), "pricing/publicOnDemandCost", required=False)
        usage_amount = decimal_value(cell("line_item_usage_amount"), "lineItem/UsageAmount", required=False)

        billed, effective = unblended, unblended
        if line_type == "savingsplancoveredusage":
            billed = Decimal(0)
            effective = decimal_value(
                cell("savings_plan_savings_plan_effective_cost"), "savingsPlan/SavingsPlanEffectiveCost"
            )
        elif line_type == "discountedusage":
            stated = decimal_value(cell("reservation_effective_cost"), "reservation/EffectiveCost", required=False)
            effective = stated if stated is not None else unblended
        if line_type in _USAGE_TYPES and billed < 0:
            category = ChargeCategory.REFUND
        assert effective is not None

        product_code = cell("line_item_product_code")
        product = self._product(row)
        product_name = cell("product_product_name") or product.get("product_name")
        usage_type = cell("line_item_usage_type") or ""
        model, bedrock_tags = bedrock_reading(product_code, product_name, usage_type)
        instance_type = cell("product_instance_type") or product.get("instance_type")
        tags = self._resource_tags(row) | string_tags(
            {
                "product_code": product_code,
                "usage_type": usage_type,
                "operation": cell("line_item_operation"),
                "line_item_type": cell("line_item_line_item_type"),
                "instance_type": instance_type,
                **bedrock_tags,
            }
        )
        dimensions = UsageDimensions(
            account_id=cell("line_item_usage_account_id"), resource_id=cell("line_item_resource_id"), tags=tags
        )
        quantities = self._gpu_seconds(cell("product_gpu") or product.get("gpu"), usage_amount, cell("pricing_unit"))
        natural_key = {
            name: value
            for name, value in row.items()
            if name not in UNSTABLE_COLUMNS and not any(marker in name for marker in MEASURE_MARKERS)
        }
        return UsageRecorded(
            event_id=identities.event_id(natural_key),
            occurred_at=start,
            source=f"ingest.{self.format_name}",
            tenant=context.tenant,
            correlation_id=context.correlation_id,
            provider="aws",
            service=product_name or product_code,
            model=model,
            service_tier=ServiceTier.BATCH if "batch" in usage_type.lower() else ServiceTier.STANDARD,
            region=cell("product_region_code") or cell("product_region") or product.get("region_code"),
            period_start=start,
            period_end=end,
            dimensions=dimensions,
            quantities=quantities,
            charge_category=category,
            pricing_basis=PricingBasis.PROVIDER_BILLED,
            provider_cost=Money(amount=billed, currency=currency),
            provider_list_cost=Money(amount=list_cost, currency=currency) if list_cost is not None else None,
            provider_effective_cost=Money(amount=effective, currency=currency),
            consumed_quantity=usage_amount,
            consumed_unit=cell("pricing_unit"),
            description=cell("line_item_line_item_description"),
            evidence=Evidence(
                format=self.format_name, file_name=context.file_name, row_number=row_number, raw_sha256=sha256_hex(raw)
            ),
        )

    @staticmethod
    def _product(row: dict[str, str]) -> dict[str, str]:
        """Read CUR 2.0's ``product`` map column (JSON). CUR 1 has one column per product attribute instead."""
        text = (row.get("product") or "").strip()
        if not text:
            return {}
        try:
            parsed = checked_text(json.loads(text), "product")
        except (ValueError, RecursionError):
            raise RowRejected("product", f"must be a JSON object, got {quoted(text)}") from None
        if not isinstance(parsed, dict):
            raise RowRejected("product", "must be a JSON object")
        return string_tags(parsed)

    @staticmethod
    def _resource_tags(row: dict[str, str]) -> dict[str, str]:
        """Collect resource tags: CUR 1 ``resourceTags/<key>`` columns, or CUR 2.0's ``resource_tags`` map."""
        tags = {
            name.removeprefix("resource_tags_"): value.strip()
            for name, value in row.items()
            if name.startswith("resource_tags_") and value and value.strip()
        }
        text = (row.get("resource_tags") or "").strip()
        if text:
            try:
                parsed = checked_text(json.loads(text), "resource_tags")
            except (ValueError, RecursionError):
                raise RowRejected("resource_tags", f"must be a JSON object, got {quoted(text)}") from None
            if not isinstance(parsed, dict):
                raise RowRejected("resource_tags", "must be a JSON object")
            tags |= string_tags(parsed)
        return tags

    @staticmethod
    def _gpu_seconds(gpus: str | None, usage_amount: Decimal | None, unit: str | None) -> dict[UsageBucket, Decimal]:
        if not gpus or usage_amount is None or (unit or "").lower() not in ("hrs", "hours"):
            return {}
        count = decimal_value(gpus, "product/gpu")
        if count is None or count <= 0 or usage_amount < 0:
            return {}
        return {UsageBucket.GPU_SECONDS: usage_amount * SECONDS_PER_HOUR * count}
