"""Budgets from a YAML file: a spending limit per team, cost centre or use case and calendar month.

Example::

    budgets:
      - id: document-ai-monthly
        scope: {team: document-ai}
        period: monthly
        amount: "2.00"
        currency: USD
        thresholds: [80, 100]
        owner: head-of-document-ai@example.com

Spend against a budget is the sum of usage, purchase, tax and adjustment costs in
the month the usage happened (UTC); credits and refunds are reported on their own
and do not lower budget spend.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import yaml

SCOPE_KEYS = ("team", "cost_centre", "use_case")
BUDGET_CATEGORIES = ("usage", "purchase", "tax", "adjustment")


class BudgetError(ValueError):
    """The budgets file is invalid; the message names the budget and field."""


@dataclass(frozen=True, slots=True)
class Budget:
    budget_id: str
    scope_key: str
    scope_value: str
    amount: Decimal
    currency: str
    thresholds: tuple[int, ...]
    owner: str | None

    @property
    def subject(self) -> str:
        return f"{self.scope_key}:{self.scope_value}"


def load_budgets(path: Path) -> list[Budget]:
    try:
        document = yaml.safe_load(path.read_text())
    except yaml.YAMLError as error:
        raise BudgetError(f"{path}: not valid YAML: {error}") from None
    if not isinstance(document, dict) or not isinstance(document.get("budgets"), list):
        raise BudgetError(f"{path}: must be a mapping with a 'budgets' list")
    budgets = [_parse(entry, f"{path}: budgets[{index}]") for index, entry in enumerate(document["budgets"])]
    ids = [budget.budget_id for budget in budgets]
    duplicates = sorted({budget_id for budget_id in ids if ids.count(budget_id) > 1})
    if duplicates:
        raise BudgetError(f"{path}: budget ids used twice: {', '.join(duplicates)}")
    return budgets


def _parse(entry: Any, where: str) -> Budget:
    if not isinstance(entry, dict):
        raise BudgetError(f"{where}: must be a mapping")
    budget_id = entry.get("id")
    if not isinstance(budget_id, str) or not budget_id:
        raise BudgetError(f"{where}.id: must be a non-empty string")
    scope = entry.get("scope")
    if not isinstance(scope, dict) or len(scope) != 1 or next(iter(scope)) not in SCOPE_KEYS:
        raise BudgetError(f"{where}.scope: must name exactly one of {', '.join(SCOPE_KEYS)}")
    scope_key, scope_value = next(iter(scope.items()))
    if not isinstance(scope_value, str) or not scope_value:
        raise BudgetError(f"{where}.scope.{scope_key}: must be a non-empty string")
    if entry.get("period", "monthly") != "monthly":
        raise BudgetError(f"{where}.period: only 'monthly' is supported, got {entry.get('period')!r}")
    if isinstance(entry.get("amount"), float):
        raise BudgetError(f'{where}.amount: write the amount as a quoted string, such as "2.00", to keep it exact')
    try:
        amount = Decimal(str(entry.get("amount")))
    except InvalidOperation:
        raise BudgetError(f"{where}.amount: must be a number, got {entry.get('amount')!r}") from None
    if not amount.is_finite() or amount <= 0:
        raise BudgetError(f"{where}.amount: must be positive, got {amount}")
    currency = entry.get("currency")
    if not isinstance(currency, str) or len(currency) != 3 or not currency.isupper():
        raise BudgetError(f"{where}.currency: must be an ISO 4217 code like USD, got {currency!r}")
    thresholds = entry.get("thresholds", [80, 100])
    if (
        not isinstance(thresholds, list)
        or not thresholds
        or not all(isinstance(item, int) and not isinstance(item, bool) and 0 < item <= 1000 for item in thresholds)
    ):
        raise BudgetError(f"{where}.thresholds: must be a list of whole percentages between 1 and 1000")
    owner = entry.get("owner")
    if owner is not None and not isinstance(owner, str):
        raise BudgetError(f"{where}.owner: must be a string")
    return Budget(budget_id, scope_key, scope_value, amount, currency, tuple(sorted(set(thresholds))), owner)
