from __future__ import annotations

from pathlib import Path

from pydantic import AliasChoices, Field

from shared.settings import ServiceSettings


class OptimizerSettings(ServiceSettings):
    config_file: Path | None = Field(
        default=None,
        validation_alias=AliasChoices("OPTIMIZER_CONFIG_FILE"),
        description="YAML optimizer policy: batch, cheaper-model, caching, commitment, GPU and seat settings.",
    )
