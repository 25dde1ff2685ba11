"""The versioned price catalogue: effective-dated prices per provider, model, bucket, tier, region and context tier.

The catalogue is a CSV data file (``shared/data/prices.csv``) plus an explicit
alias table. Its version is the SHA-256 of both files, so every cost line can
name the exact prices it used. Lookups are exact: a model id that is neither in
the catalogue nor an alias has no price, and a bucket with no row has no price.
The one documented default is that reasoning tokens take the output rate when a
model has no reasoning row, because every provider in the catalogue bills them so.

Optional columns:

- ``region``: the row applies only to usage in that region. A row without a
  region applies to every region that has no row of its own.
- ``context_over`` and ``context_measure``: a long-context tier. The row applies
  to requests whose measured quantity (``input_tokens``: uncached input, cache
  reads and cache writes; ``total_tokens``: those plus output and reasoning) is
  above ``context_over`` tokens. The tier is decided once per request, for every
  bucket of that request, never bucket by bucket.

The same file shape, with a scope, carries a tenant's own prices and the
negotiated prices of its contracts (``services/allocation/contracts.py``).
"""

from __future__ import annotations

import csv
import hashlib
import io
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from importlib import resources
from pathlib import Path

from shared.events import TOKEN_BUCKETS, ServiceTier, UsageBucket

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
OPTIONAL_PRICE_COLUMNS = ("region", "context_over", "context_measure")
ALIAS_COLUMNS = ("provider", "alias", "model")
CATALOGUE_SCOPE = "catalogue"


class ContextMeasure(StrEnum):
    """The per-request quantity a long-context tier is tested on."""

    INPUT_TOKENS = "input_tokens"
    TOTAL_TOKENS = "total_tokens"

    def buckets(self) -> frozenset[UsageBucket]:
        inputs = frozenset(
            {
                UsageBucket.INPUT_UNCACHED_TOKENS,
                UsageBucket.CACHE_READ_TOKENS,
                UsageBucket.CACHE_WRITE_TOKENS,
                UsageBucket.CACHE_WRITE_1H_TOKENS,
            }
        )
        return inputs if self is ContextMeasure.INPUT_TOKENS else frozenset(TOKEN_BUCKETS)


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
    region: str | None = None
    context_over: int | None = None
    context_measure: ContextMeasure | None = None
    scope: str = CATALOGUE_SCOPE

    @property
    def row_id(self) -> str:
        """Stable id of the row: scope, key, region, context tier and the day it takes effect."""
        parts = [self.provider, self.model, self.service_tier.value, self.bucket.value]
        if self.region is not None:
            parts.append(f"region={self.region}")
        if self.context_over is not None and self.context_measure is not None:
            parts.append(f"{self.context_measure.value}>{self.context_over}")
        parts.append(self.effective_from.date().isoformat())
        row_id = "/".join(parts)
        return row_id if self.scope == CATALOGUE_SCOPE else f"{self.scope}:{row_id}"

    def covers(self, instant: datetime) -> bool:
        return self.effective_from <= instant and (self.effective_to is None or instant < self.effective_to)

    def per_unit_cmp(self, other: PriceRow) -> int:
        """Compare unit prices across different ``price_per``: negative when self is cheaper."""
        left = self.unit_price * other.price_per
        right = other.unit_price * self.price_per
        return (left > right) - (left < right)


def read_csv_rows(text: str) -> list[tuple[int, dict[str, str]]]:
    """Parse a CSV text whose ``#`` lines are comments; return (line number, row) pairs."""
    numbered = [(number, line) for number, line in enumerate(io.StringIO(text), start=1)]
    kept = [(number, line) for number, line in numbered if not line.lstrip().startswith("#")]
    reader = csv.DictReader(line for _, line in kept)
    rows = list(reader)
    # DictReader reads the header from the first kept line; data row i sits on kept line i + 1.
    return [(kept[index + 1][0], row) for index, row in enumerate(rows)]


def parse_instant(value: str, where: str) -> datetime:
    """Parse ``YYYY-MM-DD`` (midnight UTC) or an ISO 8601 date-time with a UTC offset."""
    value = value.strip()
    try:
        if len(value) == 10:
            return datetime.combine(date.fromisoformat(value), datetime.min.time(), tzinfo=UTC)
        instant = datetime.fromisoformat(value)
    except ValueError:
        raise CatalogueError(f"{where}: must be a date YYYY-MM-DD or an ISO 8601 date-time, got {value!r}") from None
    if instant.tzinfo is None:
        raise CatalogueError(f"{where}: a date-time needs a UTC offset such as +00:00, got {value!r}")
    return instant.astimezone(UTC)


