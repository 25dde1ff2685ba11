"""Dated exchange rates for reporting in one currency; amounts in different currencies are never added raw.

The rates file is CSV (``ALLOCATION_FX_RATES_FILE``)::

    date,base,quote,rate,source
    2025-10-01,EUR,USD,1.1734,ECB reference rate

A row means that one ``base`` is worth ``rate`` of ``quote`` from ``date`` until the next
row of the same pair. Conversion uses the direct pair only: an inverse rate would
need a division that does not terminate, so a missing pair is reported, not derived.
"""

from __future__ import annotations

import bisect
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal, InvalidOperation
from pathlib import Path

from shared.catalogue import read_csv_rows
from shared.events import Money

FX_COLUMNS = ("date", "base", "quote", "rate", "source")


class FxError(ValueError):
    """The exchange-rate file is invalid; the message names the line and column."""


@dataclass
class FxTable:
    rates: dict[tuple[str, str], list[tuple[date, Decimal]]] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path) -> FxTable:
        table: dict[tuple[str, str], list[tuple[date, Decimal]]] = defaultdict(list)
        for line, row in read_csv_rows(path.read_text()):
            where = f"{path} line {line}"
            missing = [column for column in FX_COLUMNS if not (row.get(column) or "").strip()]
            if missing:
                raise FxError(f"{where}: missing {', '.join(missing)}")
            try:
                day = date.fromisoformat(row["date"].strip())
            except ValueError:
                raise FxError(f"{where}: date: must be YYYY-MM-DD, got {row['date']!r}") from None
            try:
                rate = Decimal(row["rate"].strip())
            except InvalidOperation:
                raise FxError(f"{where}: rate: not a number: {row['rate']!r}") from None
            if not rate.is_finite() or rate <= 0:
                raise FxError(f"{where}: rate: must be positive, got {rate}")
            pair = (row["base"].strip(), row["quote"].strip())
            if any(existing == day for existing, _ in table[pair]):
                raise FxError(f"{where}: {pair[0]}/{pair[1]} has two rates for {day}")
            table[pair].append((day, rate))
        for entries in table.values():
            entries.sort()
        return cls(dict(table))

    def rate(self, base: str, quote: str, on: date) -> Decimal | None:
        entries = self.rates.get((base, quote))
        if not entries:
            return None
        index = bisect.bisect_right([day for day, _ in entries], on) - 1
        return entries[index][1] if index >= 0 else None

    def convert(self, money: Money, currency: str, on: date) -> Money | None:
        """Return the amount in ``currency`` at the rate in force on ``on``, or None without a rate."""
        if money.currency == currency:
            return money
        rate = self.rate(money.currency, currency, on)
        if rate is None:
            return None
        return Money(amount=money.amount * rate, currency=currency)
