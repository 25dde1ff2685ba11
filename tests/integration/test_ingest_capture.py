"""Capture end to end: file imports over the real database and broker, retries, restatements and bad rows."""

from __future__ import annotations

import asyncio
import base64
import csv
import json
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaConsumer
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from aifinops.stack import Stack
from services.ingest.batch import import_file
from services.ingest.bulk import CopyingOutbox
from services.ingest.importer import Recorder
from services.ingest.normalisers import ImportContext, normaliser_for
from services.ingest.settings import IngestSettings
from services.ingest.signing import signed_headers
from services.ingest.tables import OUTBOX, TABLES, IngestRejectedRow, IngestUsageEvent
from services.ingest.webhook import build_webhook_app
from shared.db import Database
from shared.kafka import EventPublisher
from shared.outbox import Outbox
from shared.topics import Topic
from tests.conftest import EXAMPLES, ROOT

pytestmark = pytest.mark.integration

EVENTS = IngestUsageEvent.__table__  # type: ignore[attr-defined]
REJECTED = IngestRejectedRow.__table__  # type: ignore[attr-defined]
DASHBOARD = EXAMPLES / "data" / "dashboard_export_usage_completions.tsv"
ANTHROPIC = (EXAMPLES / "data" / "anthropic_usage_webhook_2026-11.json").read_bytes()


@pytest.fixture
async def database(database_url: str | None, tmp_path: Path) -> AsyncIterator[Database]:
    """The ingest tables on the test PostgreSQL database, or on a fresh SQLite file."""
    database = Database(database_url or f"sqlite+aiosqlite:///{tmp_path / 'ingest.db'}")
    await database.create_tables(TABLES)
    try:
        yield database
    finally:
        await database.dispose()


def unique_tenant(name: str) -> str:
    return f"{name}-{uuid.uuid4().hex[:8]}"


def file_context(tenant: str, file_name: str) -> ImportContext:
    return ImportContext(
        tenant=tenant, correlation_id="test", received_at=datetime.now(UTC), file_name=file_name, channel="file"
    )


async def count(database: Database, table: Any, tenant: str) -> int:
    async with database.engine.connect() as connection:
        return int(await connection.scalar(select(func.count()).select_from(table).where(table.c.tenant == tenant)))


class FailingOutbox(Outbox):
    """An outbox whose first write fails after the event rows were inserted in the same transaction."""

    def __init__(self, database: Database) -> None:
        super().__init__("ingest", database, EventPublisher("127.0.0.1:1", client_id="unused"))
        self.failures_left = 1

    async def add(self, connection: AsyncConnection, events: Any) -> set[str]:
        if self.failures_left:
            self.failures_left -= 1
            raise RuntimeError("simulated crash between the claim and the outbox write")
        return await super().add(connection, events)


async def test_failed_write_then_retry_records_once(database: Database) -> None:
    tenant = unique_tenant("retry")
    normaliser = normaliser_for("openai-dashboard-usage")
    outbox = FailingOutbox(database)
    recorder = Recorder(database, outbox, None, send=False)
    with pytest.raises(RuntimeError, match="simulated crash"):
        with DASHBOARD.open("rb") as stream:
            await recorder.record(stream, normaliser=normaliser, context=file_context(tenant, "a"), input_sha256="a")
    assert await count(database, EVENTS, tenant) == 0  # the claim rolled back with the failed outbox write

    for attempt in range(2):
        with DASHBOARD.open("rb") as stream:
            summary = await recorder.record(
                stream, normaliser=normaliser, context=file_context(tenant, "a"), input_sha256="a"
            )
        # 7 rows: 6 with usage and the empty 2025-10-08 bucket.
        assert summary.rows_read == 7
        assert summary.empty == 1
        assert summary.accepted == (6 if attempt == 0 else 0)
        assert summary.duplicates == (0 if attempt == 0 else 6)
    assert await count(database, EVENTS, tenant) == 6
    async with database.engine.connect() as connection:
        outbox_rows = await connection.scalar(
            select(func.count())
            .select_from(OUTBOX)
            .where(OUTBOX.c.event_id.in_(select(EVENTS.c.event_id).where(EVENTS.c.tenant == tenant)))
        )
    assert outbox_rows == 6