def parse_price_row(row: dict[str, str | None], where: str, *, scope: str = CATALOGUE_SCOPE) -> PriceRow:
    """Build a PriceRow from one CSV or YAML row; raise CatalogueError naming the column."""
    missing = [column for column in PRICE_COLUMNS if column not in row]
    if missing:
        raise CatalogueError(f"{where}: missing columns {', '.join(missing)}")
    text = {key: (value or "").strip() for key, value in row.items() if isinstance(key, str)}
    provider, model = text["provider"], text["model"]
    if not provider or not model:
        raise CatalogueError(f"{where}: provider and model must not be empty")
    try:
        bucket = UsageBucket(text["bucket"])
    except ValueError:
        allowed = ", ".join(item.value for item in UsageBucket)
        raise CatalogueError(f"{where}: bucket: unknown bucket {text['bucket']!r}; allowed: {allowed}") from None
    try:
        tier = ServiceTier(text["service_tier"])
    except ValueError:
        raise CatalogueError(f"{where}: service_tier: unknown tier {text['service_tier']!r}") from None
    try:
        unit_price = Decimal(text["unit_price"])
    except InvalidOperation:
        raise CatalogueError(f"{where}: unit_price: not a number: {text['unit_price']!r}") from None
    if not unit_price.is_finite() or unit_price < 0:
        raise CatalogueError(f"{where}: unit_price: must be zero or more, got {unit_price}")
    price_per_text = text["price_per"]
    if not price_per_text.isdigit() or int(price_per_text) <= 0:
        raise CatalogueError(f"{where}: price_per: must be a positive whole number, got {price_per_text!r}")
    currency = text["currency"]
    if len(currency) != 3 or not currency.isalpha() or not currency.isupper():
        raise CatalogueError(f"{where}: currency: must be an ISO 4217 code like USD, got {currency!r}")
    effective_from = parse_instant(text["effective_from"], f"{where}: effective_from")
    effective_to = parse_instant(text["effective_to"], f"{where}: effective_to") if text["effective_to"] else None
    if effective_to is not None and effective_to <= effective_from:
        raise CatalogueError(f"{where}: effective_to {text['effective_to']} is not after effective_from")
    context_over, context_measure = _parse_context(text, where)
    return PriceRow(
        provider=provider,
        model=model,
        bucket=bucket,
        service_tier=tier,
        unit_price=unit_price,
        price_per=int(price_per_text),
        currency=currency,
        effective_from=effective_from,
        effective_to=effective_to,
        source=text["source"],
        region=text.get("region") or None,
        context_over=context_over,
        context_measure=context_measure,
        scope=scope,
    )


def _parse_context(text: dict[str, str], where: str) -> tuple[int | None, ContextMeasure | None]:
    over_text, measure_text = text.get("context_over", ""), text.get("context_measure", "")
    if not over_text and not measure_text:
        return None, None
    if not over_text.isdigit():
        raise CatalogueError(f"{where}: context_over: must be a whole number of tokens, got {over_text!r}")
    try:
        measure = ContextMeasure(measure_text)
    except ValueError:
        allowed = ", ".join(item.value for item in ContextMeasure)
        raise CatalogueError(f"{where}: context_measure: must be one of {allowed}, got {measure_text!r}") from None
    return int(over_text), measure


@dataclass(frozen=True, slots=True)
class ContextTier:
    """A long-context threshold of one model: requests above ``over`` units of ``measure`` take the tier's rows."""

    over: int
    measure: ContextMeasure


