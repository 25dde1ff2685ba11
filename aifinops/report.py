"""The pipeline report: spend, findings, unit economics and recommendations, read from each service's tables.

Every figure is summed exactly from stored Decimal rows; the printed report rounds
half-even to 4 decimal places and ``--json`` gives the exact values. Amounts in
different currencies are reported apart, never added together.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text
from sqlalchemy import func, select

from aifinops.console import styled, visible
from services.allocation.repricing import CREDIT_PREFIX
from services.allocation.tables import CostLedgerEntry, Reconciliation
from services.ingest.tables import IngestRejectedRow, IngestUsageEvent
from services.optimizer.lifecycle import list_recommendations
from services.risk.tables import RiskFinding
from services.value.queries import read_unit_economics
from shared.db import Database
from shared.settings import ServiceSettings

SPEND_CATEGORIES = ("usage", "purchase", "tax", "adjustment")
DISPLAY_PLACES = Decimal("0.0001")

Money = tuple[str, Decimal]  # (currency, amount)


def _add(totals: dict[Any, dict[str, Decimal]], key: Any, currency: str, amount: Decimal) -> None:
    totals[key][currency] = totals[key].get(currency, Decimal(0)) + amount


@dataclass
class Report:
    tenant: str
    cost_events: int = 0
    costed_usage_events: int = 0  # ledger rows that come from captured usage (contract credits left out)
    priced_events: int = 0
    provider_billed_events: int = 0
    unpriced_events: int = 0
    unpriced_tokens: int = 0
    spend: dict[str, Decimal] = field(default_factory=dict)  # currency -> gross spend
    credits_and_refunds: dict[str, Decimal] = field(default_factory=dict)
    by_team: dict[str, dict[str, Decimal]] = field(default_factory=lambda: defaultdict(dict))
    by_provider: dict[str, dict[str, Decimal]] = field(default_factory=lambda: defaultdict(dict))
    by_model: dict[tuple[str, str], dict[str, Decimal]] = field(default_factory=lambda: defaultdict(dict))
    findings: list[dict[str, Any]] = field(default_factory=list)
    unit_economics: list[dict[str, Any]] = field(default_factory=list)
    recommendations: list[dict[str, Any]] = field(default_factory=list)
    tickets: list[dict[str, Any]] = field(default_factory=list)
    ticket_backlog: dict[str, int] = field(default_factory=dict)
    itsm_check: dict[str, Any] | None = None
    unallocated: dict[str, Decimal] = field(default_factory=dict)  # currency -> spend no rule owns
    unallocated_by_source: dict[str, dict[str, Decimal]] = field(default_factory=lambda: defaultdict(dict))
    reconciliation: list[dict[str, Any]] = field(default_factory=list)
    # What ingest captured for the tenant: counts per format, rejected rows, provider cost statements,
    # seats and GPU utilisation (see _read_capture).
    capture: dict[str, Any] = field(default_factory=dict)
    value_unlinked: list[dict[str, Any]] = field(default_factory=list)

    @property
    def has_data(self) -> bool:
        """Tell whether any service stored anything for the tenant: usage, costs, findings, outcomes or savings."""
        captured = any(self.capture.get("events_by_format", {}).values()) or any(
            self.capture.get("rejected_rows_by_format", {}).values()
        )
        return bool(
            self.cost_events
            or self.findings
            or self.unit_economics
            or self.value_unlinked
            or self.recommendations
            or self.reconciliation
            or captured
        )

    @property
    def uncosted_usage_events(self) -> int:
        """Usage events ingest captured that allocation has not costed yet."""
        captured = sum(types.get("usage.recorded", 0) for types in self.capture.get("events_by_format", {}).values())
        return max(0, captured - self.costed_usage_events)

    def as_json(self) -> dict[str, Any]:
        def money_map(values: dict[str, Decimal]) -> dict[str, str]:
            return {currency: str(amount) for currency, amount in sorted(values.items())}

        return {
            "tenant": self.tenant,
            "cost_events": self.cost_events,
            "uncosted_usage_events": self.uncosted_usage_events,
            "priced_events": self.priced_events,
            "provider_billed_events": self.provider_billed_events,
            "unpriced_events": self.unpriced_events,
            "unpriced_tokens": self.unpriced_tokens,
            "spend": money_map(self.spend),
            "credits_and_refunds": money_map(self.credits_and_refunds),
            "spend_by_team": {team: money_map(values) for team, values in sorted(self.by_team.items())},
            "spend_by_provider": {name: money_map(values) for name, values in sorted(self.by_provider.items())},
            "spend_by_model": {f"{p}/{m}": money_map(values) for (p, m), values in sorted(self.by_model.items())},
            "findings": self.findings,
            "unit_economics": self.unit_economics,
            "recommendations": self.recommendations,
            "tickets": self.tickets,
            "ticket_backlog": self.ticket_backlog,
            "itsm_check": self.itsm_check,
            "unallocated_spend": money_map(self.unallocated),
            "unallocated_by_source": {
                name: money_map(values) for name, values in sorted(self.unallocated_by_source.items())
            },
            "reconciliation": self.reconciliation,
            "capture": self.capture,
            "value_unlinked": self.value_unlinked,
        }


async def build_report(settings: ServiceSettings, tenant: str) -> Report:
    report = Report(tenant=tenant)
    await _read_ledger(Database(settings.database_url_for("allocation")), tenant, report)
    await _read_findings(Database(settings.database_url_for("risk")), tenant, report)
    await _read_unit_economics(Database(settings.database_url_for("value")), tenant, report)
    await _read_recommendations(Database(settings.database_url_for("optimizer")), tenant, report)
    await _read_tickets(Database(settings.database_url_for("risk")), tenant, report)
    await _read_unallocated(Database(settings.database_url_for("allocation")), tenant, report)
    await _read_reconciliation(Database(settings.database_url_for("allocation")), tenant, report)
    await _read_capture(Database(settings.database_url_for("ingest")), tenant, report)
    return report


async def known_tenants(settings: ServiceSettings) -> list[str]:
    """Return the tenants that ingest captured anything for, to suggest when a tenant has no data."""
    database = Database(settings.database_url_for("ingest"))
    events = IngestUsageEvent.__table__  # type: ignore[attr-defined]
    try:
        async with database.engine.connect() as connection:
            rows = await connection.execute(select(events.c.tenant).distinct().order_by(events.c.tenant).limit(20))
            return [row.tenant for row in rows]
    finally:
        await database.dispose()


async def _read_ledger(database: Database, tenant: str, report: Report) -> None:
    table = CostLedgerEntry.__table__  # type: ignore[attr-defined]
    try:
        async with database.engine.connect() as connection:
            result = await connection.stream(
                select(
                    table.c.status,
                    table.c.charge_category,
                    table.c.cost_amount,
                    table.c.cost_currency,
                    table.c.team,
                    table.c.provider,
                    table.c.priced_model,
                    table.c.model,
                    table.c.quantities_json,
                    table.c.shares_json,
                    table.c.usage_event_id,
                ).where(table.c.tenant == tenant)
            )
            async for row in result:
                report.cost_events += 1
                if not row.usage_event_id.startswith(CREDIT_PREFIX):
                    report.costed_usage_events += 1
                if row.status == "unpriced":
                    report.unpriced_events += 1
                    report.unpriced_tokens += sum(
                        int(Decimal(v)) for k, v in json.loads(row.quantities_json).items() if k.endswith("tokens")
                    )
                    continue
                if row.status == "priced":
                    report.priced_events += 1
                else:
                    report.provider_billed_events += 1
                currency, amount = row.cost_currency, row.cost_amount
                if row.charge_category not in SPEND_CATEGORIES:
                    report.credits_and_refunds[currency] = report.credits_and_refunds.get(currency, Decimal(0)) + amount
                    continue
                report.spend[currency] = report.spend.get(currency, Decimal(0)) + amount
                for team, share_currency, share_amount in _team_shares(row.shares_json, row.team, currency, amount):
                    _add(report.by_team, team, share_currency, share_amount)
                _add(report.by_provider, row.provider, currency, amount)
                _add(
                    report.by_model, (row.provider, row.priced_model or row.model or "(billed line)"), currency, amount
                )
    finally:
        await database.dispose()


def _team_shares(shares_json: str, team: str, currency: str, amount: Decimal) -> list[tuple[str, str, Decimal]]:
    """Return each owner's part of a cost; a cost split between teams counts for each team by its share."""
    shares = json.loads(shares_json or "[]")
    if len(shares) <= 1:
        return [(team, currency, amount)]
    return [
        (share["allocation"]["team"], share["amount"]["currency"], Decimal(share["amount"]["amount"]))
        for share in shares
        if share.get("amount")
    ]


