"""The versioned price catalogue: effective-dated list prices per provider, model, bucket and service tier.

The catalogue is a CSV data file (``shared/data/prices.csv``) plus an explicit
alias table. Its version is the SHA-256 of both files, so every cost line can
name the exact prices it used. Lookups are exact: a model id that is neither in
the catalogue nor an alias has no price, and a bucket with no row has no price.
The one documented default is that reasoning tokens take the output rate when a
model has no reasoning row, because every provider in the catalogue bills them so.
"""

from __future__ import annotations

import csv
import hashlib
import io
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from importlib import resources
from pathlib import Path

from shared.events import ServiceTier, UsageBucket

PRICE_COLUMNS = (
    "provider",
    "model",
    "bucket",
    "service_tier",
    "unit_price",
    "price_per",
    "currency",
    "effective_from",
    "effective_to",
    "source",
)
ALIAS_COLUMNS = ("provider", "alias", "model")


class CatalogueError(ValueError):
    """The price catalogue file is invalid; the message names the file, row and column."""


@dataclass(frozen=True, slots=True)
class PriceRow:
    provider: str
    model: str
    bucket: UsageBucket
    service_tier: ServiceTier
    unit_price: Decimal
    price_per: int
    currency: str
    effective_from: datetime
    effective_to: datetime | None
    source: str

    @property
    def row_id(self) -> str:
        return (
            f"{self.provider}/{self.model}/{self.service_tier.value}/{self.bucket.value}/"
            f"{self.effective_from.date().isoformat()}"
        )

    def covers(self, instant: datetime) -> bool:
        return self.effective_from <= instant and (self.effective_to is None or instant < self.effective_to)


def _read_csv(text: str) -> list[tuple[int, dict[str, str]]]:
    lines = [line for line in io.StringIO(text) if not line.lstrip().startswith("#")]
    reader = csv.DictReader(lines)
    return [(index + 2, row) for index, row in enumerate(reader)]


def _day(value: str, where: str) -> datetime:
    try:
        return datetime.combine(date.fromisoformat(value), datetime.min.time(), tzinfo=UTC)
    except ValueError:
        raise CatalogueError(f"{where}: must be a date YYYY-MM-DD, got {value!r}") from None