class PriceCatalogue:
    def __init__(self, rows: Sequence[PriceRow], aliases: dict[tuple[str, str], str], version: str) -> None:
        self.version = version
        self.aliases = dict(aliases)
        self._rows: dict[tuple[str, str, ServiceTier, UsageBucket], list[PriceRow]] = defaultdict(list)
        for row in rows:
            self._rows[(row.provider, row.model, row.service_tier, row.bucket)].append(row)
        self._models = {(row.provider, row.model) for row in rows}
        self._validate()

    @classmethod
    def load(cls, prices_path: Path | None = None, aliases_path: Path | None = None) -> PriceCatalogue:
        prices_text = prices_path.read_text() if prices_path else default_prices_text()
        aliases_text = aliases_path.read_text() if aliases_path else default_aliases_text()
        digest = hashlib.sha256(prices_text.encode() + b"\0" + aliases_text.encode()).hexdigest()
        prices_name = str(prices_path or "prices.csv")
        rows = [parse_price_row(row, f"{prices_name} line {line}") for line, row in read_csv_rows(prices_text)]
        aliases = parse_aliases(aliases_text, str(aliases_path or "model_aliases.csv"))
        return cls(rows, aliases, version=f"sha256:{digest[:16]}")

    def _validate(self) -> None:
        for rows in self._rows.values():
            by_variant: dict[tuple[str | None, int | None], list[PriceRow]] = defaultdict(list)
            for row in rows:
                by_variant[(row.region, row.context_over)].append(row)
            for variant_rows in by_variant.values():
                variant_rows.sort(key=lambda row: row.effective_from)
                for earlier, later in zip(variant_rows, variant_rows[1:], strict=False):
                    if earlier.effective_to is None or earlier.effective_to > later.effective_from:
                        raise CatalogueError(f"price rows {earlier.row_id} and {later.row_id} overlap in time")
            rows.sort(key=lambda row: (row.effective_from, row.region or "", row.context_over or 0))
        for (provider, alias), model in self.aliases.items():
            if (provider, model) not in self._models:
                raise CatalogueError(f"alias {alias!r} points at {provider}/{model}, which has no prices")
            if (provider, alias) in self._models:
                raise CatalogueError(f"alias {alias!r} of {provider} is also a catalogue model")
        currencies: dict[tuple[str, str], set[str]] = defaultdict(set)
        for rows in self._rows.values():
            for row in rows:
                currencies[(row.provider, row.model)].add(row.currency)
                self._check_row(row)
        for (provider, model), found in currencies.items():
            if len(found) > 1:
                raise CatalogueError(
                    f"prices of {provider}/{model} are in several currencies ({', '.join(sorted(found))}); "
                    "one model's prices must share one currency"
                )

    def _check_row(self, row: PriceRow) -> None:
        at = row.effective_from
        variant = {"region": row.region, "context_over": row.context_over}
        if row.bucket is UsageBucket.CACHE_READ_TOKENS:
            base = self._exact(row, UsageBucket.INPUT_UNCACHED_TOKENS, row.service_tier, at, **variant)
            if base is not None and row.per_unit_cmp(base) > 0:
                raise CatalogueError(
                    f"price row {row.row_id}: cache read {row.unit_price} is dearer than input {base.unit_price}"
                )
        if row.service_tier in (ServiceTier.BATCH, ServiceTier.FLEX):
            standard = self._exact(row, row.bucket, ServiceTier.STANDARD, at, **variant)
            if standard is not None and row.per_unit_cmp(standard) > 0:
                raise CatalogueError(
                    f"price row {row.row_id}: {row.service_tier.value} price {row.unit_price} is dearer than "
                    f"standard {standard.unit_price}"
                )
        if row.context_over is not None:
            base = self._exact(row, row.bucket, row.service_tier, at, region=row.region, context_over=None)
            if base is None:
                raise CatalogueError(
                    f"price row {row.row_id}: a long-context row needs a base row for the same bucket and tier "
                    f"in effect at {at.date().isoformat()}"
                )

    def _exact(
        self,
        row: PriceRow,
        bucket: UsageBucket,
        tier: ServiceTier,
        at: datetime,
        *,
        region: str | None,
        context_over: int | None,
    ) -> PriceRow | None:
        for candidate in self._rows.get((row.provider, row.model, tier, bucket), ()):
            if candidate.region == region and candidate.context_over == context_over and candidate.covers(at):
                return candidate
        return None

    def resolve_model(self, provider: str, model: str) -> str | None:
        """Return the catalogue id of a model id, through the alias table; None when unknown."""
        if (provider, model) in self._models:
            return model
        return self.aliases.get((provider, model))

    def models(self) -> set[tuple[str, str]]:
        return set(self._models)

    def price(
        self,
        provider: str,
        model: str,
        tier: ServiceTier,
        bucket: UsageBucket,
        at: datetime,
        *,
        region: str | None = None,
        context_over: int | None = None,
        reasoning_falls_back: bool = True,
    ) -> PriceRow | None:
        """Return the row in effect at ``at``, or None; reasoning falls back to the output row only.

        A row for the usage's own region wins over a row without a region. ``context_over`` selects a
        long-context tier; None selects the base rows. Callers that search several price lists pass
        ``reasoning_falls_back=False`` so that a reasoning row in any list wins over an output row.
        """
        rows = [
            row
            for row in self._rows.get((provider, model, tier, bucket), ())
            if row.context_over == context_over and row.covers(at)
        ]
        regional = [row for row in rows if region is not None and row.region == region]
        general = [row for row in rows if row.region is None]
        if regional or general:
            return (regional or general)[0]
        if bucket is UsageBucket.REASONING_TOKENS and reasoning_falls_back:
            return self.price(
                provider, model, tier, UsageBucket.OUTPUT_TOKENS, at, region=region, context_over=context_over
            )
        return None

    def context_tiers(self, provider: str, model: str, at: datetime) -> list[ContextTier]:
        """Return the long-context thresholds of a model in effect at ``at``, lowest first."""
        tiers = {
            ContextTier(row.context_over, row.context_measure)
            for (p, m, _tier, _bucket), rows in self._rows.items()
            if (p, m) == (provider, model)
            for row in rows
            if row.context_over is not None and row.context_measure is not None and row.covers(at)
        }
        return sorted(tiers, key=lambda tier: tier.over)

    def rows_for(self, provider: str, model: str) -> list[PriceRow]:
        return [row for (p, m, _t, _b), rows in self._rows.items() if (p, m) == (provider, model) for row in rows]

    def all_rows(self) -> list[PriceRow]:
        return sorted(
            (row for rows in self._rows.values() for row in rows),
            key=lambda row: (
                row.provider,
                row.model,
                row.service_tier.value,
                row.bucket.value,
                row.region or "",
                row.context_over or 0,
                row.effective_from,
            ),
        )


