"""The demo's risk and ticket steps: synthetic research usage, an ITSM outage, and a check that no ticket was lost.

After the main samples, the demo waits until every finding that needs a ticket has one on the stand-in. It
stops the stand-in and imports more usage, which raises findings whose tickets must wait in the outbox, and
lets the connectors fail a few times. It starts the stand-in again on the same port and state file, waits
until the outbox is empty, and compares the tickets risk stored with the stand-in's tickets. Finally it
resolves one incident the way a ServiceNow agent would, through the Table API, and waits for the finding
to follow.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
from rich.text import Text
from sqlalchemy import select

from aifinops.stack import Stack
from services.ingest.batch import import_file
from services.risk.findings import FINDINGS, TICKETS, FindingStore
from shared.db import Database

RISK_SAMPLE_FILE = "synthetic_openai_usage_research_2026-11.json"
OUTAGE_S = 4.0


@dataclass
class TicketCheck:
    findings_needing_tickets: int
    tickets_in_risk: int
    incidents: int
    issues: int
    webhook_tickets: int
    duplicate_incidents: int
    duplicate_issues: int
    missing: list[str]

    @property
    def sound(self) -> bool:
        return not self.missing and self.duplicate_incidents == 0 and self.duplicate_issues == 0


async def feed_risk_samples(stack: Stack, tenant: str, say: Callable[..., None]) -> None:
    """Import the synthetic research usage: a spend spike, a forecast overrun and a project nobody owns."""
    from aifinops.demo import examples_dir  # imported here because the demo module imports this one

    path = examples_dir() / "data" / RISK_SAMPLE_FILE
    result = await import_file(path, settings=stack.settings(), tenant=tenant)
    say(
        f"imported {RISK_SAMPLE_FILE} (synthetic): accepted {result.summary.accepted}, "
        f"duplicate {result.summary.duplicates}",
        highlight=False,
    )


async def standin_state(stack: Stack) -> dict[str, Any]:
    async with httpx.AsyncClient(timeout=10) as client:
        response = await client.get(stack.itsm_url("/_standin/state"))
        response.raise_for_status()
        return response.json()  # type: ignore[no-any-return]


async def check_tickets(stack: Stack, tenant: str) -> TicketCheck:
    """Compare the tickets risk stored with the stand-in's: each finding that needs one has one in every system."""
    database = Database(stack.settings().database_url_for("risk"))
    try:
        async with database.engine.connect() as connection:
            findings = (await connection.execute(select(FINDINGS).where(FINDINGS.c.tenant == tenant))).all()
            tickets = (await connection.execute(select(TICKETS).where(TICKETS.c.tenant == tenant))).all()
    finally:
        await database.dispose()
    store = FindingStore()
    needing = [row.finding_id for row in findings if store.wants_ticket(row.severity, row.ticket_requested)]
    state = await standin_state(stack)
    remote = {
        "servicenow": {incident["number"] for incident in state["incidents"]},
        "jira": {issue["key"] for issue in state["issues"]},
    }
    stored = {(ticket.finding_id, ticket.system): ticket.external_key for ticket in tickets}
    missing = [
        f"{finding_id[:8]} in {system}"
        for finding_id in needing
        for system in ("servicenow", "jira", "webhook")
        if (finding_id, system) not in stored
    ]
    missing += [
        f"{key} ({system}) is stored in risk but not on the stand-in"
        for (_, system), key in stored.items()
        if system in remote and key not in remote[system]
    ]
    return TicketCheck(
        findings_needing_tickets=len(needing),
        tickets_in_risk=len(stored),
        incidents=len(state["incidents"]),
        issues=len(state["issues"]),
        webhook_tickets=state["webhook_tickets"],
        duplicate_incidents=state["duplicate_incidents"],
        duplicate_issues=state["duplicate_issues"],
        missing=missing,
    )


async def run_itsm_outage(stack: Stack, tenant: str, say: Callable[..., None]) -> TicketCheck:
    """Stop the stand-in, raise more findings, start it again, and check that every ticket arrived once."""
    await stack.wait_until_tickets_sent()
    before = await check_tickets(stack, tenant)
    say(
        f"ITSM stand-in: {before.incidents} incidents, {before.issues} Jira issues, {before.webhook_tickets} webhook "
        f"tickets for {before.findings_needing_tickets} findings",
        highlight=False,
    )

    stack.stop_itsm_standin()
    say(Text.assemble(("Stopped", "bold"), " the ITSM stand-in; importing more usage while it is down ..."))
    await feed_risk_samples(stack, tenant, say)
    await stack.wait_until_drained()
    await asyncio.sleep(OUTAGE_S)
    waiting = await stack.ticket_backlog()
    say(f"findings whose tickets wait in the outbox: {waiting['pending']} (the connectors keep retrying)")

    started = time.monotonic()
    await stack.start_itsm_standin()
    await stack.wait_until_tickets_sent()
    say(
        Text.assemble(
            ("Started", "bold"), f" the stand-in again; the outbox was empty {time.monotonic() - started:.1f} s later"
        )
    )
    after = await check_tickets(stack, tenant)
    say(
        f"ITSM stand-in: {after.incidents} incidents, {after.issues} Jira issues, {after.webhook_tickets} webhook "
        f"tickets for {after.findings_needing_tickets} findings; "
        f"duplicates {after.duplicate_incidents + after.duplicate_issues}, missing {len(after.missing)}",
        highlight=False,
    )
    return after


async def resolve_one_incident(stack: Stack, tenant: str, say: Callable[..., None], timeout_s: float = 30.0) -> None:
    """Resolve one incident through the Table API, as an agent would, and wait for its finding to follow."""
    state = await standin_state(stack)
    open_incidents = [incident for incident in state["incidents"] if incident["state"] == "1"]
    if not open_incidents:
        return

    incident = open_incidents[0]
    credentials = stack.itsm_credentials
    async with httpx.AsyncClient(timeout=10, auth=(credentials["agent"], credentials["agent_password"])) as client:
        response = await client.patch(
            stack.itsm_url(f"/api/now/table/incident/{incident['sys_id']}"),
            json={"state": "6", "close_code": "Solved (Permanently)", "close_notes": "Reviewed with the owner."},
        )
        response.raise_for_status()

    finding_id = incident["correlation_id"].removeprefix("aifinops:")
    database = Database(stack.settings().database_url_for("risk"))
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline:
            async with database.engine.connect() as connection:
                row = (await connection.execute(select(FINDINGS).where(FINDINGS.c.finding_id == finding_id))).first()
            if row is not None and row.status == "resolved":
                say(
                    f"resolved {incident['number']} in ServiceNow; finding {finding_id[:8]} is now {row.status}, "
                    f"changed by {row.status_changed_by}",
                    highlight=False,
                )
                return
            await asyncio.sleep(0.5)
    finally:
        await database.dispose()
    say(f"finding {finding_id[:8]} did not follow incident {incident['number']} within {timeout_s} s")
