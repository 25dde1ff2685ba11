"""The ITSM connectors and the ticket dispatcher over real HTTP against the local stand-in, failures included.

The stand-in runs as its own process on loopback, as in the demo. Faults are injected through its control API:
5xx responses, 429 with Retry-After, responses slower than the client's timeout, and responses lost after the
ticket was written. A lost response is the case that would duplicate tickets if a retry created blindly.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr
from sqlalchemy import select

from aifinops.stack import Stack, StackConfig
from services.risk.findings import TICKET_OUTBOX, TICKETS, Detection, FindingStore
from services.risk.itsm.base import FindingView, PermanentError, RetryableError
from services.risk.itsm.dispatcher import RetryPolicy, TicketDispatcher, TicketState
from services.risk.itsm.jira import JiraConnector
from services.risk.itsm.servicenow import ServiceNowConnector
from services.risk.itsm.webhook import WebhookConnector
from services.risk.lifecycle import FindingChange, change_status, retry_failed_tickets
from shared.db import Database
from shared.events import FindingStatus, Severity, utc_now
from shared.logging import configure_logging
from shared.outbox import Outbox
from tests.risk_support import RecordingPublisher, risk_database

pytestmark = pytest.mark.integration

DATA = Path(__file__).resolve().parents[2] / "services" / "risk" / "itsm_standin" / "data"


@pytest.fixture(scope="module")
def standin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """A stack object that runs only the ITSM stand-in; no broker and no services."""
    run_dir = tmp_path_factory.mktemp("standin")
    (run_dir / "logs").mkdir()
    stack = Stack(StackConfig(run_dir=run_dir, itsm_standin=True))
    import asyncio

    asyncio.run(stack.start_itsm_standin())
    try:
        yield stack
    finally:
        stack.stop_itsm_standin()


@pytest.fixture
async def database(tmp_path: Path, standin: Stack) -> AsyncIterator[Database]:
    await control(standin, "DELETE", "/_standin/faults")
    database = await risk_database(tmp_path)
    yield database
    await database.dispose()


async def control(stack: Stack, method: str, path: str, body: Any = None) -> Any:
    async with httpx.AsyncClient(timeout=10) as client:
        response = await client.request(method, stack.itsm_url(path), json=body)
        response.raise_for_status()
        return response.json()


def servicenow(stack: Stack, *, password: str | None = None, timeout_s: float = 5.0) -> ServiceNowConnector:
    credentials = stack.itsm_credentials
    return ServiceNowConnector(
        stack.itsm_url(""),
        credentials["user"],
        SecretStr(password or credentials["password"]),
        timeout_s=timeout_s,
    )


def jira(stack: Stack, *, timeout_s: float = 5.0) -> JiraConnector:
    credentials = stack.itsm_credentials
    return JiraConnector(
        stack.itsm_url(""),
        credentials["email"],
        SecretStr(credentials["token"]),
        project_key="FINOPS",
        issue_type="Task",
        timeout_s=timeout_s,
    )


def webhook(stack: Stack, secret: str | None = None) -> WebhookConnector:
    return WebhookConnector(
        stack.itsm_url("/webhook/findings"),
        SecretStr(secret or stack.itsm_credentials["webhook_secret"]),
        timeout_s=5.0,
    )


async def raise_finding(database: Database, finding_id: str, severity: Severity = Severity.HIGH) -> FindingView:
    detection = Detection(
        finding_id=finding_id,
        tenant="itsm",
        kind="spend_anomaly",
        severity=severity,
        subject="team:research model:openai/gpt-4o",
        title=f"team:research spent 42.00 USD on 2026-11-10 ({finding_id})",
        facts={"actual": "42.00 USD", "expected": "3.825 USD"},
        interpretation="Daily spend jumped.",
        evidence_event_ids=("cost:u28:r1",),
    )
    async with database.transaction() as connection:
        await FindingStore().record(connection, detection)
        row = (await connection.execute(select(TICKETS).where(TICKETS.c.finding_id == finding_id))).first()
        assert row is None
        from services.risk.findings import FINDINGS

        finding = (await connection.execute(select(FINDINGS).where(FINDINGS.c.finding_id == finding_id))).one()
    return FindingView.from_row(finding)


def dispatcher(database: Database, *connectors: Any) -> TicketDispatcher:
    outbox = Outbox("risk", database, RecordingPublisher())  # type: ignore[arg-type]
    return TicketDispatcher(database, outbox, connectors, retry=RetryPolicy(base_s=2.0, max_s=60.0))


async def outbox_row(database: Database, finding_id: str) -> Any:
    async with database.engine.connect() as connection:
        return (await connection.execute(select(TICKET_OUTBOX).where(TICKET_OUTBOX.c.finding_id == finding_id))).first()


async def incidents_for(stack: Stack, finding_id: str) -> list[dict[str, Any]]:
    state = await control(stack, "GET", "/_standin/state")
    return [i for i in state["incidents"] if i["correlation_id"] == f"aifinops:{finding_id}"]


async def issues_for(stack: Stack, finding_id: str) -> list[dict[str, Any]]:
    state = await control(stack, "GET", "/_standin/state")
    return [i for i in state["issues"] if f"aifinops-{finding_id}" in i["labels"]]


class TestDocumentedShapes:
    async def test_incident_create_matches_documented_record(self, standin: Stack) -> None:
        request = json.loads((DATA / "servicenow_table_api_post_incident_request_docs.json").read_text())
        documented = json.loads((DATA / "servicenow_table_api_post_incident_response_docs.json").read_text())
        credentials = standin.itsm_credentials

        async with httpx.AsyncClient(auth=(credentials["user"], credentials["password"])) as client:
            response = await client.post(standin.itsm_url("/api/now/table/incident"), json=request)

        assert response.status_code == 201
        record = response.json()["result"]
        assert set(record) == set(documented["result"])
        assert all(isinstance(value, str) or set(value) == {"link", "value"} for value in record.values())
        assert (record["impact"], record["urgency"], record["priority"]) == ("2", "2", "3")  # as documented
        assert record["number"].startswith("INC")
        assert record["state"] == "1"
        assert record["assignment_group"]["value"] == request["assignment_group"]

    async def test_issue_create_matches_documented_response(self, standin: Stack) -> None:
        request = json.loads((DATA / "jira_create_issue_request_docs.json").read_text())
        documented = json.loads((DATA / "jira_create_issue_response_docs.json").read_text())
        credentials = standin.itsm_credentials

        async with httpx.AsyncClient(auth=(credentials["email"], credentials["token"])) as client:
            response = await client.post(standin.itsm_url("/rest/api/3/issue"), json=request)
            invalid = await client.post(
                standin.itsm_url("/rest/api/3/issue"),
                json={"fields": {**request["fields"], "description": "plain text"}},
            )

        assert response.status_code == 201
        # The documented response carries a transition result because that request asked for one; this one did not.
        assert set(response.json()) == set(documented) - {"transition"}
        assert response.json()["id"].isdigit()
        assert invalid.status_code == 400
        assert "Atlassian Document" in invalid.json()["errors"]["description"]


class TestConnectors:
    async def test_servicenow_create_find_resolve(self, standin: Stack, database: Database) -> None:
        view = await raise_finding(database, "sn-round-trip")
        connector = servicenow(standin)
        try:
            created = await connector.create(view)
            found = await connector.find(view)
            assert found is not None and found.key == created.key

            resolved = replace(view, status=FindingStatus.RESOLVED, revision=2, status_note="budget raised")
            ticket = TicketState(created.external_id, created.key, created.url, 1, "open", "1")
            assert await connector.update(ticket, resolved) == "6"
            state = await connector.read_state(ticket)
        finally:
            await connector.close()

        assert state is not None
        assert (state.state, state.status) == ("6", FindingStatus.RESOLVED)
        assert state.changed_by == f"servicenow:{standin.itsm_credentials['user']}"

    async def test_jira_create_find_accept(self, standin: Stack, database: Database) -> None:
        view = await raise_finding(database, "jira-round-trip")
        connector = jira(standin)
        try:
            created = await connector.create(view)
            found = await connector.find(view)
            assert found is not None and found.key == created.key

            accepted = replace(view, status=FindingStatus.ACCEPTED_RISK, revision=2)
            ticket = TicketState(created.external_id, created.key, created.url, 1, "open", None)
            assert await connector.update(ticket, accepted) == "Done|done|Won't Do"
            state = await connector.read_state(ticket)
        finally:
            await connector.close()

        assert state is not None and state.status is FindingStatus.ACCEPTED_RISK
        [issue] = await issues_for(standin, "jira-round-trip")
        assert (issue["status"], issue["resolution"], issue["comments"]) == ("Done", "Won't Do", 1)

    async def test_wrong_password_is_permanent_and_never_shown(self, standin: Stack, database: Database) -> None:
        view = await raise_finding(database, "sn-bad-password")
        secret = "wrong-and-secret-9f3a"
        connector = servicenow(standin, password=secret)
        try:
            with pytest.raises(PermanentError) as raised:
                await connector.create(view)
        finally:
            await connector.close()

        assert "returned 401" in str(raised.value)
        assert secret not in str(raised.value)

    async def test_webhook_is_signed_and_deduplicated(self, standin: Stack, database: Database) -> None:
        view = await raise_finding(database, "hook-once")
        good, forged = webhook(standin), webhook(standin, secret="not-the-secret")
        try:
            first = await good.create(view)
            again = await good.create(view)  # a retry after a lost response sends the same delivery id
            with pytest.raises(PermanentError, match="returned 401"):
                await forged.create(view)
        finally:
            await good.close()
            await forged.close()

        assert first.key == again.key
        assert first.key.startswith("HOOK-")


class TestDispatcher:
    async def test_server_error_is_retried_after_backoff(self, standin: Stack, database: Database) -> None:
        await raise_finding(database, "sn-500")
        await control(standin, "POST", "/_standin/faults", {"path": "/api/now/table/incident", "method": "POST"})
        now = utc_now()
        loop = dispatcher(database, servicenow(standin))

        first = await loop.send_due(now)
        row = await outbox_row(database, "sn-500")
        second = await loop.send_due(now + timedelta(seconds=3))

        assert (first.retried, first.sent) == (1, 0)
        assert row.attempts == 1
        assert row.next_attempt_at == now + timedelta(seconds=2)  # the first delay is the 2 s base
        assert "returned 500" in row.last_error
        assert second.sent == 1
        assert len(await incidents_for(standin, "sn-500")) == 1

    async def test_retry_after_is_honoured(self, standin: Stack, database: Database) -> None:
        await raise_finding(database, "sn-429")
        fault = {"path": "/api/now/table/incident", "status": 429, "retry_after": "7"}
        await control(standin, "POST", "/_standin/faults", fault)
        now = utc_now()

        report = await dispatcher(database, servicenow(standin)).send_due(now)

        row = await outbox_row(database, "sn-429")
        assert report.retried == 1
        assert row.next_attempt_at == now + timedelta(seconds=7)

    async def test_lost_answer_does_not_duplicate(self, standin: Stack, database: Database) -> None:
        await raise_finding(database, "lost-answer")
        await control(
            standin,
            "POST",
            "/_standin/faults",
            [
                {"path": "/api/now/table/incident", "method": "POST", "status": 502, "phase": "after"},
                {"path": "/rest/api/3/issue", "method": "POST", "status": None, "delay_s": 2.0, "phase": "after"},
            ],
        )
        now = utc_now()
        loop = dispatcher(database, servicenow(standin), jira(standin, timeout_s=0.5))

        first = await loop.send_due(now)
        second = await loop.send_due(now + timedelta(seconds=10))

        assert (first.retried, second.sent) == (1, 1)
        assert any("timed out" in error for error in first.errors)
        assert len(await incidents_for(standin, "lost-answer")) == 1
        assert len(await issues_for(standin, "lost-answer")) == 1
        async with database.engine.connect() as connection:
            stored = (await connection.execute(select(TICKETS).where(TICKETS.c.finding_id == "lost-answer"))).all()
        assert sorted(ticket.system for ticket in stored) == ["jira", "servicenow"]

    async def test_rejected_request_waits_for_retry(self, standin: Stack, database: Database) -> None:
        await raise_finding(database, "jira-400")
        await control(standin, "POST", "/_standin/faults", {"path": "/rest/api/3/issue", "status": 400})
        now = utc_now()
        loop = dispatcher(database, jira(standin))

        first = await loop.send_due(now)
        later = await loop.send_due(now + timedelta(minutes=10))
        assert (first.failed, later.sent, later.retried) == (1, 0, 0)  # failed work is not retried by itself
        assert (await outbox_row(database, "jira-400")).state == "failed"

        assert await retry_failed_tickets(database) == 1
        final = await loop.send_due(utc_now())

        assert final.sent == 1
        assert len(await issues_for(standin, "jira-400")) == 1

    async def test_outage_and_restart_lose_nothing(self, standin: Stack, database: Database) -> None:
        await raise_finding(database, "before-outage")
        loop = dispatcher(database, servicenow(standin), jira(standin), webhook(standin))
        assert (await loop.send_due(utc_now())).sent == 1

        standin.stop_itsm_standin()
        await raise_finding(database, "during-outage")
        during = await loop.send_due(utc_now())
        await standin.start_itsm_standin()
        after = await loop.send_due(utc_now() + timedelta(seconds=30))

        assert (during.retried, after.sent) == (1, 1)
        assert any("ConnectError" in error for error in during.errors)
        for finding_id in ("before-outage", "during-outage"):  # the stand-in kept its tickets across the restart
            assert len(await incidents_for(standin, finding_id)) == 1
            assert len(await issues_for(standin, finding_id)) == 1

    async def test_updates_follow_the_finding(self, standin: Stack, database: Database) -> None:
        await raise_finding(database, "follow-me")
        loop = dispatcher(database, servicenow(standin), jira(standin), webhook(standin))
        await loop.send_due(utc_now())

        await change_status(
            database,
            None,
            tenant="itsm",
            finding_id="follow-me",
            change=FindingChange(FindingStatus.RESOLVED, "dana", "job fixed"),
        )
        report = await loop.send_due(utc_now())

        assert report.sent == 1
        [incident] = await incidents_for(standin, "follow-me")
        [issue] = await issues_for(standin, "follow-me")
        assert (incident["state"], incident["work_notes"]) == ("6", 1)
        assert (issue["status"], issue["resolution"], issue["comments"]) == ("Done", "Done", 1)

    async def test_agent_change_flows_back_once(self, standin: Stack, database: Database) -> None:
        await raise_finding(database, "agent-change")
        loop = dispatcher(database, servicenow(standin), jira(standin))
        await loop.send_due(utc_now())
        [incident] = await incidents_for(standin, "agent-change")
        [issue] = await issues_for(standin, "agent-change")
        credentials = standin.itsm_credentials
        async with httpx.AsyncClient(auth=(credentials["agent"], credentials["agent_password"])) as client:
            patched = await client.patch(
                standin.itsm_url(f"/api/now/table/incident/{incident['sys_id']}"), json={"state": "2"}
            )
            assert patched.status_code == 200
        await control(standin, "DELETE", "/_standin/requests")

        changed = await loop.poll_states()
        await loop.send_due(utc_now())

        assert changed == 1
        async with database.engine.connect() as connection:
            from services.risk.findings import FINDINGS

            row = (await connection.execute(select(FINDINGS).where(FINDINGS.c.finding_id == "agent-change"))).one()
        assert row.status == "in_progress"
        assert row.status_changed_by == f"servicenow:{credentials['agent']}"
        requests = (await control(standin, "GET", "/_standin/requests"))["requests"]
        writes = [(r["method"], r["path"]) for r in requests if r["method"] != "GET"]
        # ServiceNow already shows the change, so only Jira is sent it: a comment and a transition.
        assert writes == [
            ("POST", f"/rest/api/3/issue/{issue['key']}/comment"),
            ("POST", f"/rest/api/3/issue/{issue['key']}/transitions"),
        ]


async def test_retry_delays_double_up_to_the_cap() -> None:
    policy = RetryPolicy(base_s=2.0, max_s=60.0)

    assert [policy.delay(attempt, None) for attempt in (1, 2, 3, 4, 5, 6)] == [2.0, 4.0, 8.0, 16.0, 32.0, 60.0]
    assert policy.delay(3, 7.0) == 7.0  # Retry-After wins
    assert policy.delay(1, 3600.0) == 60.0  # but never beyond the cap


async def test_credentials_never_reach_logs(
    standin: Stack, database: Database, capsys: pytest.CaptureFixture[str]
) -> None:
    root = logging.getLogger()
    previous = root.handlers[:], root.level
    configure_logging("risk-test", level="DEBUG")  # renders to the captured stderr, as a service would
    await raise_finding(database, "quiet-secrets")
    secret = "never-log-me-7c1d"
    loop = dispatcher(database, servicenow(standin, password=secret), jira(standin), webhook(standin))
    standin_password = standin.itsm_credentials["password"]

    try:
        await loop.send_due(utc_now())
        standin.stop_itsm_standin()
        await loop.send_due(utc_now() + timedelta(minutes=5))
        await standin.start_itsm_standin()
    finally:
        root.handlers[:], level = previous
        root.setLevel(level)

    output = capsys.readouterr()
    logs = output.out + output.err
    assert "itsm.request_rejected" in logs  # the rejected request was logged ...
    for value in (
        secret,
        standin_password,
        standin.itsm_credentials["token"],
        standin.itsm_credentials["webhook_secret"],
    ):
        assert value not in logs  # ... without any credential


def test_retryable_error_keeps_retry_after() -> None:
    error = RetryableError("servicenow POST /api/now/table/incident returned 429: busy", 7.0)

    assert error.retry_after_s == 7.0
