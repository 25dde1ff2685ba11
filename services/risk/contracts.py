"""Contract and commitment exposure: committed spend projected to the term end, and renewals coming up.

The contracts file is YAML::

    contracts:
      - id: anthropic-commit-2026
        kind: spend_commitment        # use it or lose it: a shortfall is paid anyway, an overage is extra
        provider: anthropic
        committed: "500.00"
        currency: USD
        term_start: "2026-01-01"      # first and last day of the term, in the tenant's time zone
        term_end: "2026-12-31"
        notice_days: 60               # notice needed to stop the renewal
        alert_days: 30                # the renewal finding opens this many days before the notice deadline
        auto_renews: true
        shortfall_tolerance_percent: 10
        overage_tolerance_percent: 0
        owner: procurement@example.com
      - id: copilot-business
        kind: seat_licence
        vendor: github
        product: github-copilot
        seat_price: "19.00"           # per seat and month, used to price unused seats
        currency: USD
        term_start: "2026-01-01"
        term_end: "2026-12-31"
        notice_days: 30

``tenant`` names the tenant a contract belongs to; it defaults to the service's AIFINOPS_TENANT.
Drawdown is the provider's spend inside the term (the same spend categories as budgets). It is projected to
the term end linearly, as of the tenant's newest usage: drawdown × term days / elapsed days.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import yaml
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from services.risk.budgets import BUDGET_CATEGORIES, PERCENT_PLACES, percent
from services.risk.findings import Detection, finding_id
from services.risk.periods import SECONDS_PER_DAY, local_midnight
from services.risk.tables import RiskCostEntry
from shared.events import CostStatus, Severity

KINDS = ("spend_commitment", "seat_licence")
CENTS = Decimal("0.01")

ENTRIES = RiskCostEntry.__table__  # type: ignore[attr-defined]


class ContractError(ValueError):
    """The contracts file is invalid; the message names the contract and field."""


@dataclass(frozen=True, slots=True)
class Contract:
    contract_id: str
    kind: str
    tenant: str
    currency: str
    term_start: date
    term_end: date
    notice_days: int
    alert_days: int = 30
    auto_renews: bool = False
    owner: str | None = None
    provider: str | None = None
    committed: Decimal | None = None
    shortfall_tolerance_percent: Decimal = Decimal(0)
    overage_tolerance_percent: Decimal = Decimal(0)
    vendor: str | None = None
    product: str | None = None
    seat_price: Decimal | None = None

    @property
    def notice_deadline(self) -> date:
        return self.term_end - timedelta(days=self.notice_days)

    def term_bounds(self, zone: ZoneInfo) -> tuple[datetime, datetime]:
        return local_midnight(self.term_start, zone), local_midnight(self.term_end + timedelta(days=1), zone)


def load_contracts(path: Path, default_tenant: str) -> list[Contract]:
    try:
        document = yaml.safe_load(path.read_text())
    except yaml.YAMLError as error:
        raise ContractError(f"{path}: not valid YAML: {error}") from None
    if not isinstance(document, dict) or not isinstance(document.get("contracts"), list):
        raise ContractError(f"{path}: must be a mapping with a 'contracts' list")
    contracts = [
        _parse(entry, f"{path}: contracts[{index}]", default_tenant)
        for index, entry in enumerate(document["contracts"])
    ]
    ids = [contract.contract_id for contract in contracts]
    duplicates = sorted({name for name in ids if ids.count(name) > 1})
    if duplicates:
        raise ContractError(f"{path}: contract ids used twice: {', '.join(duplicates)}")
    return contracts


def seat_price_for(contracts: list[Contract], tenant: str, vendor: str, product: str) -> tuple[Decimal, str] | None:
    for contract in contracts:
        if contract.kind == "seat_licence" and contract.tenant == tenant and contract.seat_price is not None:
            if (contract.vendor, contract.product) == (vendor, product):
                return contract.seat_price, contract.currency
    return None


def _text(entry: dict[str, Any], name: str, where: str, *, required: bool = True) -> str | None:
    value = entry.get(name)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value:
        raise ContractError(f"{where}.{name}: must be a non-empty string")
    return value


def _decimal(entry: dict[str, Any], name: str, where: str, *, default: Decimal | None = None) -> Decimal | None:
    value = entry.get(name)
    if value is None:
        return default
    if isinstance(value, float):
        raise ContractError(f'{where}.{name}: write the number as a quoted string, such as "500.00", to keep it exact')
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        raise ContractError(f"{where}.{name}: must be a number, got {value!r}") from None
    if not number.is_finite() or number < 0:
        raise ContractError(f"{where}.{name}: must be zero or positive, got {value!r}")
    return number


def _date(entry: dict[str, Any], name: str, where: str) -> date:
    value = entry.get(name)
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(str(value))
    except ValueError:
        raise ContractError(f"{where}.{name}: must be a date as YYYY-MM-DD, got {value!r}") from None


def _days(entry: dict[str, Any], name: str, where: str, default: int) -> int:
    value = entry.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ContractError(f"{where}.{name}: must be a whole number of days, zero or more")
    return value


def _parse(entry: Any, where: str, default_tenant: str) -> Contract:
    if not isinstance(entry, dict):
        raise ContractError(f"{where}: must be a mapping")
    contract_id = _text(entry, "id", where)
    kind = entry.get("kind")
    if kind not in KINDS:
        raise ContractError(f"{where}.kind: must be one of {', '.join(KINDS)}, got {kind!r}")
    currency = _text(entry, "currency", where)
    assert contract_id is not None and currency is not None
    if len(currency) != 3 or not currency.isupper():
        raise ContractError(f"{where}.currency: must be an ISO 4217 code like USD, got {currency!r}")

    term_start, term_end = _date(entry, "term_start", where), _date(entry, "term_end", where)
    if term_end < term_start:
        raise ContractError(f"{where}.term_end: {term_end} is before term_start {term_start}")
    auto_renews = entry.get("auto_renews", False)
    if not isinstance(auto_renews, bool):
        raise ContractError(f"{where}.auto_renews: must be true or false")

    common: dict[str, Any] = {
        "contract_id": contract_id,
        "kind": kind,
        "tenant": _text(entry, "tenant", where, required=False) or default_tenant,
        "currency": currency,
        "term_start": term_start,
        "term_end": term_end,
        "notice_days": _days(entry, "notice_days", where, 0),
        "alert_days": _days(entry, "alert_days", where, 30),
        "auto_renews": auto_renews,
        "owner": _text(entry, "owner", where, required=False),
    }

    if kind == "spend_commitment":
        committed = _decimal(entry, "committed", where)
        if committed is None or committed == 0:
            raise ContractError(f"{where}.committed: a spend commitment needs a positive committed amount")
        return Contract(
            **common,
            provider=_text(entry, "provider", where),
            committed=committed,
            shortfall_tolerance_percent=_decimal(entry, "shortfall_tolerance_percent", where, default=Decimal(0))
            or Decimal(0),
            overage_tolerance_percent=_decimal(entry, "overage_tolerance_percent", where, default=Decimal(0))
            or Decimal(0),
        )
    return Contract(
        **common,
        vendor=_text(entry, "vendor", where),
        product=_text(entry, "product", where),
        seat_price=_decimal(entry, "seat_price", where),
    )


async def commitment_detections(
    connection: AsyncConnection, contract: Contract, zone: ZoneInfo, data_clock: datetime | None
) -> list[Detection]:
    """Project a spend commitment's drawdown to the term end; flag a shortfall or overage past its tolerance."""
    assert contract.committed is not None and contract.provider is not None
    start, end = contract.term_bounds(zone)
    if data_clock is None or data_clock <= start:
        return []
    result = await connection.execute(
        select(ENTRIES.c.cost_event_id, ENTRIES.c.cost_amount).where(
            ENTRIES.c.tenant == contract.tenant,
            ENTRIES.c.provider == contract.provider,
            ENTRIES.c.usage_start >= start,
            ENTRIES.c.usage_start < end,
            ENTRIES.c.status != CostStatus.UNPRICED.value,
            ENTRIES.c.charge_category.in_(BUDGET_CATEGORIES),
            ENTRIES.c.cost_currency == contract.currency,
        )
    )
    rows = result.all()

    drawdown = sum((row.cost_amount for row in rows), Decimal(0))
    as_of = min(data_clock, end)
    term_days = Decimal(int((end - start).total_seconds())) / SECONDS_PER_DAY
    elapsed_days = Decimal(int((as_of - start).total_seconds())) / SECONDS_PER_DAY
    projected = (drawdown * term_days / elapsed_days).quantize(CENTS, rounding=ROUND_HALF_EVEN)
    committed = contract.committed
    facts = {
        "contract_id": contract.contract_id,
        "provider": contract.provider,
        "committed": f"{committed} {contract.currency}",
        "term": f"{contract.term_start} to {contract.term_end}",
        "drawdown": f"{drawdown} {contract.currency}",
        "data_through": as_of.isoformat(),
        "elapsed_days": str(elapsed_days.quantize(PERCENT_PLACES)),
        "term_days": str(term_days.quantize(PERCENT_PLACES)),
        "projected_at_term_end": f"{projected} {contract.currency}",
        "projected_percent_of_commitment": str(percent(projected, committed)),
        "method": "drawdown × term days / elapsed days",
    }

    shortfall, overage = committed - projected, projected - committed
    evidence = tuple(row.cost_event_id for row in rows)
    if shortfall > committed * contract.shortfall_tolerance_percent / 100:
        return [
            _commitment_detection(
                contract,
                "commitment_shortfall",
                facts | {"shortfall": f"{shortfall} {contract.currency}"},
                f"contract {contract.contract_id} is projected to use {projected} of {committed} "
                f"{contract.currency} committed, {shortfall} short",
                f"At the run rate so far the commitment will not be used up; the {shortfall} {contract.currency} "
                "left over is paid anyway. Move eligible workloads to this provider or renegotiate before renewal.",
                evidence,
            )
        ]
    if overage > committed * contract.overage_tolerance_percent / 100:
        return [
            _commitment_detection(
                contract,
                "commitment_overage",
                facts | {"overage": f"{overage} {contract.currency}"},
                f"contract {contract.contract_id} is projected to spend {projected} against {committed} "
                f"{contract.currency} committed, {overage} over",
                "Spend will pass the commitment before the term ends; spend above it is billed at on-demand rates. "
                "Raise the commitment or slow usage.",
                evidence,
            )
        ]
    return []