class PriceCatalogue:
    def __init__(self, rows: list[PriceRow], aliases: dict[tuple[str, str], str], version: str) -> None:
        self.version = version
        self.aliases = aliases
        self._rows: dict[tuple[str, str, ServiceTier, UsageBucket], list[PriceRow]] = defaultdict(list)
        for row in rows:
            self._rows[(row.provider, row.model, row.service_tier, row.bucket)].append(row)
        self._models = {(row.provider, row.model) for row in rows}
        self._validate()

    @classmethod
    def load(cls, prices_path: Path | None = None, aliases_path: Path | None = None) -> PriceCatalogue:
        prices_text = (
            prices_path.read_text()
            if prices_path
            else resources.files("shared.data").joinpath("prices.csv").read_text()
        )
        aliases_text = (
            aliases_path.read_text()
            if aliases_path
            else resources.files("shared.data").joinpath("model_aliases.csv").read_text()
        )
        digest = hashlib.sha256(prices_text.encode() + b"\0" + aliases_text.encode()).hexdigest()
        prices_name = str(prices_path or "prices.csv")
        rows = [cls._parse_row(row, f"{prices_name} line {line}") for line, row in _read_csv(prices_text)]
        aliases: dict[tuple[str, str], str] = {}
        for line, row in _read_csv(aliases_text):
            where = f"{aliases_path or 'model_aliases.csv'} line {line}"
            missing = [column for column in ALIAS_COLUMNS if not (row.get(column) or "").strip()]
            if missing:
                raise CatalogueError(f"{where}: missing {', '.join(missing)}")
            key = (row["provider"].strip(), row["alias"].strip())
            if key in aliases:
                raise CatalogueError(f"{where}: alias {key[1]!r} of {key[0]} is listed twice")
            aliases[key] = row["model"].strip()
        return cls(rows, aliases, version=f"sha256:{digest[:16]}")

    @staticmethod
    def _parse_row(row: dict[str, str], where: str) -> PriceRow:
        missing = [column for column in PRICE_COLUMNS if column not in row]
        if missing:
            raise CatalogueError(f"{where}: missing columns {', '.join(missing)}")
        try:
            bucket = UsageBucket(row["bucket"].strip())
        except ValueError:
            raise CatalogueError(f"{where}: bucket: unknown bucket {row['bucket']!r}") from None
        try:
            tier = ServiceTier(row["service_tier"].strip())
        except ValueError:
            raise CatalogueError(f"{where}: service_tier: unknown tier {row['service_tier']!r}") from None
        try:
            unit_price = Decimal(row["unit_price"].strip())
        except InvalidOperation:
            raise CatalogueError(f"{where}: unit_price: not a number: {row['unit_price']!r}") from None
        if not unit_price.is_finite() or unit_price < 0:
            raise CatalogueError(f"{where}: unit_price: must be zero or more, got {unit_price}")
        price_per_text = row["price_per"].strip()
        if not price_per_text.isdigit() or int(price_per_text) <= 0:
            raise CatalogueError(f"{where}: price_per: must be a positive whole number, got {price_per_text!r}")
        currency = row["currency"].strip()
        if len(currency) != 3 or not currency.isalpha() or not currency.isupper():
            raise CatalogueError(f"{where}: currency: must be an ISO 4217 code like USD, got {currency!r}")
        effective_from = _day(row["effective_from"].strip(), f"{where}: effective_from")
        effective_to_text = row["effective_to"].strip()
        effective_to = _day(effective_to_text, f"{where}: effective_to") if effective_to_text else None
        if effective_to is not None and effective_to <= effective_from:
            raise CatalogueError(f"{where}: effective_to {effective_to_text} is not after effective_from")
        provider, model = row["provider"].strip(), row["model"].strip()
        if not provider or not model:
            raise CatalogueError(f"{where}: provider and model must not be empty")
        return PriceRow(
            provider,
            model,
            bucket,
            tier,
            unit_price,
            int(price_per_text),
            currency,
            effective_from,
            effective_to,
            row["source"].strip(),
        )

    def _validate(self) -> None:
        for rows in self._rows.values():
            rows.sort(key=lambda row: row.effective_from)
            for earlier, later in zip(rows, rows[1:], strict=False):
                if earlier.effective_to is None or earlier.effective_to > later.effective_from:
                    raise CatalogueError(f"price rows {earlier.row_id} and {later.row_id} overlap in time")
        for (provider, alias), model in self.aliases.items():
            if (provider, model) not in self._models:
                raise CatalogueError(f"alias {alias!r} points at {provider}/{model}, which has no prices")
            if (provider, alias) in self._models:
                raise CatalogueError(f"alias {alias!r} of {provider} is also a catalogue model")
        for (provider, model, tier, bucket), rows in self._rows.items():
            for row in rows:
                self._check_discounts(row, provider, model, tier, bucket)

    def _check_discounts(
        self, row: PriceRow, provider: str, model: str, tier: ServiceTier, bucket: UsageBucket
    ) -> None:
        at = row.effective_from
        if bucket is UsageBucket.CACHE_READ_TOKENS:
            base = self.price(provider, model, tier, UsageBucket.INPUT_UNCACHED_TOKENS, at)
            if base is not None and row.unit_price * base.price_per > base.unit_price * row.price_per:
                raise CatalogueError(
                    f"price row {row.row_id}: cache read {row.unit_price} is dearer than input {base.unit_price}"
                )
        if tier in (ServiceTier.BATCH, ServiceTier.FLEX):
            standard = self.price(provider, model, ServiceTier.STANDARD, bucket, at)
            if standard is not None and row.unit_price * standard.price_per > standard.unit_price * row.price_per:
                raise CatalogueError(
                    f"price row {row.row_id}: {tier.value} price {row.unit_price} is dearer than "
                    f"standard {standard.unit_price}"
                )

    def resolve_model(self, provider: str, model: str) -> str | None:
        """Return the catalogue id of a model id, through the alias table; None when unknown."""
        if (provider, model) in self._models:
            return model
        return self.aliases.get((provider, model))

    def models(self) -> set[tuple[str, str]]:
        return set(self._models)

    def price(self, provider: str, model: str, tier: ServiceTier, bucket: UsageBucket, at: datetime) -> PriceRow | None:
        """Return the row in effect at ``at``, or None; reasoning falls back to the output row only."""
        for row in self._rows.get((provider, model, tier, bucket), ()):
            if row.covers(at):
                return row
        if bucket is UsageBucket.REASONING_TOKENS:
            return self.price(provider, model, tier, UsageBucket.OUTPUT_TOKENS, at)
        return None

    def rows_for(self, provider: str, model: str) -> list[PriceRow]:
        return [row for (p, m, _t, _b), rows in self._rows.items() if (p, m) == (provider, model) for row in rows]
