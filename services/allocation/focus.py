"""Export of allocated cost as a FOCUS 1.2 cost-and-usage CSV.

One row per cost line (usage bucket) per owner share, so every charge has one SKU
price and one unit: ListCost = ListUnitPrice × PricingQuantity and ContractedCost
= ContractedUnitPrice × PricingQuantity hold on every priced row. BilledCost and
EffectiveCost are the owner's exact part of the line (largest remainder), so the
rows of a cost add up to it. Costs are what aifinops computed from usage and the
tenant's prices; bill lines (FOCUS, cloud exports) keep the provider's figures.

Revisions: the first priced revision of a cost gives ordinary rows. Each later
revision adds rows with ChargeClass "Correction" holding the difference per owner
and bucket, so the rows of one cost always add up to its current amount.

The allocation itself (team, cost centre, product, use case, environment, rule)
travels in ``x_`` columns, which FOCUS reserves for columns of the data generator.
Tags are the provider's tags of the usage, keys and values exactly as reported.
"""

from __future__ import annotations

import csv
import io
import json
from collections import defaultdict
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Context, Decimal
from typing import Any

from sqlalchemy import select

from services.allocation.ledger import LEDGER, REVISIONS
from shared.db import Database
from shared.events import UsageRecorded

FOCUS_COLUMNS = (
    "AvailabilityZone",
    "BilledCost",
    "BillingAccountId",
    "BillingAccountName",
    "BillingAccountType",
    "BillingCurrency",
    "BillingPeriodEnd",
    "BillingPeriodStart",
    "CapacityReservationId",
    "CapacityReservationStatus",
    "ChargeCategory",
    "ChargeClass",
    "ChargeDescription",
    "ChargeFrequency",
    "ChargePeriodEnd",
    "ChargePeriodStart",
    "CommitmentDiscountCategory",
    "CommitmentDiscountId",
    "CommitmentDiscountName",
    "CommitmentDiscountQuantity",
    "CommitmentDiscountStatus",
    "CommitmentDiscountType",
    "CommitmentDiscountUnit",
    "ConsumedQuantity",
    "ConsumedUnit",
    "ContractedCost",
    "ContractedUnitPrice",
    "EffectiveCost",
    "InvoiceId",
    "InvoiceIssuerName",
    "ListCost",
    "ListUnitPrice",
    "PricingCategory",
    "PricingCurrency",
    "PricingCurrencyContractedUnitPrice",
    "PricingCurrencyEffectiveCost",
    "PricingCurrencyListUnitPrice",
    "PricingQuantity",
    "PricingUnit",
    "ProviderName",
    "PublisherName",
    "RegionId",
    "RegionName",
    "ResourceId",
    "ResourceName",
    "ResourceType",
    "ServiceCategory",
    "ServiceName",
    "ServiceSubcategory",
    "SkuId",
    "SkuMeter",
    "SkuPriceDetails",
    "SkuPriceId",
    "SubAccountId",
    "SubAccountName",
    "SubAccountType",
    "Tags",
)
EXTRA_COLUMNS = (
    "x_Team",
    "x_CostCentre",
    "x_Product",
    "x_UseCase",
    "x_Environment",
    "x_AllocationRuleId",
    "x_AllocationFraction",
    "x_UsageEventId",
    "x_Revision",
    "x_PriceSource",
    "x_Tenant",
)
CHARGE_CATEGORIES = {
    "usage": "Usage",
    "purchase": "Purchase",
    "tax": "Tax",
    "credit": "Credit",
    "refund": "Credit",
    "adjustment": "Adjustment",
}
UNIT_NAMES = {
    "tokens": "Tokens",
    "calls": "Calls",
    "images": "Images",
    "seconds": "Seconds",
    "seat-months": "Seat-Months",
    "requests": "Requests",
}
METERS = {
    "input_uncached_tokens": "Input Tokens",
    "cache_read_tokens": "Cached Input Tokens",
    "cache_write_tokens": "Cache Write Tokens (5 minutes)",
    "cache_write_1h_tokens": "Cache Write Tokens (1 hour)",
    "output_tokens": "Output Tokens",
    "reasoning_tokens": "Reasoning Tokens",
    "web_search_calls": "Web Search Calls",
    "images": "Images",
    "audio_seconds": "Audio Seconds",
    "gpu_seconds": "GPU Seconds",
    "seat_months": "Seats",
    "requests": "Requests",
}
# Quotients such as seconds / 3,600 do not terminate; they are written to 28 significant digits.
QUOTIENT = Context(prec=28)


