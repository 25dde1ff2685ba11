"""Tenant terms: negotiated contracts, a tenant's own prices and model names, its time zone and reporting currency.

The terms file is YAML (``ALLOCATION_TERMS_FILE``)::

    tenants:
      acme:
        time_zone: Europe/Berlin          # IANA name; reporting days and months follow it
        reporting_currency: USD
        aliases:                          # the tenant's own model names, such as cloud deployment names
          - {provider: azure, alias: prod-gpt-4o, model: gpt-4o}
        custom_prices:                    # catalogue columns; the tenant's price wins over the catalogue
          - {provider: selfhosted, model: llama-70b, bucket: gpu_seconds, service_tier: standard,
             unit_price: "4.10", price_per: 3600, currency: USD, effective_from: 2025-01-01, source: rate card}
        contracts:
          - id: openai-2025
            provider: openai
            starts: 2025-10-01
            ends: 2026-10-01               # exclusive
            discount_percent: "10"         # off list prices (custom or catalogue), never off contract prices
            discount_models: [gpt-5]       # catalogue model ids; every model of the provider when absent
            committed_spend: {amount: "1000.00", currency: USD}
            prices:                        # negotiated unit prices; they win over custom and catalogue prices
              - {model: gpt-5-mini, bucket: output_tokens, service_tier: standard, unit_price: "1.80",
                 price_per: 1000000, currency: USD}
            credits:                       # explicit negative lines, never netted into usage
              - {id: onboarding, applied_on: 2025-10-01, amount: "-5.00", currency: USD, description: Onboarding}

Every error names the tenant, contract and field.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml

from shared.catalogue import CatalogueError, PriceCatalogue, PriceRow, parse_instant, parse_price_row
from shared.events import Money

CURRENCY = re.compile(r"^[A-Z]{3}$")


class TermsError(ValueError):
    """The tenant terms file is invalid; the message names the tenant, contract and field."""


@dataclass(frozen=True, slots=True)
class Credit:
    credit_id: str
    applied_on: datetime
    amount: Money
    description: str


@dataclass(frozen=True, slots=True)
class Contract:
    contract_id: str
    provider: str
    starts: datetime
    ends: datetime | None
    discount_percent: Decimal | None = None
    discount_models: frozenset[str] | None = None
    committed_spend: Money | None = None
    credits: tuple[Credit, ...] = ()

    def covers(self, instant: datetime) -> bool:
        return self.starts <= instant and (self.ends is None or instant < self.ends)

    def discounts(self, provider: str, model: str, instant: datetime) -> bool:
        if self.discount_percent is None or provider != self.provider or not self.covers(instant):
            return False
        return self.discount_models is None or model in self.discount_models


@dataclass(frozen=True)
class TenantTerms:
    tenant: str
    time_zone: ZoneInfo = field(default_factory=lambda: ZoneInfo("UTC"))
    reporting_currency: str | None = None
    aliases: dict[tuple[str, str], str] = field(default_factory=dict)
    custom_prices: PriceCatalogue | None = None
    contract_prices: PriceCatalogue | None = None
    contracts: tuple[Contract, ...] = ()

    def discount_for(self, provider: str, model: str, instant: datetime) -> Contract | None:
        for contract in self.contracts:
            if contract.discounts(provider, model, instant):
                return contract
        return None


@functools.lru_cache(maxsize=4096)
def empty_terms(tenant: str) -> TenantTerms:
    """Return the terms of a tenant without a terms entry.

    Callers share one instance per tenant and must not change it.
    """
    return TenantTerms(tenant=tenant)


def load_terms(path: Path) -> dict[str, TenantTerms]:
    """Read the tenant terms file; raise TermsError naming the field of the first problem."""
    try:
        document = yaml.safe_load(path.read_text())
    except yaml.YAMLError as error:
        raise TermsError(f"{path}: not valid YAML: {error}") from None
    if not isinstance(document, dict) or not isinstance(document.get("tenants"), dict):
        raise TermsError(f"{path}: must be a mapping with a 'tenants' mapping")
    terms: dict[str, TenantTerms] = {}
    for tenant, entry in document["tenants"].items():
        terms[str(tenant)] = _parse_tenant(str(tenant), entry, f"{path}: tenants.{tenant}")
    return terms


def _parse_tenant(tenant: str, entry: Any, where: str) -> TenantTerms:
    if not isinstance(entry, dict):
        raise TermsError(f"{where}: must be a mapping")
    unknown = sorted(set(entry) - {"time_zone", "reporting_currency", "aliases", "custom_prices", "contracts"})
    if unknown:
        raise TermsError(f"{where}: unknown keys {', '.join(unknown)}")
    zone_name = entry.get("time_zone", "UTC")
    try:
        zone = ZoneInfo(str(zone_name))
    except (ZoneInfoNotFoundError, ValueError):
        raise TermsError(f"{where}.time_zone: unknown IANA time zone {zone_name!r}") from None
    currency = entry.get("reporting_currency")
    if currency is not None and not CURRENCY.match(str(currency)):
        raise TermsError(f"{where}.reporting_currency: must be an ISO 4217 code like USD, got {currency!r}")
    aliases = _parse_aliases(entry.get("aliases") or [], f"{where}.aliases")
    custom_rows = [
        _price_row(item, f"{where}.custom_prices[{index}]", scope=f"custom:{tenant}")
        for index, item in enumerate(_list(entry.get("custom_prices"), f"{where}.custom_prices"))
    ]
    contracts: list[Contract] = []
    contract_rows: list[PriceRow] = []
    for index, item in enumerate(_list(entry.get("contracts"), f"{where}.contracts")):
        contract, rows = _parse_contract(tenant, item, f"{where}.contracts[{index}]")
        if any(existing.contract_id == contract.contract_id for existing in contracts):
            raise TermsError(f"{where}.contracts[{index}].id: {contract.contract_id!r} is used twice")
        contracts.append(contract)
        contract_rows.extend(rows)
    _check_discount_overlaps(contracts, f"{where}.contracts")
    try:
        custom = PriceCatalogue(custom_rows, {}, version=f"custom:{tenant}") if custom_rows else None
        negotiated = PriceCatalogue(contract_rows, {}, version=f"contract:{tenant}") if contract_rows else None
    except CatalogueError as error:
        raise TermsError(f"{where}: {error}") from None
    return TenantTerms(
        tenant=tenant,
        time_zone=zone,
        reporting_currency=str(currency) if currency else None,
        aliases=aliases,
        custom_prices=custom,
        contract_prices=negotiated,
        contracts=tuple(contracts),
    )


def _list(value: Any, where: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise TermsError(f"{where}: must be a list")
    return value


def _parse_aliases(items: Any, where: str) -> dict[tuple[str, str], str]:
    aliases: dict[tuple[str, str], str] = {}
    for index, item in enumerate(_list(items, where)):
        if not isinstance(item, dict) or not all(
            isinstance(item.get(key), str) for key in ("provider", "alias", "model")
        ):
            raise TermsError(f"{where}[{index}]: needs provider, alias and model as strings")
        aliases[(item["provider"], item["alias"])] = item["model"]
    return aliases


def _price_row(item: Any, where: str, *, scope: str, defaults: dict[str, str] | None = None) -> PriceRow:
    if not isinstance(item, dict):
        raise TermsError(f"{where}: must be a mapping")
    row = {"effective_to": "", "source": "", **(defaults or {})}
    row.update({str(key): "" if value is None else str(value) for key, value in item.items()})
    try:
        return parse_price_row(row, where, scope=scope)
    except CatalogueError as error:
        raise TermsError(str(error)) from None


def _instant(value: Any, where: str) -> datetime:
    try:
        return parse_instant(str(value), where)
    except CatalogueError as error:
        raise TermsError(str(error)) from None


def _decimal(value: Any, where: str) -> Decimal:
    if isinstance(value, float):
        raise TermsError(f'{where}: write the number as a quoted string, such as "10.5", so no digit is lost')
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        raise TermsError(f"{where}: not a number: {value!r}") from None
    if not number.is_finite():
        raise TermsError(f"{where}: must be a finite number, got {value!r}")
    return number


def _money(value: Any, where: str) -> Money:
    if not isinstance(value, dict) or "amount" not in value or "currency" not in value:
        raise TermsError(f"{where}: needs amount and currency")
    currency = str(value["currency"])
    if not CURRENCY.match(currency):
        raise TermsError(f"{where}.currency: must be an ISO 4217 code like USD, got {currency!r}")
    return Money(amount=_decimal(value["amount"], f"{where}.amount"), currency=currency)


def _parse_contract(tenant: str, item: Any, where: str) -> tuple[Contract, list[PriceRow]]:
    if not isinstance(item, dict):
        raise TermsError(f"{where}: must be a mapping")
    allowed = {
        "id",
        "provider",
        "starts",
        "ends",
        "discount_percent",
        "discount_models",
        "committed_spend",
        "prices",
        "credits",
    }
    unknown = sorted(set(item) - allowed)
    if unknown:
        raise TermsError(f"{where}: unknown keys {', '.join(unknown)}")
    contract_id, provider = item.get("id"), item.get("provider")
    if not isinstance(contract_id, str) or not contract_id:
        raise TermsError(f"{where}.id: must be a non-empty string")
    if not isinstance(provider, str) or not provider:
        raise TermsError(f"{where}.provider: must be a non-empty string")
    if "starts" not in item:
        raise TermsError(f"{where}.starts: missing")
    starts = _instant(item["starts"], f"{where}.starts")
    ends = _instant(item["ends"], f"{where}.ends") if item.get("ends") else None
    if ends is not None and ends <= starts:
        raise TermsError(f"{where}.ends: must be after starts")
    discount = None
    if item.get("discount_percent") is not None:
        discount = _decimal(item["discount_percent"], f"{where}.discount_percent")
        if not Decimal(0) < discount < Decimal(100):
            raise TermsError(f"{where}.discount_percent: must be above 0 and below 100, got {discount}")
    models = item.get("discount_models")
    if models is not None and (not isinstance(models, list) or not all(isinstance(m, str) for m in models)):
        raise TermsError(f"{where}.discount_models: must be a list of model ids")
    committed = _money(item["committed_spend"], f"{where}.committed_spend") if item.get("committed_spend") else None
    if committed is not None and committed.amount <= 0:
        raise TermsError(f"{where}.committed_spend.amount: must be positive")
    scope = f"contract:{tenant}:{contract_id}"
    defaults = {
        "provider": provider,
        "effective_from": str(item["starts"]),
        "effective_to": str(item["ends"]) if item.get("ends") else "",
        "source": f"contract {contract_id}",
    }
    rows = [
        _price_row(price, f"{where}.prices[{index}]", scope=scope, defaults=defaults)
        for index, price in enumerate(_list(item.get("prices"), f"{where}.prices"))
    ]
    credits = tuple(
        _parse_credit(credit, f"{where}.credits[{index}]")
        for index, credit in enumerate(_list(item.get("credits"), f"{where}.credits"))
    )
    contract = Contract(
        contract_id=contract_id,
        provider=provider,
        starts=starts,
        ends=ends,
        discount_percent=discount,
        discount_models=frozenset(models) if models is not None else None,
        committed_spend=committed,
        credits=credits,
    )
    return contract, rows


def _parse_credit(item: Any, where: str) -> Credit:
    if not isinstance(item, dict):
        raise TermsError(f"{where}: must be a mapping")
    credit_id = item.get("id")
    if not isinstance(credit_id, str) or not credit_id:
        raise TermsError(f"{where}.id: must be a non-empty string")
    if "applied_on" not in item:
        raise TermsError(f"{where}.applied_on: missing")
    amount = _money(item, where)
    if amount.amount >= 0:
        raise TermsError(f"{where}.amount: a credit must be negative, got {amount.amount}")
    return Credit(
        credit_id=credit_id,
        applied_on=_instant(item["applied_on"], f"{where}.applied_on"),
        amount=amount,
        description=str(item.get("description") or f"credit {credit_id}"),
    )


def _check_discount_overlaps(contracts: Sequence[Contract], where: str) -> None:
    discounted = [contract for contract in contracts if contract.discount_percent is not None]
    for index, first in enumerate(discounted):
        for second in discounted[index + 1 :]:
            if first.provider != second.provider:
                continue
            overlap_in_time = (second.ends is None or first.starts < second.ends) and (
                first.ends is None or second.starts < first.ends
            )
            models_meet = (
                first.discount_models is None
                or second.discount_models is None
                or bool(first.discount_models & second.discount_models)
            )
            if overlap_in_time and models_meet:
                raise TermsError(
                    f"{where}: contracts {first.contract_id!r} and {second.contract_id!r} both discount "
                    f"{first.provider} models at the same time; a price may take one discount only"
                )
