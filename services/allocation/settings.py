from __future__ import annotations

from decimal import Decimal
from pathlib import Path

from pydantic import AliasChoices, Field

from shared.settings import ServiceSettings


class AllocationSettings(ServiceSettings):
    rules_file: Path | None = Field(
        default=None,
        validation_alias=AliasChoices("ALLOCATION_RULES_FILE"),
        description="YAML allocation rules; without it every cost is unallocated.",
    )
    prices_file: Path | None = Field(
        default=None,
        validation_alias=AliasChoices("ALLOCATION_PRICES_FILE"),
        description="Price catalogue CSV; defaults to the catalogue shipped in shared/data.",
    )
    price_updates_file: Path | None = Field(
        default=None,
        validation_alias=AliasChoices("ALLOCATION_PRICE_UPDATES_FILE"),
        description="CSV of price changes made over the ops API; defaults to price-updates.csv in AIFINOPS_DATA_DIR.",
    )
    aliases_file: Path | None = Field(
        default=None,
        validation_alias=AliasChoices("ALLOCATION_ALIASES_FILE"),
        description="Model alias CSV; defaults to the table shipped in shared/data.",
    )
    terms_file: Path | None = Field(
        default=None,
        validation_alias=AliasChoices("ALLOCATION_TERMS_FILE"),
        description="YAML tenant terms: contracts, custom prices, aliases, time zone and reporting currency.",
    )
    fx_rates_file: Path | None = Field(
        default=None,
        validation_alias=AliasChoices("ALLOCATION_FX_RATES_FILE"),
        description="CSV of dated exchange rates (date, base, quote, rate, source) for reporting currencies.",
    )
    reconciliation_tolerance_percent: Decimal = Field(
        default=Decimal("1"),
        ge=0,
        validation_alias=AliasChoices("ALLOCATION_RECONCILIATION_TOLERANCE_PERCENT"),
        description="A provider's reported cost may differ from the computed cost by this percentage unflagged.",
    )
    reconciliation_tolerance_amount: Decimal = Field(
        default=Decimal("0.01"),
        ge=0,
        validation_alias=AliasChoices("ALLOCATION_RECONCILIATION_TOLERANCE_AMOUNT"),
        description="Differences up to this amount, in the statement's currency, are never flagged.",
    )

    def price_updates_path(self) -> Path:
        return self.price_updates_file or self.data_dir / "price-updates.csv"