async def _read_unallocated(database: Database, tenant: str, report: Report) -> None:
    """Sum spend that no allocation rule owns, by currency and by the attribution key a rule could match."""
    table = CostLedgerEntry.__table__  # type: ignore[attr-defined]
    try:
        async with database.engine.connect() as connection:
            result = await connection.stream(
                select(
                    table.c.provider,
                    table.c.cost_amount,
                    table.c.cost_currency,
                    table.c.charge_category,
                    table.c.dimensions_json,
                ).where(
                    table.c.tenant == tenant,
                    table.c.team == "unallocated",
                    table.c.cost_amount.is_not(None),
                )
            )
            async for row in result:
                if row.charge_category not in SPEND_CATEGORIES:
                    continue
                report.unallocated[row.cost_currency] = (
                    report.unallocated.get(row.cost_currency, Decimal(0)) + row.cost_amount
                )
                _add(report.unallocated_by_source, _attribution_key(row), row.cost_currency, row.cost_amount)
    finally:
        await database.dispose()


def _attribution_key(row: Any) -> str:
    dimensions = json.loads(row.dimensions_json)
    for key in ("api_key_id", "project_id", "workspace_id", "account_id", "resource_id"):
        if dimensions.get(key):
            return f"{row.provider} {key}={dimensions[key]}"
    return f"{row.provider} (no attribution key)"


