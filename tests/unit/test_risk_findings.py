"""The finding store and lifecycle on a real SQLite database: raise once, update, reopen, record who changed what."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import select

from services.risk.findings import CHANGES, TICKET_OUTBOX, Detection, FindingError, FindingNotFound, FindingStore
from services.risk.lifecycle import (
    AmbiguousFindingId,
    FindingChange,
    change_status,
    list_findings,
    retry_failed_tickets,
    show_finding,
    ticket_backlog,
)
from shared.db import Database
from shared.events import FindingStatus, Severity
from tests.risk_support import RecordingPublisher, risk_database


@pytest.fixture
async def database(tmp_path: Path) -> AsyncIterator[Database]:
    database = await risk_database(tmp_path)
    yield database
    await database.dispose()


def detection(
    *,
    facts: dict[str, str] | None = None,
    occurrence: str = "1",
    severity: Severity = Severity.MEDIUM,
    track: bool = True,
    finding: str = "f0000001-aaaa",
) -> Detection:
    return Detection(
        finding_id=finding,
        tenant="acme",
        kind="policy_violation",
        severity=severity,
        subject="team:research",
        title="team research used openai/o3 against policy rule internal",
        facts=facts or {"usage_events": "1"},
        interpretation="not approved",
        evidence_event_ids=("cost:1",),
        occurrence=occurrence,
        track_changes=track,
    )


async def record(database: Database, item: Detection) -> tuple[int | None, str | None]:
    store = FindingStore()
    async with database.transaction() as connection:
        event = await store.record(connection, item)
    return (event.revision, event.status.value) if event else (None, None)


async def move(database: Database, status: FindingStatus, note: str | None = None, finding: str = "f0000001") -> int:
    event = await change_status(
        database, None, tenant="acme", finding_id=finding, change=FindingChange(status, "dana", note)
    )
    return event.revision


async def changes(database: Database) -> list[tuple[int, str | None, str, str, str | None]]:
    async with database.engine.connect() as connection:
        rows = await connection.execute(select(CHANGES).order_by(CHANGES.c.seq))
        return [(row.revision, row.from_status, row.to_status, row.actor, row.note) for row in rows]


class TestRecord:
    async def test_raise_once_then_update(self, database: Database) -> None:
        assert await record(database, detection()) == (1, "open")
        assert await record(database, detection()) == (None, None)  # a replay changes nothing

        assert await record(database, detection(facts={"usage_events": "2"}, occurrence="2")) == (2, "open")

        assert await changes(database) == [
            (1, None, "open", "risk", "raised"),
            (2, "open", "open", "risk", "figures updated"),
        ]

    async def test_frozen_detection_keeps_first_figures(self, database: Database) -> None:
        await record(database, detection(track=False))

        assert await record(database, detection(facts={"usage_events": "9"}, track=False)) == (None, None)

    async def test_recurrence_after_resolution_reopens(self, database: Database) -> None:
        await record(database, detection())
        assert await move(database, FindingStatus.RESOLVED, "model switched") == 2

        revision, status = await record(database, detection(facts={"usage_events": "2"}, occurrence="2"))

        assert (revision, status) == (3, "open")
        found = await show_finding(database, "acme", "f0000001")
        assert found["reopen_count"] == 1
        assert found["status_changed_by"] == "risk"
        assert [change["to_status"] for change in found["changes"]] == ["open", "resolved", "open"]

    async def test_same_occurrence_updates_resolved_finding_quietly(self, database: Database) -> None:
        await record(database, detection())
        await move(database, FindingStatus.RESOLVED)

        assert await record(database, detection(facts={"usage_events": "1", "spend": "2.00 USD"})) == (3, "resolved")

    async def test_accepted_risk_does_not_reopen(self, database: Database) -> None:
        await record(database, detection())
        await move(database, FindingStatus.ACCEPTED_RISK, "experiment approved by the CISO")

        assert await record(database, detection(facts={"usage_events": "5"}, occurrence="5")) == (3, "accepted_risk")

    async def test_tickets_requested_from_medium_severity(self, database: Database) -> None:
        await record(database, detection(severity=Severity.LOW, finding="low00001"))
        await record(database, detection(severity=Severity.MEDIUM, finding="medium01"))

        async with database.engine.connect() as connection:
            queued = [row.finding_id for row in await connection.execute(select(TICKET_OUTBOX))]
        assert queued == ["medium01"]


class TestLifecycle:
    async def test_status_moves_and_their_history(self, database: Database) -> None:
        await record(database, detection())

        assert await move(database, FindingStatus.ACKNOWLEDGED) == 2
        assert await move(database, FindingStatus.IN_PROGRESS) == 3
        assert await move(database, FindingStatus.RESOLVED, "budget raised") == 4
        assert await move(database, FindingStatus.OPEN, "spend came back") == 5

        history = [(c[1], c[2], c[3], c[4]) for c in await changes(database)]
        assert history == [
            (None, "open", "risk", "raised"),
            ("open", "acknowledged", "dana", None),
            ("acknowledged", "in_progress", "dana", None),
            ("in_progress", "resolved", "dana", "budget raised"),
            ("resolved", "open", "dana", "spend came back"),
        ]

    async def test_rejected_moves(self, database: Database) -> None:
        await record(database, detection())
        await move(database, FindingStatus.RESOLVED)

        with pytest.raises(FindingError, match="reopen it before moving it to in_progress"):
            await move(database, FindingStatus.IN_PROGRESS)
        with pytest.raises(FindingError, match="already resolved"):
            await move(database, FindingStatus.RESOLVED)
        await move(database, FindingStatus.OPEN)
        with pytest.raises(FindingError, match="a reason is required"):
            await move(database, FindingStatus.FALSE_POSITIVE)
        with pytest.raises(FindingNotFound, match="not found in tenant 'acme'"):
            await move(database, FindingStatus.RESOLVED, finding="ffffff99")
        with pytest.raises(FindingNotFound, match="not found in tenant 'other'"):
            await change_status(
                database,
                None,
                tenant="other",
                finding_id="f0000001",
                change=FindingChange(FindingStatus.RESOLVED, "dana"),
            )

    async def test_short_ids(self, database: Database) -> None:
        await record(database, detection(finding="abcdef-1"))
        await record(database, detection(finding="abcdef-2"))

        with pytest.raises(AmbiguousFindingId):
            await move(database, FindingStatus.RESOLVED, finding="abcdef")
        with pytest.raises(FindingNotFound, match="too short"):
            await move(database, FindingStatus.RESOLVED, finding="abc")
        assert await move(database, FindingStatus.RESOLVED, finding="abcdef-2") == 2

    async def test_status_change_is_published_through_the_outbox(self, database: Database) -> None:
        from shared.outbox import Outbox

        await record(database, detection())
        publisher = RecordingPublisher()

        await change_status(
            database,
            Outbox("risk", database, publisher),  # type: ignore[arg-type]
            tenant="acme",
            finding_id="f0000001",
            change=FindingChange(FindingStatus.ACKNOWLEDGED, "dana", "looking"),
        )

        [event] = publisher.findings()
        assert event.event_id == "finding:f0000001-aaaa:r2"
        assert event.status is FindingStatus.ACKNOWLEDGED
        assert event.status_changed_by == "dana"
        assert event.status_note == "looking"

    async def test_list_filters_by_status(self, database: Database) -> None:
        await record(database, detection(finding="first001"))
        await record(database, detection(finding="second01"))
        await move(database, FindingStatus.RESOLVED, finding="second01")

        active = await list_findings(database, "acme", statuses={"open"})
        resolved = await list_findings(database, "acme", statuses={"resolved"})

        assert [item["finding_id"] for item in active] == ["first001"]
        assert [item["finding_id"] for item in resolved] == ["second01"]

    async def test_failed_ticket_work_can_be_retried(self, database: Database) -> None:
        await record(database, detection())
        async with database.transaction() as connection:
            await connection.execute(TICKET_OUTBOX.update().values(state="failed", last_error="400"))

        assert await ticket_backlog(database) == {"pending": 0, "failed": 1}
        assert await retry_failed_tickets(database) == 1
        assert await ticket_backlog(database) == {"pending": 1, "failed": 0}
