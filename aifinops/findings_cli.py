"""``aifinops findings``: list risk findings and move them through their lifecycle.

The commands write to the risk service's database. The risk service sends the resulting ``risk.flagged``
events and ticket updates within a few seconds, and keeps them while Kafka or the ITSM system is down.
"""

from __future__ import annotations

import asyncio
import getpass
import json
import os
import sys
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import click
from rich.console import Console
from rich.table import Table

from shared.events import FindingStatus

console = Console()
errors = Console(stderr=True)
T = TypeVar("T")

ACTIVE_STATUSES = {FindingStatus.OPEN.value, FindingStatus.ACKNOWLEDGED.value, FindingStatus.IN_PROGRESS.value}


def _default_actor() -> str:
    return os.environ.get("AIFINOPS_ACTOR") or getpass.getuser()


def _run(work: Callable[[Any, Any, str], Awaitable[T]], tenant: str | None) -> T:
    """Open the risk database and run ``work(settings, database, tenant)``, printing lifecycle errors cleanly."""
    from services.risk.findings import FindingError
    from services.risk.lifecycle import open_database
    from services.risk.settings import RiskSettings
    from shared.db import Database

    settings = RiskSettings()

    async def wrapped() -> T:
        database = await open_database(Database(settings.database_url_for("risk")))
        try:
            return await work(settings, database, tenant or settings.tenant)
        finally:
            await database.dispose()

    try:
        return asyncio.run(wrapped())
    except FindingError as error:
        errors.print(f"error: {error}", highlight=False)
        sys.exit(2)


@click.group("findings")
def findings_group() -> None:
    """Risk findings: list them, show one, and acknowledge, resolve, accept or dismiss them."""


@findings_group.command("list")
@click.option("--tenant", help="Tenant whose findings to list; defaults to AIFINOPS_TENANT.")
@click.option(
    "--status",
    "statuses",
    multiple=True,
    type=click.Choice([status.value for status in FindingStatus]),
    help="Only findings in this status; repeat for several. Default: open, acknowledged and in progress.",
)
@click.option("--all", "show_all", is_flag=True, help="List findings in every status.")
@click.option("--kind", help="Only findings of this kind, such as budget_threshold or policy_violation.")
@click.option("--json", "as_json", is_flag=True, help="Print the findings as JSON.")
def list_command(
    tenant: str | None, statuses: tuple[str, ...], show_all: bool, kind: str | None, as_json: bool
) -> None:
    """List findings, most recently changed first."""
    from services.risk.lifecycle import list_findings

    wanted = None if show_all else set(statuses) or ACTIVE_STATUSES
    found = _run(lambda _s, database, name: list_findings(database, name, statuses=wanted, kind=kind), tenant)
    if as_json:
        console.print_json(json.dumps(found))
        return
    table = Table(title=f"{len(found)} findings", title_justify="left")
    for column in ("id", "severity", "status", "kind", "title", "tickets"):
        table.add_column(column, overflow="fold")
    for item in found:
        tickets = ", ".join(f"{ticket['system']}:{ticket['key']}" for ticket in item["tickets"]) or "-"
        table.add_row(item["finding_id"][:8], item["severity"], item["status"], item["kind"], item["title"], tickets)
    console.print(table)