async def _read_reconciliation(database: Database, tenant: str, report: Report) -> None:
    table = Reconciliation.__table__  # type: ignore[attr-defined]
    try:
        async with database.engine.connect() as connection:
            rows = (
                await connection.execute(
                    select(table)
                    .where(table.c.tenant == tenant)
                    .order_by(table.c.provider, table.c.day, table.c.scope, table.c.model)
                )
            ).all()
    finally:
        await database.dispose()
    report.reconciliation = [
        {
            "provider": row.provider,
            "day": row.day,
            "scope": row.scope or None,
            "model": row.model or None,
            "currency": row.currency,
            "computed": str(row.computed_amount),
            "reported": str(row.reported_amount),
            "variance": str(row.variance_amount),
            "variance_percent": str(row.variance_percent) if row.variance_percent is not None else None,
            "within_tolerance": bool(row.within_tolerance),
            "likely_cause": row.likely_cause,
        }
        for row in rows
    ]


async def _read_findings(database: Database, tenant: str, report: Report) -> None:
    table = RiskFinding.__table__  # type: ignore[attr-defined]
    try:
        async with database.engine.connect() as connection:
            rows = (
                await connection.execute(
                    select(table).where(table.c.tenant == tenant).order_by(table.c.kind, table.c.subject, table.c.title)
                )
            ).all()
    finally:
        await database.dispose()
    report.findings = [
        {
            "finding_id": row.finding_id,
            "kind": row.kind,
            "severity": row.severity,
            "status": row.status,
            "subject": row.subject,
            "owner": row.owner,
            "title": row.title,
            "facts": json.loads(row.facts_json),
            "interpretation": row.interpretation,
            "revision": row.revision,
        }
        for row in rows
    ]


