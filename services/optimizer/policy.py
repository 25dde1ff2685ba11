"""The optimizer's policy file and its data tables: cheaper same-family models, seat prices and GPU prices.

Example policy (every section is optional; the values shown are the defaults unless marked)::

    non_interactive_use_cases: [document-extraction]   # owners declared these need no real-time response (no default)
    batch_tier:
      tags: {workload: batch}                          # usage carrying these tags is non-interactive (no default)
      business_hours: {start_hour: 8, end_hour: 18, weekdays: [1, 2, 3, 4, 5], timezone: UTC}
    cheaper_model:
      max_input_tokens_per_request: 16000
      max_output_tokens_per_request: 12000
    prompt_caching:
      min_input_tokens_per_request: 1024   # shortest prompt that providers cache
      cacheable_share: "0.5"               # assumed share of input that is a repeated prefix
      reads_per_write: 10                  # assumed cache reads per cache write
    commitments:
      lookback_days: 30
      baseline_percentile: 10
      min_active_days: 20
      offers:                              # no default: commitment terms are negotiated per customer
        - {id: anthropic-annual, provider: anthropic, discount_percent: "10", term_months: 12, source: "..."}
    gpu:
      idle_below_percent: "5"
      underused_below_percent: "40"
      target_percent: "70"
      window_days: 7
      min_window_hours: 24
      resources: {ip-10-0-0-12: i-0abc}   # GPU host to billed resource id, when telemetry does not carry it
    seats:
      unused_after_days: 30
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from importlib import resources
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml


class PolicyError(ValueError):
    """The optimizer policy file is invalid; the message names the field."""


@dataclass(frozen=True, slots=True)
class BusinessHours:
    start_hour: int = 8
    end_hour: int = 18
    weekdays: frozenset[int] = frozenset({1, 2, 3, 4, 5})  # ISO weekdays, Monday is 1
    timezone: str = "UTC"


@dataclass(frozen=True, slots=True)
class CommitmentOffer:
    offer_id: str
    provider: str
    discount_percent: Decimal
    term_months: int
    source: str
    model: str | None = None  # None: the offer covers all of the provider's models
    min_monthly_commitment: Decimal | None = None


@dataclass(frozen=True)
class OptimizerPolicy:
    non_interactive_use_cases: frozenset[str] = field(default_factory=frozenset)
    batch_tags: dict[str, str] = field(default_factory=dict)
    business_hours: BusinessHours = field(default_factory=BusinessHours)
    max_input_tokens_per_request: int = 16000
    max_output_tokens_per_request: int = 12000
    caching_min_input_tokens_per_request: int = 1024
    caching_cacheable_share: Decimal = Decimal("0.5")
    caching_reads_per_write: int = 10
    commitment_lookback_days: int = 30
    commitment_baseline_percentile: int = 10
    commitment_min_active_days: int = 20
    commitment_offers: tuple[CommitmentOffer, ...] = ()
    gpu_idle_below_percent: Decimal = Decimal(5)
    gpu_underused_below_percent: Decimal = Decimal(40)
    gpu_target_percent: Decimal = Decimal(70)
    gpu_window_days: int = 7
    gpu_min_window_hours: int = 24
    gpu_resources: dict[str, str] = field(default_factory=dict)
    seats_unused_after_days: int = 30

    @classmethod
    def load(cls, path: Path | None) -> OptimizerPolicy:
        if path is None:
            return cls()
        try:
            document = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as error:
            raise PolicyError(f"{path}: not valid YAML: {error}") from None
        if not isinstance(document, dict):
            raise PolicyError(f"{path}: must be a mapping")
        reader = _Reader(str(path))

        use_cases = document.get("non_interactive_use_cases", [])
        if not isinstance(use_cases, list) or not all(isinstance(item, str) and item for item in use_cases):
            raise PolicyError(f"{path}: non_interactive_use_cases: must be a list of use case names")
        batch = reader.section(document, "batch_tier")
        limits = reader.section(document, "cheaper_model")
        caching = reader.section(document, "prompt_caching")
        commitments = reader.section(document, "commitments")
        gpu = reader.section(document, "gpu")
        seats = reader.section(document, "seats")

        defaults = cls()
        policy = cls(
            non_interactive_use_cases=frozenset(use_cases),
            batch_tags=reader.string_map(batch, "batch_tier.tags"),
            business_hours=reader.business_hours(batch.get("business_hours")),
            max_input_tokens_per_request=reader.whole(
                limits, "cheaper_model.max_input_tokens_per_request", defaults.max_input_tokens_per_request
            ),
            max_output_tokens_per_request=reader.whole(
                limits, "cheaper_model.max_output_tokens_per_request", defaults.max_output_tokens_per_request
            ),
            caching_min_input_tokens_per_request=reader.whole(
                caching, "prompt_caching.min_input_tokens_per_request", defaults.caching_min_input_tokens_per_request
            ),
            caching_cacheable_share=reader.fraction(
                caching, "prompt_caching.cacheable_share", defaults.caching_cacheable_share
            ),
            caching_reads_per_write=reader.whole(
                caching, "prompt_caching.reads_per_write", defaults.caching_reads_per_write
            ),
            commitment_lookback_days=reader.whole(
                commitments, "commitments.lookback_days", defaults.commitment_lookback_days
            ),
            commitment_baseline_percentile=reader.whole(
                commitments, "commitments.baseline_percentile", defaults.commitment_baseline_percentile
            ),
            commitment_min_active_days=reader.whole(
                commitments, "commitments.min_active_days", defaults.commitment_min_active_days
            ),
            commitment_offers=reader.offers(commitments.get("offers", [])),
            gpu_idle_below_percent=reader.percent(gpu, "gpu.idle_below_percent", defaults.gpu_idle_below_percent),
            gpu_underused_below_percent=reader.percent(
                gpu, "gpu.underused_below_percent", defaults.gpu_underused_below_percent
            ),
            gpu_target_percent=reader.percent(gpu, "gpu.target_percent", defaults.gpu_target_percent),
            gpu_window_days=reader.whole(gpu, "gpu.window_days", defaults.gpu_window_days),
            gpu_min_window_hours=reader.whole(gpu, "gpu.min_window_hours", defaults.gpu_min_window_hours),
            gpu_resources=reader.string_map(gpu, "gpu.resources"),
            seats_unused_after_days=reader.whole(seats, "seats.unused_after_days", defaults.seats_unused_after_days),
        )

        if policy.commitment_baseline_percentile > 100:
            raise PolicyError(f"{path}: commitments.baseline_percentile: must be at most 100")
        if policy.commitment_min_active_days > policy.commitment_lookback_days:
            raise PolicyError(f"{path}: commitments.min_active_days: must not exceed lookback_days")
        if not policy.gpu_idle_below_percent <= policy.gpu_underused_below_percent <= policy.gpu_target_percent:
            raise PolicyError(
                f"{path}: gpu: idle_below_percent, underused_below_percent and target_percent must be in rising order"
            )
        return policy


class _Reader:
    """Field readers whose errors name the file and the field."""

    def __init__(self, where: str) -> None:
        self.where = where

    def fail(self, name: str, message: str) -> PolicyError:
        return PolicyError(f"{self.where}: {name}: {message}")

    def section(self, document: dict[str, Any], name: str) -> dict[str, Any]:
        value = document.get(name, {}) or {}
        if not isinstance(value, dict):
            raise self.fail(name, "must be a mapping")
        return value

    def whole(self, section: dict[str, Any], name: str, default: int) -> int:
        value = section.get(name.rsplit(".", 1)[-1], default)
        if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
            raise self.fail(name, f"must be a positive whole number, got {value!r}")
        return value

    def decimal(self, value: Any, name: str) -> Decimal:
        if isinstance(value, float):
            raise self.fail(name, f'write the number as a quoted string, such as "{value}", to keep it exact')
        if isinstance(value, bool) or not isinstance(value, str | int):
            raise self.fail(name, f"must be a quoted number, got {value!r}")
        try:
            number = Decimal(str(value))
        except InvalidOperation:
            raise self.fail(name, f"must be a number, got {value!r}") from None
        if not number.is_finite():
            raise self.fail(name, f"must be a finite number, got {value!r}")
        return number

    def fraction(self, section: dict[str, Any], name: str, default: Decimal) -> Decimal:
        value = section.get(name.rsplit(".", 1)[-1])
        number = default if value is None else self.decimal(value, name)
        if not 0 < number <= 1:
            raise self.fail(name, f"must be more than 0 and at most 1, got {number}")
        return number

    def percent(self, section: dict[str, Any], name: str, default: Decimal) -> Decimal:
        value = section.get(name.rsplit(".", 1)[-1])
        number = default if value is None else self.decimal(value, name)
        if not 0 <= number <= 100:
            raise self.fail(name, f"must be between 0 and 100, got {number}")
        return number

    def string_map(self, section: dict[str, Any], name: str) -> dict[str, str]:
        value = section.get(name.rsplit(".", 1)[-1], {}) or {}
        if not isinstance(value, dict) or not all(
            isinstance(key, str) and isinstance(item, str) and key and item for key, item in value.items()
        ):
            raise self.fail(name, "must be a mapping of non-empty strings")
        return dict(value)

    def business_hours(self, value: Any) -> BusinessHours:
        name = "batch_tier.business_hours"
        if value is None:
            return BusinessHours()
        if not isinstance(value, dict):
            raise self.fail(name, "must be a mapping")
        start, end = value.get("start_hour", 8), value.get("end_hour", 18)
        if not all(isinstance(hour, int) and not isinstance(hour, bool) and 0 <= hour <= 24 for hour in (start, end)):
            raise self.fail(name, "start_hour and end_hour must be whole hours from 0 to 24")
        if start >= end:
            raise self.fail(name, f"start_hour {start} must be before end_hour {end}")
        weekdays = value.get("weekdays", [1, 2, 3, 4, 5])
        if not isinstance(weekdays, list) or not all(isinstance(day, int) and 1 <= day <= 7 for day in weekdays):
            raise self.fail(name, "weekdays must be a list of ISO weekdays, 1 (Monday) to 7 (Sunday)")
        timezone = value.get("timezone", "UTC")
        try:
            ZoneInfo(str(timezone))
        except (ZoneInfoNotFoundError, ValueError):
            raise self.fail(name, f"timezone: unknown IANA time zone {timezone!r}") from None
        return BusinessHours(start, end, frozenset(weekdays), str(timezone))

    def offers(self, value: Any) -> tuple[CommitmentOffer, ...]:
        if not isinstance(value, list):
            raise self.fail("commitments.offers", "must be a list")
        offers = []
        for index, entry in enumerate(value):
            name = f"commitments.offers[{index}]"
            if not isinstance(entry, dict):
                raise self.fail(name, "must be a mapping")
            for key in ("id", "provider", "source"):
                if not isinstance(entry.get(key), str) or not entry[key]:
                    raise self.fail(f"{name}.{key}", "must be a non-empty string")
            discount = self.decimal(entry.get("discount_percent"), f"{name}.discount_percent")
            if not 0 < discount < 100:
                raise self.fail(f"{name}.discount_percent", f"must be between 0 and 100, got {discount}")
            term = entry.get("term_months")
            if not isinstance(term, int) or isinstance(term, bool) or term <= 0:
                raise self.fail(f"{name}.term_months", f"must be a positive whole number, got {term!r}")
            minimum = entry.get("min_monthly_commitment")
            model = entry.get("model")
            if model is not None and (not isinstance(model, str) or not model):
                raise self.fail(f"{name}.model", "must be a non-empty string when given")
            offers.append(
                CommitmentOffer(
                    offer_id=entry["id"],
                    provider=entry["provider"],
                    discount_percent=discount,
                    term_months=term,
                    source=entry["source"],
                    model=model,
                    min_monthly_commitment=(
                        self.decimal(minimum, f"{name}.min_monthly_commitment") if minimum is not None else None
                    ),
                )
            )
        ids = [offer.offer_id for offer in offers]
        if len(ids) != len(set(ids)):
            raise self.fail("commitments.offers", "offer ids must be unique")
        return tuple(offers)


@dataclass(frozen=True, slots=True)
class Alternative:
    cheaper_model: str
    caveat: str


def _data_rows(name: str) -> list[dict[str, str]]:
    text = resources.files("shared.data").joinpath(name).read_text()
    lines = [line for line in io.StringIO(text) if not line.startswith("#")]
    return list(csv.DictReader(lines))


def load_alternatives() -> dict[tuple[str, str], Alternative]:
    return {
        (row["provider"], row["model"]): Alternative(row["cheaper_model"], row["caveat"])
        for row in _data_rows("model_alternatives.csv")
    }


@dataclass(frozen=True, slots=True)
class SeatPrice:
    vendor: str
    product: str
    plan: str  # empty: the product's price whatever the plan
    category: str  # products of one category overlap, such as two coding assistants
    monthly_price: Decimal
    currency: str
    source: str

    @property
    def row_id(self) -> str:
        return f"seat-price:{self.vendor}/{self.product}/{self.plan or '*'}"


class SeatPrices:
    """List prices of AI tool seats per month (``shared/data/seat_prices.csv``)."""

    def __init__(self, rows: list[SeatPrice]) -> None:
        self._rows = {(row.vendor, row.product, row.plan): row for row in rows}

    @classmethod
    def load(cls) -> SeatPrices:
        return cls(
            [
                SeatPrice(
                    row["vendor"],
                    row["product"],
                    row["plan"],
                    row["category"],
                    Decimal(row["monthly_price"]),
                    row["currency"],
                    row["source"],
                )
                for row in _data_rows("seat_prices.csv")
            ]
        )

    def find(self, vendor: str, product: str, plan: str | None) -> SeatPrice | None:
        """Return the price of the plan, else the product's price for any plan, else None."""
        return self._rows.get((vendor, product, plan or "")) or self._rows.get((vendor, product, ""))

    def category(self, vendor: str, product: str) -> str | None:
        for (row_vendor, row_product, _plan), row in self._rows.items():
            if (row_vendor, row_product) == (vendor, product):
                return row.category
        return None


@dataclass(frozen=True, slots=True)
class GpuPrice:
    gpu_model: str
    hourly_price: Decimal
    currency: str
    source: str

    @property
    def row_id(self) -> str:
        return f"gpu-price:{self.gpu_model}"


def load_gpu_prices() -> dict[str, GpuPrice]:
    """Hourly GPU prices by GPU model name (``shared/data/gpu_hourly_prices.csv``), used when no bill names the GPU."""
    return {
        row["gpu_model"]: GpuPrice(row["gpu_model"], Decimal(row["hourly_price"]), row["currency"], row["source"])
        for row in _data_rows("gpu_hourly_prices.csv")
    }