def _commitment_detection(
    contract: Contract, kind: str, facts: dict[str, str], title: str, reading: str, evidence: tuple[str, ...]
) -> Detection:
    return Detection(
        finding_id=finding_id(contract.tenant, "commitment", contract.contract_id, str(contract.term_end), kind),
        tenant=contract.tenant,
        kind=kind,
        severity=Severity.MEDIUM,
        subject=f"contract:{contract.contract_id}",
        title=title,
        facts=facts,
        interpretation=reading,
        evidence_event_ids=evidence,
        owner=contract.owner,
        occurrence=str(contract.term_end),
    )


def renewal_detection(contract: Contract, today: date) -> Detection | None:
    """Flag a contract whose notice deadline is within its alert days, until its term ends."""
    opens = contract.notice_deadline - timedelta(days=contract.alert_days)
    if not opens <= today <= contract.term_end:
        return None
    days_to_deadline = (contract.notice_deadline - today).days
    facts = {
        "contract_id": contract.contract_id,
        "kind": contract.kind,
        "term_end": str(contract.term_end),
        "notice_days": str(contract.notice_days),
        "notice_deadline": str(contract.notice_deadline),
        "days_to_notice_deadline": str(days_to_deadline),
        "auto_renews": "yes" if contract.auto_renews else "no",
        "checked_on": str(today),
    }
    if days_to_deadline >= 0:
        reading = f"Notice to change or stop this contract is due by {contract.notice_deadline}; " + (
            "it renews by itself after that." if contract.auto_renews else "decide whether to renew."
        )
    else:
        reading = f"The notice deadline {contract.notice_deadline} has passed" + (
            "; the contract will renew on its current terms." if contract.auto_renews else "."
        )
    return Detection(
        finding_id=finding_id(contract.tenant, "renewal", contract.contract_id, str(contract.term_end)),
        tenant=contract.tenant,
        kind="contract_renewal",
        severity=Severity.HIGH if contract.auto_renews else Severity.MEDIUM,
        subject=f"contract:{contract.contract_id}",
        title=f"contract {contract.contract_id} ends {contract.term_end}; notice is due by {contract.notice_deadline}",
        facts=facts,
        interpretation=reading,
        owner=contract.owner,
        occurrence=str(contract.term_end),
        track_changes=False,
    )