async def _read_unit_economics(database: Database, tenant: str, report: Report) -> None:
    try:
        report.unit_economics = await read_unit_economics(database, tenant)
    finally:
        await database.dispose()
    report.value_unlinked = [
        {
            "use_case": row["use_case"],
            "period": row["period"],
            "cost": row["cost"],
            "currency": row["currency"],
            "owner": row["owner"],
            "cost_events": row["cost_events"],
        }
        for row in report.unit_economics
        if not row["value_linked"]
    ]


async def _read_recommendations(database: Database, tenant: str, report: Report) -> None:
    try:
        report.recommendations = [view.as_json() for view in await list_recommendations(database, tenant)]
    finally:
        await database.dispose()


def _shown(amount: Decimal | str | None) -> str:
    if amount is None:
        return "-"
    value = Decimal(amount).quantize(DISPLAY_PLACES, rounding=ROUND_HALF_EVEN)
    return f"{value:,}"


def _money_cell(values: dict[str, Decimal]) -> str:
    return ", ".join(f"{_shown(amount)} {currency}" for currency, amount in sorted(values.items())) or "-"


def render_report(report: Report, console: Console) -> None:
    console.rule(f"aifinops report · tenant {report.tenant}")
    if report.uncosted_usage_events:
        console.print(
            Text.assemble(
                ("Partial figures:", "bold yellow"),
                f" {report.uncosted_usage_events} captured usage events have no cost yet, because allocation is "
                "behind or stopped; every total below leaves them out.",
            )
        )
    console.print(
        f"Cost events: {report.cost_events} ({report.priced_events} priced from the catalogue, "
        f"{report.provider_billed_events} billed lines, {report.unpriced_events} unpriced)"
    )
    console.print(
        f"Spend: {_money_cell(report.spend)}   Credits and refunds: {_money_cell(report.credits_and_refunds)}"
    )
    if report.unpriced_events:
        console.print(
            Text.assemble(
                ("Not in the totals:", "bold yellow"),
                f" {report.unpriced_events} unpriced usage events ({report.unpriced_tokens:,} tokens); "
                "see the unpriced-usage findings.",
            )
        )
    console.print("Amounts are rounded half-even to 4 decimal places; `aifinops report --json` gives exact values.\n")

    for title, values, header in (
        ("Spend by team", report.by_team, "team"),
        ("Spend by provider", report.by_provider, "provider"),
    ):
        table = Table(title=title, title_justify="left")
        table.add_column(header)
        table.add_column("spend", justify="right")
        for key, amounts in sorted(values.items(), key=lambda item: -sum(item[1].values())):
            table.add_row(key, _money_cell(amounts))
        console.print(table)

    table = Table(title="Spend by model", title_justify="left")
    table.add_column("provider")
    table.add_column("model")
    table.add_column("spend", justify="right")
    for (provider, model), amounts in sorted(report.by_model.items(), key=lambda item: -sum(item[1].values())):
        table.add_row(provider, model, _money_cell(amounts))
    console.print(table)

    console.print("Findings", style="bold")
    for finding in report.findings:
        status = "" if finding["status"] == "open" else f" [{finding['status'].replace('_', ' ')}]"
        console.print(
            Text.assemble(
                "- ",
                styled(finding["severity"], "bold"),
                visible(f"{status} {finding['kind']} {finding['subject']}: {finding['title']}"),
            ),
            highlight=False,
        )
        facts = ", ".join(f"{key}={value}" for key, value in finding["facts"].items())
        console.print(f"    facts: {facts}", highlight=False)
        console.print(f"    reading: {finding['interpretation']}", highlight=False)
    if not report.findings:
        console.print("none")
    console.print()

    render_unit_economics(report, console)
    render_recommendations(report, console)


