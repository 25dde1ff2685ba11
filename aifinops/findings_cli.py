"""``aifinops findings`` and ``aifinops budgets``: risk findings and their lifecycle, and budgets, over the risk API.

The commands call the risk service's ops API (``aifinops.risk.v1.RiskOps``), which stores each change, sends
the resulting ``risk.flagged`` event and queues the ticket updates.
"""

from __future__ import annotations

import getpass
import os

import click
from rich.table import Table

from aifinops.api import call, console, every_page, print_json, tenant_of
from shared.events import FindingStatus
from shared.protos.common.v1 import common_pb2
from shared.protos.risk.v1 import risk_pb2

ACTIVE_STATUSES = {FindingStatus.OPEN.value, FindingStatus.ACKNOWLEDGED.value, FindingStatus.IN_PROGRESS.value}


def _default_actor() -> str:
    return os.environ.get("AIFINOPS_ACTOR") or getpass.getuser()


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
    request = risk_pb2.ListFindingsRequest(
        tenant=tenant_of(tenant), statuses=list(statuses), all_statuses=show_all, kind=kind or "", page_size=500
    )
    found = every_page("risk", "ListFindings", request, "findings")
    if as_json:
        print_json(found)
        return
    table = Table(title=f"{len(found)} findings", title_justify="left")
    for column in ("id", "severity", "status", "kind", "title", "tickets"):
        table.add_column(column, overflow="fold")
    for item in found:
        tickets = ", ".join(f"{ticket.system}:{ticket.key}" for ticket in item.tickets) or "-"
        table.add_row(item.finding_id[:8], item.severity, item.status, item.kind, item.title, tickets)
    console.print(table)


@findings_group.command("show")
@click.argument("finding_id")
@click.option("--tenant", help="Tenant of the finding; defaults to AIFINOPS_TENANT.")
@click.option("--json", "as_json", is_flag=True, help="Print the finding as JSON.")
def show_command(finding_id: str, tenant: str | None, as_json: bool) -> None:
    """Show one finding (FINDING_ID or its first 6 or more characters) with its figures and history."""
    finding = call("risk", "GetFinding", risk_pb2.GetFindingRequest(tenant=tenant_of(tenant), finding_id=finding_id))
    if as_json:
        print_json(finding)
        return
    summary = finding.summary
    console.print(summary.title, style="bold", highlight=False)
    console.print(
        f"{summary.finding_id}  {summary.kind}  severity {summary.severity}  status {summary.status}  "
        f"revision {summary.revision}  owner {summary.owner or '-'}",
        highlight=False,
    )
    for name, value in finding.facts.items():
        console.print(f"  {name}: {value}", highlight=False)
    console.print(f"reading: {finding.interpretation}", highlight=False)
    console.print(f"evidence: {len(finding.evidence_event_ids)} event ids", highlight=False)
    for ticket in summary.tickets:
        console.print(f"ticket: {ticket.system} {ticket.key} ({ticket.remote_state})", highlight=False)
    if finding.HasField("ticket_work"):
        work = finding.ticket_work
        console.print(
            f"ticket work: {work.state}, {work.attempts} attempts, next {work.next_attempt_at}"
            + (f", last error: {work.last_error}" if work.last_error else ""),
            highlight=False,
        )
    for change in finding.changes:
        console.print(
            f"  {change.at}  r{change.revision}  {change.from_status or '-'} → {change.to_status}  "
            f"by {change.actor}" + (f": {change.note}" if change.note else ""),
            highlight=False,
        )


def _status_command(name: str, method: str, summary: str, reason_required: bool) -> None:
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
        request = risk_pb2.ChangeFindingRequest(
            tenant=tenant_of(tenant), finding_id=finding_id, actor=actor, note=note or ""
        )
        change = call("risk", method, request)
        console.print(f"{change.finding_id}: {change.status} (revision {change.revision}, by {actor})", highlight=False)


_status_command("acknowledge", "AcknowledgeFinding", "Acknowledge a finding: someone owns it now.", False)
_status_command("start", "StartFinding", "Mark a finding in progress.", False)
_status_command("resolve", "ResolveFinding", "Resolve a finding; it reopens if it recurs.", False)
_status_command("accept-risk", "AcceptRisk", "Accept a finding's risk, with the reason.", True)
_status_command("false-positive", "MarkFalsePositive", "Mark a finding a false positive, with the reason.", True)
_status_command("reopen", "ReopenFinding", "Reopen a resolved, accepted or dismissed finding.", False)


