"""The pipeline report: spend, findings, unit economics and recommendations, read from each service's tables.

Every figure is summed exactly from stored Decimal rows; the printed report rounds
half-even to 4 decimal places and ``--json`` gives the exact values. Amounts in
different currencies are reported apart, never added together.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

from rich.console import Console
from rich.table import Table
from sqlalchemy import select

from services.allocation.tables import CostLedgerEntry
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
    value_unlinked: list[dict[str, Any]] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        def money_map(values: dict[str, Decimal]) -> dict[str, str]:
            return {currency: str(amount) for currency, amount in sorted(values.items())}

        return {
            "tenant": self.tenant,
            "cost_events": self.cost_events,
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
            "value_unlinked": self.value_unlinked,
        }


async def build_report(settings: ServiceSettings, tenant: str) -> Report:
    report = Report(tenant=tenant)
    await _read_ledger(Database(settings.database_url_for("allocation")), tenant, report)
    await _read_findings(Database(settings.database_url_for("risk")), tenant, report)
    await _read_unit_economics(Database(settings.database_url_for("value")), tenant, report)
    await _read_recommendations(Database(settings.database_url_for("optimizer")), tenant, report)
    return report


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
                ).where(table.c.tenant == tenant)
            )
            async for row in result:
                report.cost_events += 1
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
                _add(report.by_team, row.team, currency, amount)
                _add(report.by_provider, row.provider, currency, amount)
                _add(
                    report.by_model, (row.provider, row.priced_model or row.model or "(billed line)"), currency, amount
                )
    finally:
        await database.dispose()


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
    console.print(
        f"Cost events: {report.cost_events} ({report.priced_events} priced from the catalogue, "
        f"{report.provider_billed_events} billed lines, {report.unpriced_events} unpriced)"
    )
    console.print(
        f"Spend: {_money_cell(report.spend)}   Credits and refunds: {_money_cell(report.credits_and_refunds)}"
    )
    if report.unpriced_events:
        console.print(
            f"[bold yellow]Not in the totals:[/] {report.unpriced_events} unpriced usage events "
            f"({report.unpriced_tokens:,} tokens); see the unpriced-usage findings."
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

    console.print("[bold]Findings[/]")
    for finding in report.findings:
        console.print(
            f"- [bold]{finding['severity']}[/] {finding['kind']} {finding['subject']}: {finding['title']}",
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
        "[bold]Unit economics per use case[/] (ROI = (value − cost) / cost; payback = investment / net benefit)"
    )
    linked = [row for row in report.unit_economics if row["value_linked"]]
    for row in linked:
        currency = row["currency"]
        owner = f" (owner {row['owner']})" if row["owner"] else ""
        console.print(f"- [bold]{row['use_case']}[/]{owner}, {row['period']}:", highlight=False)
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
    console.print("[bold]Value-unlinked spend[/] (use cases with cost and no outcome recorded; risk raises these)")
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
    console.print(f"[bold]Recommendations[/] ({len(live)}, of {len(kinds)} kinds: {', '.join(kinds) or 'none'})")
    total: dict[str, Decimal] = {}
    for item in live:
        savings = Decimal(item["estimated_monthly_savings"])
        if item["status"] in ("open", "accepted"):
            total[item["currency"]] = total.get(item["currency"], Decimal(0)) + savings
        console.print(
            f"- [bold]{item['kind']}[/] {item['scope']}: saves about {_shown(savings)} {item['currency']} "
            f"a month (confidence {item['confidence']}, {item['status']}, id {item['recommendation_id'][:8]})",
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
