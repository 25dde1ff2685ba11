"""Settings common to every service, read from the environment.

Each service subclasses ``ServiceSettings`` with its own prefix (``INGEST_``,
``ALLOCATION_`` ...). ``KAFKA_BOOTSTRAP_SERVERS`` and ``DATABASE_URL`` keep their
conventional unprefixed names so that tests, compose files and the demo can set
them once for every process.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class ServiceSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="AIFINOPS_", extra="ignore")

    kafka_bootstrap_servers: str = Field(
        default="127.0.0.1:9092",
        validation_alias=AliasChoices("KAFKA_BOOTSTRAP_SERVERS", "AIFINOPS_KAFKA_BOOTSTRAP_SERVERS"),
        description="Comma-separated host:port list of Kafka brokers.",
    )
    database_url: str | None = Field(
        default=None,
        validation_alias=AliasChoices("DATABASE_URL", "AIFINOPS_DATABASE_URL"),
        description="PostgreSQL URL; when unset each service uses an SQLite file under data_dir.",
    )
    data_dir: Path = Field(
        default=Path(".aifinops/data"),
        validation_alias=AliasChoices("AIFINOPS_DATA_DIR"),
        description="Folder for the embedded SQLite files.",
    )
    tenant: str = Field(
        default="default",
        validation_alias=AliasChoices("AIFINOPS_TENANT"),
        description="Tenant that events are recorded for when a request names none.",
    )
    log_format: Literal["logfmt", "json"] = Field(
        default="logfmt", validation_alias=AliasChoices("AIFINOPS_LOG_FORMAT")
    )
    log_level: str = Field(default="INFO", validation_alias=AliasChoices("AIFINOPS_LOG_LEVEL"))
    grpc_port: int = Field(default=0, ge=0, le=65535, description="Port of the ops gRPC server; 0 picks a free one.")
    grpc_host: str = Field(default="127.0.0.1", description="Address the ops gRPC server binds to.")
    http_host: str = Field(
        default="127.0.0.1",
        description="Address the HTTP API (ingest's webhook, value's outcomes) binds to; 0.0.0.0 in a container.",
    )
    grpc_tokens_file: Path | None = Field(
        default=None, description="YAML list of client token hashes and scopes; without it ops calls are refused."
    )
    grpc_tls_cert_file: Path | None = Field(default=None, description="PEM certificate; with the key, TLS is on.")
    grpc_tls_key_file: Path | None = Field(default=None, description="PEM private key of the certificate.")
    ready_file: Path | None = Field(
        default=None,
        validation_alias=AliasChoices("AIFINOPS_READY_FILE"),
        description="File written with the service's ports once it is serving; used by the demo and tests.",
    )

    @field_validator("database_url")
    @classmethod
    def _use_async_driver(cls, value: str | None) -> str | None:
        if not value:
            return None
        for prefix in ("postgresql://", "postgres://"):
            if value.startswith(prefix):
                return "postgresql+asyncpg://" + value[len(prefix) :]
        return value

    def database_url_for(self, service: str) -> str:
        """Return the database URL of one service: the shared PostgreSQL database, or its own SQLite file."""
        if self.database_url:
            return self.database_url
        self.data_dir.mkdir(parents=True, exist_ok=True)
        return f"sqlite+aiosqlite:///{(self.data_dir / f'{service}.db').resolve()}"
