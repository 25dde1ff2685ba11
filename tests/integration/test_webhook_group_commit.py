"""Webhook group commit: payloads written in one transaction keep their own all-or-nothing results."""

from __future__ import annotations

import asyncio
import io
import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from services.ingest.bulk import CopyingOutbox
from services.ingest.group_commit import GroupCommitter
from services.ingest.importer import ConflictingEvents, ImportSummary, Recorder
from services.ingest.normalisers import NORMALISERS, ImportContext
from services.ingest.settings import IngestSettings
from services.ingest.signing import signed_headers
from services.ingest.tables import OUTBOX, TABLES, IngestImport, IngestUsageEvent
from services.ingest.webhook import build_webhook_app
from shared.db import Database
from shared.kafka import EventPublisher

pytestmark = pytest.mark.integration

EVENTS = IngestUsageEvent.__table__  # type: ignore[attr-defined]
IMPORTS = IngestImport.__table__  # type: ignore[attr-defined]
CLOUDEVENTS = NORMALISERS["cloudevents"]
SECRET = b"s" * 32


@pytest.fixture
async def database(database_url: str | None, tmp_path: Path) -> AsyncIterator[Database]:
    """The ingest tables on the test PostgreSQL database, or on a fresh SQLite file."""
    database = Database(database_url or f"sqlite+aiosqlite:///{tmp_path / 'ingest.db'}")
    await database.create_tables(TABLES)
    try:
        yield database
    finally:
        await database.dispose()


def recorder_for(database: Database) -> Recorder:
    publisher = EventPublisher("127.0.0.1:1", client_id="unused")
    return Recorder(database, CopyingOutbox("ingest", database, publisher), None, send=False)


def cloudevent(event_id: str, input_tokens: int = 1000) -> dict[str, Any]:
    return {
        "specversion": "1.0",
        "type": "com.example.llm.completion",
        "id": event_id,
        "source": "//tests/group-commit",
        "time": "2026-11-06T12:00:00Z",
        "data": {
            "provider": "openai",
            "model": "gpt-4o-mini",
            "quantities": {"input_uncached_tokens": input_tokens, "output_tokens": 300},
            "request_count": 1,
        },
    }


def payload(*events: dict[str, Any]) -> bytes:
    return json.dumps(list(events)).encode()


async def stored_events(database: Database, tenant: str) -> dict[str, dict[str, Any]]:
    """Return each stored event's raw CloudEvent by CloudEvent id, with the stored event id as ``event_id``."""
    async with database.engine.connect() as connection:
        result = await connection.execute(select(EVENTS.c.event_id, EVENTS.c.raw).where(EVENTS.c.tenant == tenant))
        stored = {}
        for row in result:
            raw = json.loads(row.raw)
            stored[raw["id"]] = raw | {"event_id": row.event_id}
        return stored


async def stored_count(database: Database, table: Any, tenant: str) -> int:
    async with database.engine.connect() as connection:
        return len((await connection.execute(select(table.c.tenant).where(table.c.tenant == tenant))).all())


class GroupSpy:
    """A GroupCommitter writing one group at a time that lists the size of each group it writes."""

    def __init__(self, recorder: Recorder) -> None:
        self.committer = GroupCommitter(recorder, max_groups_in_flight=1)
        self.sizes: list[int] = []
        store = self.committer._store

        async def counted_store(connection: Any, group: list[Any]) -> list[Any]:
            self.sizes.append(len(group))
            return await store(connection, group)

        self.committer._store = counted_store  # type: ignore[method-assign]

    async def record(self, tenant: str, body: bytes) -> ImportSummary:
        context = ImportContext(
            tenant=tenant, correlation_id="test", received_at=datetime.now(UTC), file_name=None, channel="webhook"
        )
        rows = list(CLOUDEVENTS.rows(io.BytesIO(body), context))
        return await self.committer.record(
            body, rows, normaliser=CLOUDEVENTS, context=context, input_sha256=uuid.uuid4().hex
        )

    async def record_together(self, tenant: str, bodies: list[bytes]) -> list[ImportSummary | BaseException]:
        """Record a first payload alone, then ``bodies`` in one group while the first is written."""
        while self.committer._tasks:  # a writer still returning its connection would take the first payload too
            await asyncio.gather(*self.committer._tasks)
        first = asyncio.ensure_future(self.record(tenant, payload(cloudevent(f"{tenant}-first"))))
        await asyncio.sleep(0)  # the first payload's group starts, so the others wait and form one group
        results = await asyncio.gather(*(self.record(tenant, body) for body in bodies), return_exceptions=True)
        await first
        return results


def tenant_name(name: str) -> str:
    return f"{name}-{uuid.uuid4().hex[:8]}"


async def test_group_duplicates_count_once(database: Database) -> None:
    tenant = tenant_name("group-duplicates")
    spy = GroupSpy(recorder_for(database))
    body = payload(cloudevent(f"{tenant}-a"), cloudevent(f"{tenant}-b"))

    first, second = await spy.record_together(tenant, [body, body])

    assert spy.sizes == [1, 2]
    assert isinstance(first, ImportSummary)
    assert isinstance(second, ImportSummary)
    assert first.accepted == 2
    assert first.duplicates == 0
    assert second.accepted == 0
    assert second.duplicates == 2
    # The first payload's event and the group's two distinct events: 1 + 2 = 3 rows, each in the outbox once.
    stored = await stored_events(database, tenant)
    assert sorted(stored) == sorted([f"{tenant}-first", f"{tenant}-a", f"{tenant}-b"])
    assert first.accepted_event_ids == [stored[f"{tenant}-a"]["event_id"], stored[f"{tenant}-b"]["event_id"]]
    stored_ids = [event["event_id"] for event in stored.values()]
    async with database.engine.connect() as connection:
        outbox_ids = list(
            (await connection.execute(select(OUTBOX.c.event_id).where(OUTBOX.c.event_id.in_(stored_ids)))).scalars()
        )
    assert sorted(outbox_ids) == sorted(stored_ids)
    # One import row per payload: the first and the two of the group.
    assert await stored_count(database, IMPORTS, tenant) == 3