@findings_group.command("show")
@click.argument("finding_id")
@click.option("--tenant", help="Tenant of the finding; defaults to AIFINOPS_TENANT.")
@click.option("--json", "as_json", is_flag=True, help="Print the finding as JSON.")
def show_command(finding_id: str, tenant: str | None, as_json: bool) -> None:
    """Show one finding (FINDING_ID or its first 6 or more characters) with its figures and history."""
    from services.risk.lifecycle import show_finding

    finding = _run(lambda _s, database, name: show_finding(database, name, finding_id), tenant)
    if as_json:
        console.print_json(json.dumps(finding))
        return
    console.print(f"[bold]{finding['title']}[/]", highlight=False)
    console.print(
        f"{finding['finding_id']}  {finding['kind']}  severity {finding['severity']}  status {finding['status']}  "
        f"revision {finding['revision']}  owner {finding['owner'] or '-'}",
        highlight=False,
    )
    for name, value in finding["facts"].items():
        console.print(f"  {name}: {value}", highlight=False)
    console.print(f"reading: {finding['interpretation']}", highlight=False)
    console.print(f"evidence: {len(finding['evidence_event_ids'])} event ids", highlight=False)
    for ticket in finding["tickets"]:
        console.print(f"ticket: {ticket['system']} {ticket['key']} ({ticket['remote_state']})", highlight=False)
    if finding["ticket_work"]:
        work = finding["ticket_work"]
        console.print(
            f"ticket work: {work['state']}, {work['attempts']} attempts, next {work['next_attempt_at']}"
            + (f", last error: {work['last_error']}" if work["last_error"] else ""),
            highlight=False,
        )
    for change in finding["changes"]:
        console.print(
            f"  {change['at']}  r{change['revision']}  {change['from_status'] or '-'} → {change['to_status']}  "
            f"by {change['actor']}" + (f": {change['note']}" if change["note"] else ""),
            highlight=False,
        )


def _status_command(name: str, status: FindingStatus, summary: str, reason_required: bool) -> None:
    @findings_group.command(name, help=summary)
    @click.argument("finding_id")
    @click.option("--tenant", help="Tenant of the finding; defaults to AIFINOPS_TENANT.")
    @click.option(
        "--by",
        "actor",
        default=_default_actor,
        show_default="AIFINOPS_ACTOR or the login name",
        help="Who makes the change.",
    )
    @click.option(
        "--reason",
        "--note",
        "note",
        required=reason_required,
        help="Why; required to accept a risk or mark a false positive.",
    )
    def command(finding_id: str, tenant: str | None, actor: str, note: str | None) -> None:
        from services.risk.lifecycle import FindingChange, change_status

        async def work(settings: Any, database: Any, name: str) -> Any:
            return await change_status(
                database,
                None,
                tenant=name,
                finding_id=finding_id,
                change=FindingChange(status, actor, note),
                min_ticket_severity=settings.itsm_min_severity,
            )

        event = _run(work, tenant)
        console.print(
            f"{event.finding_id}: {event.status.value} (revision {event.revision}, by {actor})", highlight=False
        )


_status_command("acknowledge", FindingStatus.ACKNOWLEDGED, "Acknowledge a finding: someone owns it now.", False)
_status_command("start", FindingStatus.IN_PROGRESS, "Mark a finding in progress.", False)
_status_command("resolve", FindingStatus.RESOLVED, "Resolve a finding; it reopens if it recurs.", False)
_status_command("accept-risk", FindingStatus.ACCEPTED_RISK, "Accept a finding's risk, with the reason.", True)
_status_command(
    "false-positive", FindingStatus.FALSE_POSITIVE, "Mark a finding a false positive, with the reason.", True
)
_status_command("reopen", FindingStatus.OPEN, "Reopen a resolved, accepted or dismissed finding.", False)


@findings_group.command("tickets")
@click.option("--retry-failed", is_flag=True, help="Queue again the ticket work an ITSM system rejected.")
def tickets_command(retry_failed: bool) -> None:
    """Show how many findings wait for their ITSM tickets to be sent, and how many were rejected."""
    from services.risk.lifecycle import retry_failed_tickets, ticket_backlog

    async def work(_settings: Any, database: Any, _tenant: str) -> dict[str, int]:
        queued = await retry_failed_tickets(database) if retry_failed else 0
        return await ticket_backlog(database) | {"queued_again": queued}

    counts = _run(work, None)
    console.print(
        f"ticket work pending: {counts['pending']}, rejected: {counts['failed']}"
        + (f", queued again: {counts['queued_again']}" if retry_failed else ""),
        highlight=False,
    )