def _percent(value: str | None) -> str:
    return "-" if value is None else f"{Decimal(value):,} %"


def render_unit_economics(report: Report, console: Console) -> None:
    """Print each use case month: cost per outcome, value, ROI, payback and the trend against the month before."""
    console.print(
        Text.assemble(
            ("Unit economics per use case", "bold"),
            " (ROI = (value − cost) / cost; payback = investment / net benefit)",
        )
    )
    linked = [row for row in report.unit_economics if row["value_linked"]]
    for row in linked:
        currency = row["currency"]
        owner = f" (owner {row['owner']})" if row["owner"] else ""
        console.print(
            Text.assemble("- ", styled(row["use_case"], "bold"), visible(f"{owner}, {row['period']}:")), highlight=False
        )
        baseline = (
            f" against a baseline of {_shown(row['baseline_cost_per_outcome'])} {currency}"
            if row["baseline_cost_per_outcome"] is not None
            else ""
        )
        console.print(
            f"    cost {_shown(row['cost'])} {currency} for {Decimal(row['outcomes']):,} {row['outcome_kind']}: "
            f"{_shown(row['cost_per_outcome'])} {currency} per outcome{baseline}",
            highlight=False,
        )
        if row["value"] is not None:
            payback = (
                f"{Decimal(row['payback_months']):,} months" if row["payback_months"] is not None else "no payback"
            )
            console.print(
                f"    value {_shown(row['value'])} {currency} ({row['value_source']}), "
                f"net {_shown(row['net_benefit'])} {currency}, ROI {_percent(row['roi_percent'])}, payback {payback}",
                highlight=False,
            )
        else:
            console.print("    value unknown: no outcome carried a value and the register gives none", highlight=False)
        if row["previous_cost_per_outcome"] is not None:
            console.print(
                f"    trend: cost per outcome {_percent(row['cost_per_outcome_change_percent'])} against "
                f"{row['previous_period']} ({_shown(row['previous_cost_per_outcome'])} {currency}); ROI was "
                f"{_percent(row['previous_roi_percent'])}",
                highlight=False,
            )
        else:
            console.print(f"    trend: no figures for {row['previous_period']}", highlight=False)
    if not linked:
        console.print("none")
    console.print(
        Text.assemble(
            ("Value-unlinked spend", "bold"), " (use cases with cost and no outcome recorded; risk raises these)"
        )
    )
    for row in report.value_unlinked:
        owner = f", owner {row['owner']}" if row["owner"] else ""
        console.print(
            f"- {row['use_case']} {row['period']}: {_shown(row['cost'])} {row['currency']} over "
            f"{row['cost_events']} cost events{owner}",
            highlight=False,
        )
    if not report.value_unlinked:
        console.print("none")
    console.print()