def number(value: Decimal | None) -> str:
    if value is None:
        return ""
    text = format(value.normalize(), "f")
    return "0" if text in ("-0", "") else text


def instant(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def billing_period(start: datetime) -> tuple[str, str]:
    first = start.astimezone(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    following = (
        first.replace(year=first.year + 1, month=1) if first.month == 12 else first.replace(month=first.month + 1)
    )
    return instant(first), instant(following)


def pricing_unit(price_per: int, unit: str) -> str:
    name = UNIT_NAMES.get(unit, unit.title())
    if unit == "seconds" and price_per == 3600:
        return "Hours"
    return name if price_per == 1 else f"{price_per} {name}"


def pricing_quantity(quantity: Decimal, price_per: int) -> Decimal:
    return QUOTIENT.divide(quantity, Decimal(price_per))


def _sub_account(dimensions: dict[str, Any]) -> tuple[str | None, str | None]:
    for key, label in (("project_id", "Project"), ("workspace_id", "Workspace"), ("account_id", "Account")):
        if dimensions.get(key):
            return str(dimensions[key]), label
    return None, None


def _common(row: Any, usage: UsageRecorded, share: dict[str, Any], revision: int) -> dict[str, str]:
    dimensions = json.loads(row.dimensions_json)
    sub_account, sub_type = _sub_account(dimensions)
    allocation = share["allocation"]
    period_start, period_end = billing_period(row.period_start)
    account = f"{row.tenant}/{row.provider}"
    return {
        "BillingAccountId": account,
        "BillingAccountName": account,
        "BillingPeriodStart": period_start,
        "BillingPeriodEnd": period_end,
        "ChargePeriodStart": instant(row.period_start),
        "ChargePeriodEnd": instant(max(row.period_end, row.period_start)),
        "InvoiceIssuerName": row.provider,
        "ProviderName": row.provider,
        "PublisherName": row.provider,
        "RegionId": usage.region or "",
        "RegionName": usage.region or "",
        "ResourceId": dimensions.get("resource_id") or "",
        "ServiceName": row.service or row.provider,
        "SubAccountId": sub_account or "",
        "SubAccountName": sub_account or "",
        "SubAccountType": sub_type or "",
        "Tags": json.dumps(dimensions.get("tags") or {}, ensure_ascii=False, sort_keys=True),
        "x_Team": allocation["team"],
        "x_CostCentre": allocation["cost_centre"],
        "x_Product": allocation.get("product") or "",
        "x_UseCase": allocation.get("use_case") or "",
        "x_Environment": allocation.get("environment") or "",
        "x_AllocationRuleId": allocation["rule_id"],
        "x_AllocationFraction": str(share["fraction"]),
        "x_UsageEventId": row.usage_event_id,
        "x_Revision": str(revision),
        "x_Tenant": row.tenant,
    }


def _line_rows(row: Any, usage: UsageRecorded, revision: Any) -> Iterator[dict[str, str]]:
    """Ordinary rows of one revision: a row per line per owner, or per owner for a bill line."""
    lines = json.loads(revision.lines_json)
    shares = json.loads(revision.shares_json)
    share_lines = json.loads(revision.share_lines_json)
    category = CHARGE_CATEGORIES[row.charge_category]
    for share_index, share in enumerate(shares):
        parts = share_lines[share_index] if share_index < len(share_lines) else []
        common = _common(row, usage, share, revision.revision)
        fraction = Decimal(share["fraction"])
        if not lines:
            amount = Decimal(parts[0]) if parts else Decimal(share["amount"]["amount"])
            yield _bill_line(common, row, usage, amount, revision.cost_currency, category, fraction)
            continue
        for line, part in zip(lines, parts, strict=True):
            yield _priced_line(common, row, line, Decimal(part), fraction, category)


def _priced_line(
    common: dict[str, str], row: Any, line: dict[str, Any], part: Decimal, fraction: Decimal, category: str
) -> dict[str, str]:
    quantity = Decimal(line["quantity"]) * fraction
    unit_price = Decimal(line["unit_price"]["amount"])
    list_price = Decimal(line["list_unit_price"]["amount"]) if line.get("list_unit_price") else unit_price
    pricing_qty = pricing_quantity(quantity, line["price_per"])
    currency = line["amount"]["currency"]
    model = row.priced_model or row.model
    tier = row.service_tier
    return {
        **common,
        "BilledCost": number(part),
        "BillingCurrency": currency,
        "ChargeCategory": category,
        "ChargeClass": "",
        "ChargeDescription": (
            f"{model} {METERS.get(line['bucket'], line['bucket'])}, {tier} tier: {number(quantity)} {line['unit']} "
            f"at {number(unit_price)} {currency} per {line['price_per']:,}"
        ),
        "ChargeFrequency": "Usage-Based",
        "ConsumedQuantity": number(quantity),
        "ConsumedUnit": UNIT_NAMES.get(line["unit"], line["unit"]),
        "ContractedCost": number(unit_price * pricing_qty),
        "ContractedUnitPrice": number(unit_price),
        "EffectiveCost": number(part),
        "ListCost": number(list_price * pricing_qty),
        "ListUnitPrice": number(list_price),
        "PricingCategory": "Standard",
        "PricingCurrency": currency,
        "PricingCurrencyContractedUnitPrice": number(unit_price),
        "PricingCurrencyEffectiveCost": number(part),
        "PricingCurrencyListUnitPrice": number(list_price),
        "PricingQuantity": number(pricing_qty),
        "PricingUnit": pricing_unit(line["price_per"], line["unit"]),
        "ServiceCategory": "AI and Machine Learning",
        "ServiceSubcategory": "Generative AI",
        "SkuId": f"{row.provider}/{model}/{tier}/{line['bucket']}",
        "SkuMeter": METERS.get(line["bucket"], line["bucket"]),
        "SkuPriceDetails": json.dumps({"x_ServiceTier": tier}),
        "SkuPriceId": line["price_row_id"],
        "x_PriceSource": line.get("price_source") or "catalogue",
    }


def _bill_line(
    common: dict[str, str],
    row: Any,
    usage: UsageRecorded,
    amount: Decimal,
    currency: str,
    category: str,
    fraction: Decimal,
) -> dict[str, str]:
    listed = usage.provider_list_cost.amount * fraction if usage.provider_list_cost else amount
    effective = usage.provider_effective_cost.amount * fraction if usage.provider_effective_cost else amount
    priced_kind = category in ("Usage", "Purchase")
    quantity = usage.consumed_quantity * fraction if usage.consumed_quantity is not None else None
    pricing_qty = quantity if quantity not in (None, Decimal(0)) else Decimal(1)
    return {
        **common,
        "BilledCost": number(amount),
        "BillingCurrency": currency,
        "ChargeCategory": category,
        "ChargeClass": "",
        "ChargeDescription": usage.description or f"{row.provider} {row.charge_category}",
        "ChargeFrequency": "Usage-Based" if category == "Usage" else "One-Time",
        "ConsumedQuantity": number(quantity) if category == "Usage" and quantity is not None else "",
        "ConsumedUnit": (usage.consumed_unit or "") if category == "Usage" and quantity is not None else "",
        "ContractedCost": number(amount),
        "ContractedUnitPrice": number(QUOTIENT.divide(amount, pricing_qty)) if priced_kind else "",
        "EffectiveCost": number(effective),
        "ListCost": number(listed),
        "ListUnitPrice": number(QUOTIENT.divide(listed, pricing_qty)) if priced_kind else "",
        "PricingCategory": "Standard" if priced_kind else "",
        "PricingCurrency": currency,
        "PricingCurrencyContractedUnitPrice": number(QUOTIENT.divide(amount, pricing_qty)) if priced_kind else "",
        "PricingCurrencyEffectiveCost": number(effective),
        "PricingCurrencyListUnitPrice": number(QUOTIENT.divide(listed, pricing_qty)) if priced_kind else "",
        "PricingQuantity": number(pricing_qty) if priced_kind else "",
        "PricingUnit": (usage.consumed_unit or "Units") if priced_kind else "",
        "ServiceCategory": "Other",
        "ServiceSubcategory": "Other (Other)",
        "SkuId": "",
        "SkuMeter": "",
        "SkuPriceDetails": "",
        "SkuPriceId": "",
        "x_PriceSource": "provider_billed",
    }


def _amounts_by_owner_and_bucket(revision: Any) -> dict[tuple[str, str], tuple[Decimal, Decimal, str]]:
    """Return (billed, list) amounts per (owner, bucket) of one revision, for correction deltas."""
    lines = json.loads(revision.lines_json)
    shares = json.loads(revision.shares_json)
    share_lines = json.loads(revision.share_lines_json)
    found: dict[tuple[str, str], tuple[Decimal, Decimal, str]] = {}
    if revision.cost_amount is None:
        return found
    for share_index, share in enumerate(shares):
        owner = json.dumps(share["allocation"], sort_keys=True)
        parts = [Decimal(part) for part in share_lines[share_index]] if share_index < len(share_lines) else []
        if not lines:
            amount = parts[0] if parts else Decimal(share["amount"]["amount"])
            found[(owner, "")] = (amount, amount, revision.cost_currency)
            continue
        for line, part in zip(lines, parts, strict=True):
            list_amount = (
                Decimal(line["list_amount"]["amount"]) if line.get("list_amount") else Decimal(line["amount"]["amount"])
            )
            line_amount = Decimal(line["amount"]["amount"])
            share_list = (
                list_amount if line_amount == 0 else QUOTIENT.multiply(list_amount, QUOTIENT.divide(part, line_amount))
            )
            found[(owner, line["bucket"])] = (part, share_list, line["amount"]["currency"])
    return found


def _correction_rows(row: Any, usage: UsageRecorded, previous: Any, current: Any) -> Iterator[dict[str, str]]:
    before = _amounts_by_owner_and_bucket(previous)
    after = _amounts_by_owner_and_bucket(current)
    for key in sorted(set(before) | set(after)):
        old_billed, old_list, old_currency = before.get(key, (Decimal(0), Decimal(0), ""))
        new_billed, new_list, new_currency = after.get(key, (Decimal(0), Decimal(0), ""))
        currency = new_currency or old_currency
        if old_currency and new_currency and old_currency != new_currency:
            # A currency change is a reversal of the old amount and a new charge, never one delta.
            yield from _correction_row(row, usage, key, current, -old_billed, -old_list, old_currency)
            yield from _correction_row(row, usage, key, current, new_billed, new_list, new_currency)
            continue
        if new_billed != old_billed or new_list != old_list:
            yield from _correction_row(row, usage, key, current, new_billed - old_billed, new_list - old_list, currency)


def _correction_row(
    row: Any, usage: UsageRecorded, key: tuple[str, str], revision: Any, billed: Decimal, listed: Decimal, currency: str
) -> Iterator[dict[str, str]]:
    owner, bucket = key
    share = {"allocation": json.loads(owner), "fraction": ""}
    common = _common(row, usage, share, revision.revision)
    yield {
        **common,
        "BilledCost": number(billed),
        "BillingCurrency": currency,
        "ChargeCategory": CHARGE_CATEGORIES[row.charge_category],
        "ChargeClass": "Correction",
        "ChargeDescription": f"correction to revision {revision.revision - 1}: {revision.reason or 're-priced'}"[:500],
        "ChargeFrequency": "Usage-Based" if row.charge_category == "usage" else "One-Time",
        "ContractedCost": number(billed),
        "EffectiveCost": number(billed),
        "ListCost": number(listed),
        "PricingCurrency": currency,
        "PricingCurrencyEffectiveCost": number(billed),
        "ServiceCategory": "AI and Machine Learning" if bucket else "Other",
        "ServiceSubcategory": "Generative AI" if bucket else "Other (Other)",
        "SkuMeter": METERS.get(bucket, ""),
        "x_PriceSource": "correction",
    }


async def focus_rows(
    database: Database, tenant: str, *, start: datetime | None = None, end: datetime | None = None
) -> list[dict[str, str]]:
    """Build the export rows of one tenant's costs whose usage period starts in [start, end)."""
    rows: list[dict[str, str]] = []
    async with database.engine.connect() as connection:
        query = select(LEDGER).where(LEDGER.c.tenant == tenant)
        if start is not None:
            query = query.where(LEDGER.c.period_start >= start)
        if end is not None:
            query = query.where(LEDGER.c.period_start < end)
        ledger = (await connection.execute(query.order_by(LEDGER.c.period_start, LEDGER.c.usage_event_id))).all()
        revisions: dict[str, list[Any]] = defaultdict(list)
        result = await connection.execute(
            select(REVISIONS)
            .where(REVISIONS.c.tenant == tenant)
            .order_by(REVISIONS.c.usage_event_id, REVISIONS.c.revision)
        )
        for revision in result:
            revisions[revision.usage_event_id].append(revision)
    for row in ledger:
        if not row.usage_json:
            continue
        usage = UsageRecorded.model_validate_json(row.usage_json)
        previous = None
        for revision in revisions.get(row.usage_event_id, []):
            if previous is None:
                if revision.cost_amount is not None:
                    rows.extend(_line_rows(row, usage, revision))
                    previous = revision
                continue
            rows.extend(_correction_rows(row, usage, previous, revision))
            previous = revision
    return rows


def focus_csv(rows: list[dict[str, str]]) -> str:
    output = io.StringIO()
    writer = csv.DictWriter(output, fieldnames=[*FOCUS_COLUMNS, *EXTRA_COLUMNS], lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({column: row.get(column, "") for column in (*FOCUS_COLUMNS, *EXTRA_COLUMNS)})
    return output.getvalue()