async def test_restated_row_is_a_conflict(database: Database, tmp_path: Path) -> None:
    tenant = unique_tenant("restated")
    recorder = Recorder(
        database, Outbox("ingest", database, EventPublisher("127.0.0.1:1", client_id="x")), None, send=False
    )
    normaliser = normaliser_for("openai-dashboard-usage")
    with DASHBOARD.open("rb") as stream:
        await recorder.record(stream, normaliser=normaliser, context=file_context(tenant, "v1"), input_sha256="v1")
    restated = tmp_path / "restated.tsv"
    restated.write_text(DASHBOARD.read_text().replace("10646.0", "10700.0", 1))  # first row's output tokens
    with restated.open("rb") as stream:
        summary = await recorder.record(
            stream, normaliser=normaliser, context=file_context(tenant, "v2"), input_sha256="v2"
        )
    assert summary.accepted == 0
    assert summary.duplicates == 5
    assert summary.conflicts == 1
    assert summary.rejected == 1
    assert summary.rejections[0].row_number == 1
    assert "was recorded before from v1 row 1" in summary.rejections[0].reason
    assert await count(database, EVENTS, tenant) == 6
    async with database.engine.connect() as connection:
        rejected_row = (await connection.execute(select(REJECTED).where(REJECTED.c.tenant == tenant))).one()
    assert rejected_row.field_path == "(event identity)"
    assert json.loads(rejected_row.raw)["output_tokens"] == "10700.0"  # the restated row itself is kept for review


async def test_bad_rows_are_dead_lettered(stack: Stack, tmp_path: Path) -> None:
    tenant = unique_tenant("bad-rows")
    with (EXAMPLES / "data" / "focus_1.0_sample_trimmed.csv").open(newline="") as source:
        reader = csv.DictReader(source)
        rows = [row for _, row in zip(range(5), reader, strict=False)]
        columns = list(reader.fieldnames or [])
    rows[2]["ChargePeriodStart"] = "yesterday"  # data row 3
    broken = tmp_path / "focus_broken.csv"
    with broken.open("w", newline="") as target:
        writer = csv.DictWriter(target, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    result = await import_file(broken, settings=stack.settings(), tenant=tenant)
    summary = result.summary
    assert (summary.rows_read, summary.accepted, summary.rejected) == (5, 4, 1)
    assert summary.rejections[0].row_number == 3
    assert summary.rejections[0].field_path == "ChargePeriodStart"

    database = Database(stack.settings().database_url_for("ingest"))
    try:
        async with database.engine.connect() as connection:
            rejected_row = (await connection.execute(select(REJECTED).where(REJECTED.c.tenant == tenant))).one()
    finally:
        await database.dispose()
    assert rejected_row.file_name == "focus_broken.csv"
    assert rejected_row.row_number == 3
    assert rejected_row.field_path == "ChargePeriodStart"

    letters = await dead_letters_for(stack, tenant)
    assert len(letters) == 1
    assert letters[0]["field_path"] == "ChargePeriodStart"
    assert letters[0]["reason"].startswith("focus_broken.csv row 3: ChargePeriodStart: must be a timestamp")
    assert b"yesterday" in base64.b64decode(letters[0]["original_bytes_b64"])


async def dead_letters_for(stack: Stack, tenant: str) -> list[dict[str, Any]]:
    consumer = AIOKafkaConsumer(
        str(Topic.DEAD_LETTER), bootstrap_servers=stack.bootstrap_servers, auto_offset_reset="earliest"
    )
    await consumer.start()
    try:
        found: list[dict[str, Any]] = []
        batches = await consumer.getmany(timeout_ms=3000)
        for records in batches.values():
            for record in records:
                letter = json.loads(record.value)
                if letter["tenant"] == tenant:
                    found.append(letter)
        return found
    finally:
        await consumer.stop()


def run_cli(stack: Stack, *args: str) -> subprocess.CompletedProcess[str]:
    settings = stack.settings()
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": stack.bootstrap_servers,
        "AIFINOPS_DATA_DIR": str(settings.data_dir),
    }
    if stack.config.database_url:
        env["DATABASE_URL"] = stack.config.database_url
    else:
        env.pop("DATABASE_URL", None)
    command = [sys.executable, "-m", "aifinops.cli", *args]
    return subprocess.run(command, env=env, cwd=ROOT, capture_output=True, text=True, timeout=120)


async def test_cli_import_detects_and_reports(stack: Stack) -> None:
    tenant = unique_tenant("cli")
    path = EXAMPLES / "data" / "aws_cur2_bedrock_gpu_constructed.csv"
    first = await asyncio.to_thread(run_cli, stack, "import", str(path), "--tenant", tenant)
    assert first.returncode == 0, first.stderr
    assert "format aws-cur (detected)" in first.stdout
    # 13 rows: 12 events and the savings-plan negation read as empty
    assert "read 13, accepted 12, duplicate 0, rejected 0 (conflicting 0), empty 1" in first.stdout
    again = await asyncio.to_thread(run_cli, stack, "import", str(path), "--tenant", tenant, "--json")
    assert again.returncode == 0, again.stderr
    summary = json.loads(again.stdout)
    assert (summary["accepted"], summary["duplicate"], summary["detected"]) == (0, 12, True)


async def test_cli_import_exits_1_on_rejected_rows(stack: Stack) -> None:
    tenant = unique_tenant("cli-rejected")
    path = ROOT / "tests" / "fixtures" / "ingest" / "azure_cost_export" / "spruce_fixture_native_openai.csv"
    result = await asyncio.to_thread(run_cli, stack, "import", str(path), "--tenant", tenant)
    assert result.returncode == 1
    assert "rejected 6" in result.stdout
    assert "--currency" in result.stdout
    fixed = await asyncio.to_thread(run_cli, stack, "import", str(path), "--tenant", tenant, "--currency", "USD")
    assert fixed.returncode == 0, fixed.stdout
    assert "accepted 6" in fixed.stdout


