"""The use case register: who owns each AI use case, what outcome it produces and what that outcome is worth.

Example::

    use_cases:
      - name: support-assistant
        owner: support-platform@example.com
        outcome_kind: tickets_resolved       # the figures below apply to this outcome kind only
        currency: USD
        value_per_outcome: "4.00"           # business value of one outcome
        baseline_cost_per_outcome: "6.20"   # what one outcome cost before the use case
        baseline_note: human agent handling cost per ticket, 2025 average
        investment: "1500.00"               # one-off build cost, for the payback period

Amounts are quoted strings so that they stay exact decimals. Every field but
``name`` is optional. Without ``outcome_kind`` the figures apply to every outcome
kind of the use case.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import yaml

AMOUNT_FIELDS = ("value_per_outcome", "baseline_cost_per_outcome", "investment")
TEXT_FIELDS = ("owner", "outcome_kind", "baseline_note", "description")


class UseCaseError(ValueError):
    """The use case register is invalid; the message names the use case and field."""


@dataclass(frozen=True, slots=True)
class UseCase:
    name: str
    currency: str | None = None
    owner: str | None = None
    outcome_kind: str | None = None
    value_per_outcome: Decimal | None = None
    baseline_cost_per_outcome: Decimal | None = None
    baseline_note: str | None = None
    investment: Decimal | None = None
    description: str | None = None

    def applies_to(self, outcome_kind: str) -> bool:
        return self.outcome_kind is None or self.outcome_kind == outcome_kind


class UseCaseRegister:
    def __init__(self, use_cases: list[UseCase]) -> None:
        self._by_name = {use_case.name: use_case for use_case in use_cases}

    @classmethod
    def load(cls, path: Path | None) -> UseCaseRegister:
        """Read the register from a YAML file; an absent path gives an empty register."""
        if path is None:
            return cls([])
        try:
            document = yaml.safe_load(path.read_text())
        except yaml.YAMLError as error:
            raise UseCaseError(f"{path}: not valid YAML: {error}") from None
        if not isinstance(document, dict) or not isinstance(document.get("use_cases"), list):
            raise UseCaseError(f"{path}: must be a mapping with a 'use_cases' list")
        use_cases = [_parse(entry, f"{path}: use_cases[{index}]") for index, entry in enumerate(document["use_cases"])]
        names = [use_case.name for use_case in use_cases]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise UseCaseError(f"{path}: use cases listed twice: {', '.join(duplicates)}")
        return cls(use_cases)

    def get(self, name: str) -> UseCase | None:
        return self._by_name.get(name)

    def names(self) -> list[str]:
        return sorted(self._by_name)


def _parse(entry: Any, where: str) -> UseCase:
    if not isinstance(entry, dict):
        raise UseCaseError(f"{where}: must be a mapping")
    name = entry.get("name")
    if not isinstance(name, str) or not name.strip():
        raise UseCaseError(f"{where}.name: must be a non-empty string")
    where = f"{where} ({name})"
    unknown = sorted(set(entry) - {"name", "currency", *AMOUNT_FIELDS, *TEXT_FIELDS})
    if unknown:
        raise UseCaseError(f"{where}: unknown fields: {', '.join(unknown)}")

    texts: dict[str, str | None] = {}
    for field_name in TEXT_FIELDS:
        value = entry.get(field_name)
        if value is not None and (not isinstance(value, str) or not value.strip()):
            raise UseCaseError(f"{where}.{field_name}: must be a non-empty string when given")
        texts[field_name] = value

    amounts = {field_name: _amount(entry.get(field_name), f"{where}.{field_name}") for field_name in AMOUNT_FIELDS}
    currency = entry.get("currency")
    if any(amount is not None for amount in amounts.values()) or currency is not None:
        if not isinstance(currency, str) or len(currency) != 3 or not currency.isalpha() or not currency.isupper():
            raise UseCaseError(f"{where}.currency: must be an ISO 4217 code like USD, got {currency!r}")
    return UseCase(name=name, currency=currency, **texts, **amounts)


def _amount(value: Any, where: str) -> Decimal | None:
    if value is None:
        return None
    if isinstance(value, float):
        raise UseCaseError(f'{where}: write the amount as a quoted string, such as "4.00", to keep it exact')
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise UseCaseError(f"{where}: must be a quoted number, got {value!r}")
    try:
        amount = Decimal(str(value))
    except InvalidOperation:
        raise UseCaseError(f"{where}: must be a number, got {value!r}") from None
    if not amount.is_finite() or amount < 0:
        raise UseCaseError(f"{where}: must be zero or more, got {value!r}")
    return amount