async def test_group_conflict_fails_only_its_payload(database: Database) -> None:
    tenant = tenant_name("group-conflict")
    spy = GroupSpy(recorder_for(database))
    original = payload(cloudevent(f"{tenant}-a", 1000), cloudevent(f"{tenant}-b"))
    restated = payload(cloudevent(f"{tenant}-a", 2000))
    other = payload(cloudevent(f"{tenant}-c"))

    results = await spy.record_together(tenant, [original, restated, other])

    assert spy.sizes[:2] == [1, 3]
    original_summary, restated_error, other_summary = results
    assert isinstance(original_summary, ImportSummary)
    assert original_summary.accepted == 2
    assert isinstance(restated_error, ConflictingEvents)
    assert restated_error.summary.conflicts == 1
    assert isinstance(other_summary, ImportSummary)
    assert other_summary.accepted == 1
    stored = await stored_events(database, tenant)
    assert sorted(stored) == sorted([f"{tenant}-first", f"{tenant}-a", f"{tenant}-b", f"{tenant}-c"])
    assert stored[f"{tenant}-a"]["data"]["quantities"]["input_uncached_tokens"] == 1000


async def test_group_conflict_with_stored_event(database: Database) -> None:
    tenant = tenant_name("group-stored-conflict")
    spy = GroupSpy(recorder_for(database))
    await spy.record(tenant, payload(cloudevent(f"{tenant}-a", 1000)))
    restated = payload(cloudevent(f"{tenant}-a", 2000), cloudevent(f"{tenant}-b"))
    repeated = payload(cloudevent(f"{tenant}-a", 1000))
    other = payload(cloudevent(f"{tenant}-c"))

    restated_error, repeated_summary, other_summary = await spy.record_together(tenant, [restated, repeated, other])

    # After the stored event and the first payload, the group of three rolls back once for the
    # conflict, then commits the other two.
    assert spy.sizes[2:] == [3, 2]
    assert isinstance(restated_error, ConflictingEvents)
    assert restated_error.summary.conflicts == 1
    assert isinstance(repeated_summary, ImportSummary)
    assert repeated_summary.accepted == 0
    assert repeated_summary.duplicates == 1
    assert isinstance(other_summary, ImportSummary)
    assert other_summary.accepted == 1
    stored = await stored_events(database, tenant)
    # Nothing of the restating payload is stored, not even its new event b.
    assert sorted(stored) == sorted([f"{tenant}-first", f"{tenant}-a", f"{tenant}-c"])


def webhook_app(recorder: Recorder, tmp_path: Path) -> Any:
    secrets = tmp_path / "sources.yaml"
    secrets.write_text(f"sources:\n  meter:\n    secret: {SECRET.decode()}\n    tenants: ['*']\n")
    settings = IngestSettings(INGEST_WEBHOOK_SECRETS_FILE=str(secrets), AIFINOPS_TENANT="acme")
    return build_webhook_app(recorder, settings)


async def post_together(app: Any, tenant: str, bodies: list[bytes]) -> list[httpx.Response]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://ingest") as client:
        return await asyncio.gather(
            *(
                client.post(
                    "/api/v1/events",
                    content=body,
                    headers=signed_headers("meter", SECRET, body) | {"x-aifinops-tenant": tenant},
                )
                for body in bodies
            )
        )


async def test_invalid_payload_beside_valid_one(database: Database, tmp_path: Path) -> None:
    tenant = tenant_name("webhook-mixed")
    app = webhook_app(recorder_for(database), tmp_path)
    valid = payload(cloudevent(f"{tenant}-a"), cloudevent(f"{tenant}-b"))
    invalid = payload(cloudevent(f"{tenant}-c"), cloudevent(""))

    accepted, rejected = await post_together(app, tenant, [valid, invalid])

    assert accepted.status_code == 202
    assert accepted.json()["accepted"] == 2
    assert rejected.status_code == 422
    assert rejected.json()["rejections"][0]["field"] == "[1].id"
    assert sorted(await stored_events(database, tenant)) == [f"{tenant}-a", f"{tenant}-b"]
    # Both payloads have an import row, the rejected one too.
    assert await stored_count(database, IMPORTS, tenant) == 2


async def test_database_down_gets_503(tmp_path: Path) -> None:
    # Nothing listens on port 1, so every connection is refused.
    database = Database("postgresql+asyncpg://postgres@127.0.0.1:1/unreachable")
    app = webhook_app(recorder_for(database), tmp_path)
    bodies = [payload(cloudevent(f"down-{index}")) for index in range(3)]
    try:
        responses = await post_together(app, "acme", bodies)
    finally:
        await database.dispose()

    assert [response.status_code for response in responses] == [503, 503, 503]
    assert all(response.headers["retry-after"] == "5" for response in responses)
    assert all("retry later" in response.json()["error"] for response in responses)