def render_recommendations(report: Report, console: Console) -> None:
    """Print every recommendation with its arithmetic, status and realised savings, largest first."""
    live = [item for item in report.recommendations if Decimal(item["estimated_monthly_savings"]) != 0]
    withdrawn = len(report.recommendations) - len(live)
    kinds = sorted({item["kind"] for item in live})
    console.print(
        Text.assemble(
            ("Recommendations", "bold"), visible(f" ({len(live)}, of {len(kinds)} kinds: {', '.join(kinds) or 'none'})")
        )
    )
    total: dict[str, Decimal] = {}
    for item in live:
        savings = Decimal(item["estimated_monthly_savings"])
        if item["status"] in ("open", "accepted"):
            total[item["currency"]] = total.get(item["currency"], Decimal(0)) + savings
        console.print(
            Text.assemble(
                "- ",
                styled(item["kind"], "bold"),
                visible(
                    f" {item['scope']}: saves about {_shown(savings)} {item['currency']} a month (confidence "
                    f"{item['confidence']}, {item['status']}, id {item['recommendation_id'][:8]})"
                ),
            ),
            highlight=False,
        )
        for line in item["arithmetic"].splitlines():
            console.print(f"    {line}", highlight=False)
        if item["caveat"]:
            console.print(f"    caveat: {item['caveat']}", highlight=False)
        if item["status_reason"]:
            console.print(f"    {item['status']} because: {item['status_reason']}", highlight=False)
        if item["ticket_requested"]:
            console.print("    ITSM ticket requested", highlight=False)
        if item["status"] == "implemented":
            console.print(
                f"    realised: {item['realised_arithmetic'] or 'not measured yet: no cost or seat data since then'}",
                highlight=False,
            )
    if withdrawn:
        console.print(f"{withdrawn} earlier recommendations no longer apply to the latest data (savings 0).")
    console.print(
        f"Estimated savings, open and accepted recommendations: {_money_cell(total)} a month. Recommendations on "
        "the same usage or seats overlap, so this sum is an upper bound."
    )
    console.print()
    render_tickets(report, console)
    render_unallocated(report, console)
    render_reconciliation(report, console)
    render_capture(report, console)


async def _read_tickets(database: Database, tenant: str, report: Report) -> None:
    """Add each finding's status and ITSM tickets, and the ticket work still waiting to be sent."""
    from services.risk.lifecycle import ticket_backlog
    from services.risk.tables import RiskTicket

    table = RiskTicket.__table__  # type: ignore[attr-defined]
    try:
        async with database.engine.connect() as connection:
            rows = (
                await connection.execute(
                    select(table).where(table.c.tenant == tenant).order_by(table.c.finding_id, table.c.system)
                )
            ).all()
        report.ticket_backlog = await ticket_backlog(database)
    finally:
        await database.dispose()
    by_finding: dict[str, list[str]] = defaultdict(list)
    for row in rows:
        by_finding[row.finding_id].append(f"{row.system}:{row.external_key}")
    report.tickets = [
        {
            "finding_id": finding["finding_id"],
            "status": finding["status"],
            "kind": finding["kind"],
            "severity": finding["severity"],
            "tickets": by_finding.get(finding["finding_id"], []),
        }
        for finding in report.findings
    ]


def render_tickets(report: Report, console: Console) -> None:
    """Print each finding's status and tickets, the ticket work still waiting, and the demo's ITSM check."""
    table = Table(title="Findings and their tickets", title_justify="left")
    for column in ("finding", "severity", "status", "kind", "tickets"):
        table.add_column(column, overflow="fold")
    for item in report.tickets:
        table.add_row(
            item["finding_id"][:8], item["severity"], item["status"], item["kind"], ", ".join(item["tickets"]) or "-"
        )
    console.print(table)
    backlog = report.ticket_backlog
    console.print(
        f"Ticket work waiting: {backlog.get('pending', 0)}, rejected by an ITSM system: {backlog.get('failed', 0)}"
    )
    check = report.itsm_check
    if check is None:
        return
    duplicates = check["duplicate_incidents"] + check["duplicate_issues"]
    if check["missing"] or duplicates:
        verdict = f"PROBLEM: {duplicates} duplicates; missing: {', '.join(check['missing']) or 'none'}"
    else:
        verdict = "no ticket lost, none duplicated"
    console.print(
        f"ITSM outage check: {check['findings_needing_tickets']} findings need tickets; the stand-in holds "
        f"{check['incidents']} incidents, {check['issues']} Jira issues and {check['webhook_tickets']} webhook "
        f"tickets: {verdict}",
        highlight=False,
    )