def default_prices_text() -> str:
    return resources.files("shared.data").joinpath("prices.csv").read_text()


def default_aliases_text() -> str:
    return resources.files("shared.data").joinpath("model_aliases.csv").read_text()


def default_catalogue_paths() -> tuple[Path, Path]:
    """Return the file paths of the shipped catalogue, so a running service can tell when they change."""
    base = resources.files("shared.data")
    return Path(str(base.joinpath("prices.csv"))), Path(str(base.joinpath("model_aliases.csv")))


def parse_aliases(text: str, name: str) -> dict[tuple[str, str], str]:
    aliases: dict[tuple[str, str], str] = {}
    for line, row in read_csv_rows(text):
        where = f"{name} line {line}"
        missing = [column for column in ALIAS_COLUMNS if not (row.get(column) or "").strip()]
        if missing:
            raise CatalogueError(f"{where}: missing {', '.join(missing)}")
        key = (row["provider"].strip(), row["alias"].strip())
        if key in aliases:
            raise CatalogueError(f"{where}: alias {key[1]!r} of {key[0]} is listed twice")
        aliases[key] = row["model"].strip()
    return aliases


def _day_or_instant(value: datetime | None) -> str:
    if value is None:
        return ""
    if value.time() == datetime.min.time():
        return value.date().isoformat()
    return value.isoformat()


def price_rows_csv(rows: Iterable[PriceRow], header_comment: str = "") -> str:
    """Write price rows as a catalogue CSV that ``PriceCatalogue.load`` reads back unchanged."""
    output = io.StringIO()
    for line in header_comment.splitlines():
        output.write(f"# {line}\n" if line else "#\n")
    writer = csv.writer(output, lineterminator="\n")
    writer.writerow([*PRICE_COLUMNS, *OPTIONAL_PRICE_COLUMNS])
    for row in rows:
        writer.writerow(
            [
                row.provider,
                row.model,
                row.bucket.value,
                row.service_tier.value,
                format(row.unit_price, "f"),
                row.price_per,
                row.currency,
                _day_or_instant(row.effective_from),
                _day_or_instant(row.effective_to),
                row.source,
                row.region or "",
                "" if row.context_over is None else row.context_over,
                row.context_measure.value if row.context_measure else "",
            ]
        )
    return output.getvalue()


def aliases_csv(aliases: dict[tuple[str, str], str], header_comment: str = "") -> str:
    output = io.StringIO()
    for line in header_comment.splitlines():
        output.write(f"# {line}\n" if line else "#\n")
    writer = csv.writer(output, lineterminator="\n")
    writer.writerow(ALIAS_COLUMNS)
    for (provider, alias), model in sorted(aliases.items()):
        writer.writerow([provider, alias, model])
    return output.getvalue()


def with_scope(rows: Iterable[PriceRow], scope: str) -> list[PriceRow]:
    return [replace(row, scope=scope) for row in rows]