@findings_group.command("tickets")
@click.option("--retry-failed", is_flag=True, help="Queue again the ticket work an ITSM system rejected.")
def tickets_command(retry_failed: bool) -> None:
    """Show how many findings wait for their ITSM tickets to be sent, and how many were rejected."""
    queued = 0
    if retry_failed:
        queued = call("risk", "RetryFailedTickets", risk_pb2.RetryFailedTicketsRequest()).queued_again
    backlog = call("risk", "GetTicketBacklog", risk_pb2.GetTicketBacklogRequest())
    console.print(
        f"ticket work pending: {backlog.pending}, rejected: {backlog.failed}"
        + (f", queued again: {queued}" if retry_failed else ""),
        highlight=False,
    )


@click.group("budgets")
def budgets_group() -> None:
    """Budgets: those of the risk service's budgets file and those set here, which outlive restarts."""


@budgets_group.command("list")
@click.option("--tenant", help="Tenant whose budgets to list; defaults to AIFINOPS_TENANT.")
@click.option("--json", "as_json", is_flag=True, help="Print the budgets as JSON.")
def budgets_list(tenant: str | None, as_json: bool) -> None:
    """List the budgets that apply to a tenant, by id."""
    budgets = every_page(
        "risk", "ListBudgets", risk_pb2.ListBudgetsRequest(tenant=tenant_of(tenant), page_size=500), "budgets"
    )
    if as_json:
        print_json(budgets)
        return
    table = Table(title=f"{len(budgets)} budgets", title_justify="left")
    for column in ("id", "scope", "period", "amount", "thresholds", "owner", "source"):
        table.add_column(column, justify="right" if column == "amount" else "left", overflow="fold")
    for budget in budgets:
        thresholds = ", ".join(f"{value}%" for value in budget.thresholds)
        if budget.forecast_thresholds:
            thresholds += "; forecast " + ", ".join(f"{value}%" for value in budget.forecast_thresholds)
        kind = " (sandbox)" if budget.sandbox else ""
        source = f"{budget.source} by {budget.set_by}" if budget.set_by else budget.source
        table.add_row(
            budget.budget_id,
            f"{budget.scope_key}:{budget.scope_value}{kind}",
            budget.period,
            f"{budget.amount.amount} {budget.amount.currency}",
            thresholds,
            budget.owner or "-",
            source,
        )
    console.print(table)


@budgets_group.command("set")
@click.argument("budget_id")
@click.option(
    "--scope",
    required=True,
    help="What the budget covers, as KEY=VALUE with KEY one of team, cost_centre, use_case, project, environment.",
)
@click.option("--amount", required=True, help="Budget per period, as a decimal number such as 2500.00.")
@click.option("--currency", required=True, help="ISO 4217 currency of the amount, such as USD.")
@click.option("--period", type=click.Choice(["monthly", "quarterly"]), default="monthly", show_default=True)
@click.option("--threshold", "thresholds", multiple=True, type=int, help="Percent of actual spend to flag; repeatable.")
@click.option(
    "--forecast-threshold", "forecast_thresholds", multiple=True, type=int, help="Percent of projected spend."
)
@click.option("--owner", help="Who answers for the budget, such as an e-mail address.")
@click.option("--sandbox", is_flag=True, help="An experiments allowance, flagged only once spend passes it.")
@click.option("--budget-tenant", help="Tenant the budget applies to; every tenant when omitted.")
@click.option("--by", "set_by", default=_default_actor, show_default="AIFINOPS_ACTOR or the login name")
@click.option("--json", "as_json", is_flag=True, help="Print the stored budget as JSON.")
def budgets_set(
    budget_id: str,
    scope: str,
    amount: str,
    currency: str,
    period: str,
    thresholds: tuple[int, ...],
    forecast_thresholds: tuple[int, ...],
    owner: str | None,
    sandbox: bool,
    budget_tenant: str | None,
    set_by: str,
    as_json: bool,
) -> None:
    """Add a budget or replace BUDGET_ID; spend already recorded is checked against it at once."""
    scope_key, separator, scope_value = scope.partition("=")
    if not separator:
        raise click.BadParameter(f"must be KEY=VALUE, got {scope!r}", param_hint="--scope")
    budget = risk_pb2.Budget(
        budget_id=budget_id, scope_key=scope_key, scope_value=scope_value,
        amount=common_pb2.Money(amount=amount, currency=currency), period=period, thresholds=list(thresholds),
        forecast_thresholds=list(forecast_thresholds), owner=owner or "", sandbox=sandbox, tenant=budget_tenant or "",
    )  # fmt: skip
    response = call("risk", "SetBudget", risk_pb2.SetBudgetRequest(budget=budget, set_by=set_by))
    if as_json:
        print_json(response)
        return
    stored = response.budget
    console.print(
        f"budget {stored.budget_id} set: {stored.amount.amount} {stored.amount.currency} {stored.period} for "
        f"{stored.scope_key}:{stored.scope_value}; {response.findings_changed} findings raised or revised",
        highlight=False,
    )
