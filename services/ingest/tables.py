"""Tables owned by the ingest service."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Column, Index, Integer, LargeBinary, String, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from shared.db import UtcDateTime
from shared.outbox import outbox_table


class IngestUsageEvent(SQLModel, table=True):
    """Every event ingest accepted (usage, cost reports, seats, GPU telemetry), with the raw row behind it."""

    __tablename__ = "ingest_usage_events"
    __table_args__ = (Index("ix_ingest_usage_events_tenant_occurred", "tenant", "occurred_at"),)

    event_id: str = Field(primary_key=True, max_length=64)
    event_type: str = Field(max_length=64)
    tenant: str = Field(max_length=512)
    source_format: str = Field(max_length=64)
    channel: str = Field(max_length=16)
    file_name: str | None = Field(default=None, max_length=1024)
    row_number: int | None = None
    raw: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    raw_sha256: str = Field(max_length=64)
    event_json: str = Field(sa_column=Column(Text, nullable=False))
    received_at: datetime = Field(sa_column=Column(UtcDateTime, nullable=False))
    occurred_at: datetime = Field(sa_column=Column(UtcDateTime, nullable=False))


class IngestRejectedRow(SQLModel, table=True):
    """A source row that could not become an event, kept with its reason for review and replay."""

    __tablename__ = "ingest_rejected_rows"
    __table_args__ = (UniqueConstraint("tenant", "input_sha256", "row_number", name="uq_ingest_rejected_row"),)

    id: int | None = Field(default=None, sa_column=Column(Integer, primary_key=True, autoincrement=True))
    tenant: str = Field(max_length=512)
    input_sha256: str = Field(max_length=64)
    source_format: str = Field(max_length=64)
    channel: str = Field(max_length=16)
    file_name: str | None = Field(default=None, max_length=1024)
    row_number: int
    field_path: str = Field(max_length=512)
    reason: str = Field(sa_column=Column(Text, nullable=False))
    raw: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    received_at: datetime = Field(sa_column=Column(UtcDateTime, nullable=False))


class IngestImport(SQLModel, table=True):
    """One import of a file or webhook payload, with its counts."""

    __tablename__ = "ingest_imports"

    import_id: str = Field(primary_key=True, max_length=64)
    tenant: str = Field(max_length=512)
    channel: str = Field(max_length=16)
    file_name: str | None = Field(default=None, max_length=1024)
    input_sha256: str = Field(max_length=64)
    source_format: str = Field(max_length=64)
    started_at: datetime = Field(sa_column=Column(UtcDateTime, nullable=False))
    finished_at: datetime | None = Field(default=None, sa_column=Column(UtcDateTime))
    rows_read: int = 0
    accepted: int = 0
    duplicates: int = 0
    rejected: int = 0
    empty: int = 0
    # Status: running, done, rejected (done with rejected rows), failed (stopped by an error) or
    # interrupted (its process was stopped, killed or lost, as services/ingest/import_owners.py finds).
    status: str = Field(default="running", sa_column=Column(String(16), nullable=False))
    # The process that runs the import, as import_owners.process_owner writes it: host|boot id|pid|start time.
    owner: str | None = Field(default=None, max_length=255)


OUTBOX = outbox_table("ingest")
TABLES = [IngestUsageEvent.__table__, IngestRejectedRow.__table__, IngestImport.__table__, OUTBOX]  # type: ignore[attr-defined]
