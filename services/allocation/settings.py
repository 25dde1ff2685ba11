from __future__ import annotations

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
    aliases_file: Path | None = Field(
        default=None,
        validation_alias=AliasChoices("ALLOCATION_ALIASES_FILE"),
        description="Model alias CSV; defaults to the table shipped in shared/data.",
    )