async def test_cli_import_refuses_unknown_input(stack: Stack, tmp_path: Path) -> None:
    mystery = tmp_path / "mystery.csv"
    mystery.write_text("a,b\n1,2\n")
    result = await asyncio.to_thread(run_cli, stack, "import", str(mystery))
    assert result.returncode == 2
    assert "pass --format" in result.stderr


class TestWebhookApp:
    """The webhook application in process, for cases the shared stack's configuration cannot show."""

    def app(self, database: Database, tmp_path: Path, publisher: EventPublisher) -> Any:
        secrets = tmp_path / "sources.yaml"
        secrets.write_text(f"sources:\n  acme-meter:\n    secret: {'a' * 32}\n    tenants: [acme]\n")
        settings = IngestSettings(INGEST_WEBHOOK_SECRETS_FILE=str(secrets), AIFINOPS_TENANT="acme")
        recorder = Recorder(database, Outbox("ingest", database, publisher), None, send=True, send_timeout_s=1.0)
        return build_webhook_app(recorder, settings)

    async def post(self, app: Any, tenant: str) -> httpx.Response:
        headers = signed_headers("acme-meter", b"a" * 32, ANTHROPIC) | {"x-aifinops-tenant": tenant}
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://ingest") as client:
            return await client.post("/v1/usage/anthropic-usage-report", content=ANTHROPIC, headers=headers)

    async def test_source_limited_to_its_tenants(self, database: Database, tmp_path: Path) -> None:
        app = self.app(database, tmp_path, EventPublisher("127.0.0.1:1", client_id="unused"))
        response = await self.post(app, "globex")
        assert response.status_code == 403
        assert "may not write to tenant 'globex'" in response.json()["error"]

    async def test_accepted_while_broker_is_down(self, database: Database, tmp_path: Path) -> None:
        # The publisher never started, as if the broker were unreachable: the events wait in the outbox.
        app = self.app(database, tmp_path, EventPublisher("127.0.0.1:1", client_id="unused"))
        response = await self.post(app, "acme")
        assert response.status_code == 202
        event_ids = response.json()["event_ids"]
        assert len(event_ids) == 2
        async with database.engine.connect() as connection:
            pending = await connection.scalar(
                select(func.count())
                .select_from(OUTBOX)
                .where(OUTBOX.c.event_id.in_(event_ids), OUTBOX.c.published.is_(False))
            )
        assert pending == 2

    async def test_without_secrets_every_post_is_rejected(self, database: Database) -> None:
        recorder = Recorder(database, Outbox("ingest", database, EventPublisher("127.0.0.1:1", client_id="x")), None)
        app = build_webhook_app(recorder, IngestSettings())
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://ingest") as client:
            response = await client.post("/v1/usage/anthropic-usage-report", content=ANTHROPIC)
        assert response.status_code == 401
        assert "INGEST_WEBHOOK_SECRETS_FILE" in response.json()["error"]


async def test_bulk_import_then_reimport(database: Database) -> None:
    # 200 FOCUS rows take the COPY path on PostgreSQL (at least 50 rows a batch) and the INSERT path on SQLite.
    tenant = unique_tenant("bulk")
    focus = EXAMPLES / "data" / "focus_1.0_sample_trimmed.csv"
    outbox = CopyingOutbox("ingest", database, EventPublisher("127.0.0.1:1", client_id="unused"))
    recorder = Recorder(database, outbox, None, send=False)
    normaliser = normaliser_for("focus-csv")
    summaries = []
    for attempt in ("first", "again"):
        with focus.open("rb") as stream:
            summaries.append(
                await recorder.record(
                    stream, normaliser=normaliser, context=file_context(tenant, attempt), input_sha256=attempt
                )
            )
    first, again = summaries
    assert first.rows_read == 200
    assert first.accepted + first.empty + first.rejected == 200
    assert first.accepted > 50
    assert again.accepted == 0
    assert again.duplicates == first.accepted  # every event recorded the first time is a duplicate now
    assert await count(database, EVENTS, tenant) == first.accepted
    async with database.engine.connect() as connection:
        outbox_rows = await connection.scalar(
            select(func.count())
            .select_from(OUTBOX)
            .where(OUTBOX.c.event_id.in_(select(EVENTS.c.event_id).where(EVENTS.c.tenant == tenant)))
        )
        stored = (
            await connection.execute(select(EVENTS.c.raw, EVENTS.c.received_at).where(EVENTS.c.tenant == tenant))
        ).all()
    assert outbox_rows == first.accepted
    assert all(row.raw.startswith(b"{") for row in stored)  # the raw row is kept as evidence
    assert all(row.received_at.tzinfo is not None for row in stored)
