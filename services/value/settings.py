from __future__ import annotations

from pathlib import Path

from pydantic import AliasChoices, Field

from shared.settings import ServiceSettings


class ValueSettings(ServiceSettings):
    http_port: int = Field(
        default=8084,
        ge=0,
        le=65535,
        validation_alias=AliasChoices("VALUE_HTTP_PORT"),
        description="Port of the outcomes HTTP API; 0 picks a free one.",
    )
    reporting_currency: str = Field(
        default="USD",
        pattern=r"^[A-Z]{3}$",
        validation_alias=AliasChoices("VALUE_REPORTING_CURRENCY"),
        description="Currency of unit economics; costs in other currencies are left out.",
    )
    webhook_secrets_file: Path | None = Field(
        default=None,
        validation_alias=AliasChoices("VALUE_WEBHOOK_SECRETS_FILE"),
        description="YAML file of the sources that may sign outcome posts, in the ingest webhook's format.",
    )
    max_body_bytes: int = Field(default=5 * 1024 * 1024, gt=0, validation_alias=AliasChoices("VALUE_MAX_BODY_BYTES"))
    use_cases_file: Path | None = Field(
        default=None,
        validation_alias=AliasChoices("VALUE_USE_CASES_FILE"),
        description="YAML use case register: owner, outcome kind, value per outcome, baseline and investment.",
    )
