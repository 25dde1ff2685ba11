from __future__ import annotations

from pathlib import Path

from pydantic import AliasChoices, Field

from shared.settings import ServiceSettings


class IngestSettings(ServiceSettings):
    http_port: int = Field(
        default=8080,
        ge=0,
        le=65535,
        validation_alias=AliasChoices("INGEST_HTTP_PORT"),
        description="Port of the webhook HTTP server; 0 picks a free one.",
    )
    max_body_bytes: int = Field(
        default=10 * 1024 * 1024,
        gt=0,
        validation_alias=AliasChoices("INGEST_MAX_BODY_BYTES"),
        description="Largest webhook body accepted, in bytes; larger bodies get 413.",
    )
    webhook_secrets_file: Path | None = Field(
        default=None,
        validation_alias=AliasChoices("INGEST_WEBHOOK_SECRETS_FILE"),
        description="YAML file naming each webhook source, its signing secret and its tenants "
        "(see services/ingest/signing.py); without it every webhook post is rejected with 401.",
    )