def render_unallocated(report: Report, console: Console) -> None:
    console.print()
    console.print(
        Text.assemble(
            ("Unallocated spend", "bold"), f" (no allocation rule owns it): {_money_cell(report.unallocated)}"
        )
    )
    if not report.unallocated:
        return
    table = Table(title="Unallocated spend by the key a rule could match", title_justify="left")
    table.add_column("source")
    table.add_column("spend", justify="right")
    ranked = sorted(report.unallocated_by_source.items(), key=lambda item: -sum(item[1].values()))
    for source, amounts in ranked[:10]:
        table.add_row(source, _money_cell(amounts))
    if len(ranked) > 10:
        table.add_row(f"… {len(ranked) - 10} more", "")
    console.print(table)


def render_reconciliation(report: Report, console: Console) -> None:
    console.print()
    if not report.reconciliation:
        console.print(Text.assemble(("Reconciliation", "bold"), ": no provider cost statements yet"))
        return
    table = Table(
        title="Reconciliation: computed cost against the provider's own statement",
        title_justify="left",
        box=box.SIMPLE_HEAD,
        padding=(0, 1),
    )
    table.add_column("day", no_wrap=True, min_width=10)
    table.add_column("provider and model")
    for column in ("computed", "reported", "variance", "%"):
        table.add_column(column, justify="right", no_wrap=True)
    for row in report.reconciliation:
        variance = f"{_shown(row['variance'])} {row['currency']}"
        table.add_row(
            row["day"],
            f"{row['provider']} {_scope_and_model(row)}",
            f"{_shown(row['computed'])} {row['currency']}",
            f"{_shown(row['reported'])} {row['currency']}",
            variance if row["within_tolerance"] else styled(variance, "bold yellow"),
            row["variance_percent"] or "-",
        )
    console.print(table)
    flagged = [row for row in report.reconciliation if not row["within_tolerance"]]
    console.print(f"Beyond tolerance: {len(flagged)} of {len(report.reconciliation)} comparisons")
    for row in flagged:
        where = f"{row['provider']} {row['day']} {_scope_and_model(row)}"
        console.print(f"- {where}: {row['likely_cause']}", highlight=False)


def _scope_and_model(row: dict[str, Any]) -> str:
    model = row["model"] or "all models"
    return f"{row['scope']} {model}" if row.get("scope") else model


async def _read_capture(database: Database, tenant: str, report: Report) -> None:
    """Summarise what ingest stored for the tenant, from its own tables (never from the cost ledger)."""
    events = IngestUsageEvent.__table__  # type: ignore[attr-defined]
    rejected = IngestRejectedRow.__table__  # type: ignore[attr-defined]
    by_format: dict[str, dict[str, int]] = defaultdict(dict)
    rejected_rows: dict[str, int] = {}
    statements: list[dict[str, Any]] = []
    try:
        async with database.engine.connect() as connection:
            counts = await connection.execute(
                select(events.c.source_format, events.c.event_type, func.count())
                .where(events.c.tenant == tenant)
                .group_by(events.c.source_format, events.c.event_type)
            )
            for source_format, event_type, count in counts:
                by_format[source_format][event_type] = int(count)
            rejections = await connection.execute(
                select(rejected.c.source_format, func.count())
                .where(rejected.c.tenant == tenant)
                .group_by(rejected.c.source_format)
            )
            rejected_rows = {source_format: int(count) for source_format, count in rejections}
            detail = await connection.execute(
                select(events.c.event_json).where(
                    events.c.tenant == tenant,
                    events.c.event_type.in_(
                        (
                            "provider_cost.reported",
                            "seat.activity_reported",
                            "seat.entitlement_reported",
                            "gpu.utilisation_reported",
                        )
                    ),
                )
            )
            statements = [json.loads(row.event_json) for row in detail]
    finally:
        await database.dispose()
    report.capture = {
        "events_by_format": {name: dict(sorted(types.items())) for name, types in sorted(by_format.items())},
        "rejected_rows_by_format": dict(sorted(rejected_rows.items())),
        "provider_cost_statements": _provider_costs(statements),
        "seats": _seats(statements),
        "gpu_utilisation": _gpus(statements),
    }


