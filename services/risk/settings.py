from __future__ import annotations

from pathlib import Path

from pydantic import AliasChoices, Field

from shared.settings import ServiceSettings


class RiskSettings(ServiceSettings):
    budgets_file: Path | None = Field(
        default=None,
        validation_alias=AliasChoices("RISK_BUDGETS_FILE"),
        description="YAML budgets; without it no budget findings are raised.",
    )