def _provider_costs(events: list[dict[str, Any]]) -> dict[str, dict[str, str]]:
    totals: dict[str, dict[str, Decimal]] = defaultdict(dict)
    for event in events:
        if event["event_type"] == "provider_cost.reported":
            _add(totals, event["provider"], event["amount"]["currency"], Decimal(event["amount"]["amount"]))
    return {
        provider: {currency: str(amount) for currency, amount in sorted(values.items())}
        for provider, values in sorted(totals.items())
    }


def _seats(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per licensed product: seats paid for and assigned in the latest snapshot, and those idle 30 days or more."""
    products: dict[tuple[str, str], dict[str, Any]] = {}
    for event in sorted(events, key=lambda item: item.get("as_of", "")):
        if event["event_type"] not in ("seat.activity_reported", "seat.entitlement_reported"):
            continue
        key = (event["vendor"], event["product"])
        entry = products.setdefault(
            key,
            {"vendor": key[0], "product": key[1], "as_of": None, "entitled": None, "assigned": 0, "idle_30_days": 0},
        )
        if entry["as_of"] != event["as_of"]:
            entry.update(as_of=event["as_of"], assigned=0, idle_30_days=0)
        if event["event_type"] == "seat.entitlement_reported":
            entry["entitled"] = event["entitled_seats"]
            continue
        entry["assigned"] += 1
        last = event.get("last_activity_at")
        as_of = datetime.fromisoformat(event["as_of"])
        if last is None or as_of - datetime.fromisoformat(last) >= timedelta(days=30):
            entry["idle_30_days"] += 1
    return [products[key] for key in sorted(products)]


def _gpus(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(
        (
            {
                "host": event["host"],
                "gpu_id": event["gpu_id"],
                "gpu_model": event.get("gpu_model"),
                "window_start": event["window_start"],
                "window_end": event["window_end"],
                "utilisation_percent": event["utilisation_percent"],
                "pod": event["dimensions"]["tags"].get("pod"),
            }
            for event in events
            if event["event_type"] == "gpu.utilisation_reported"
        ),
        key=lambda item: (item["host"], item["gpu_id"], item["window_start"]),
    )


def render_capture(report: Report, console: Console) -> None:
    """Print what ingest captured: events per format, rejected rows, cost statements, seats and GPUs."""
    capture = report.capture
    if not capture:
        return
    console.print()
    table = Table(title="Captured by ingest (events per format)", title_justify="left")
    table.add_column("format")
    table.add_column("events")
    table.add_column("rejected rows", justify="right")
    for source_format, types in capture["events_by_format"].items():
        described = ", ".join(f"{count} {event_type}" for event_type, count in types.items())
        table.add_row(source_format, described, str(capture["rejected_rows_by_format"].get(source_format, 0)))
    console.print(table)

    if capture["provider_cost_statements"]:
        console.print(
            "Provider cost statements (compared with computed cost, not added to spend): "
            + "; ".join(
                f"{provider} {', '.join(f'{_shown(amount)} {currency}' for currency, amount in values.items())}"
                for provider, values in capture["provider_cost_statements"].items()
            ),
            highlight=False,
        )

    for seat in capture["seats"]:
        console.print(
            f"Seats {seat['vendor']}/{seat['product']} as of {seat['as_of']}: {seat['entitled'] or '?'} paid, "
            f"{seat['assigned']} assigned, {seat['idle_30_days']} without activity for 30 days or more",
            highlight=False,
        )

    for gpu in capture["gpu_utilisation"]:
        console.print(
            f"GPU {gpu['gpu_model'] or gpu['gpu_id']} on {gpu['host']}"
            + (f" (pod {gpu['pod']})" if gpu["pod"] else "")
            + f": {Decimal(gpu['utilisation_percent']):.1f} % busy from {gpu['window_start']} to {gpu['window_end']}",
            highlight=False,
        )
