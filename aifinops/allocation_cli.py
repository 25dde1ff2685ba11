"""Spend, prices, re-pricing and allocation rules on the command line, over the allocation ops API.

``aifinops spend`` and ``aifinops showback`` stream spend rows, ``aifinops prices`` lists, exports and updates
the price catalogue and re-prices with a progress bar, and ``aifinops rules`` lists the allocation rules.
"""

from __future__ import annotations

import csv
import datetime
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

import click
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from aifinops.api import (
    STREAM_TIMEOUT_S,
    as_dict,
    call,
    collect,
    console,
    errors,
    every_page,
    print_json,
    run,
    stream_messages,
    tenant_of,
)
from aifinops.ops_client import Connection
from shared.catalogue import parse_price_row, price_rows_csv
from shared.protos.allocation.v1 import allocation_pb2
from shared.protos.common.v1 import common_pb2

SPEND_CATEGORIES = ("usage", "purchase", "tax", "adjustment")
REPRICE_TIMEOUT_S = 3600.0


def spend_rows(
    tenant: str,
    dimensions: tuple[str, ...],
    period: str,
    *,
    currency: str | None = None,
    start: datetime.datetime | None = None,
    end: datetime.datetime | None = None,
    time_zone: str | None = None,
    categories: tuple[str, ...] = (),
) -> list[Any]:
    request = allocation_pb2.StreamSpendRequest(
        tenant=tenant, dimensions=list(dimensions), period=period, currency=currency or "",
        start_day=start.date().isoformat() if start else "", end_day=end.date().isoformat() if end else "",
        time_zone=time_zone or "", charge_categories=list(categories),
    )  # fmt: skip
    return collect("allocation", "StreamSpend", request)


def print_spend(rows: list[Any], dimensions: tuple[str, ...], tenant: str, *, as_csv: bool, as_json: bool) -> None:
    """Print spend rows as a table, a chargeback CSV or JSON; list amounts left in their own currency."""
    if as_json:
        print_json(rows)
        return
    if as_csv:
        writer = csv.DictWriter(sys.stdout, fieldnames=["period", *dimensions, "currency", "amount"])
        writer.writeheader()
        for row in rows:
            writer.writerow(
                {"period": row.period, **row.dimensions, "currency": row.amount.currency, "amount": row.amount.amount}
            )
        return
    zone = rows[0].time_zone if rows else "-"
    table = Table(title=f"Allocated cost · tenant {tenant} · {zone}", title_justify="left")
    for column in ("period", *dimensions, "amount"):
        table.add_column(column, justify="right" if column == "amount" else "left")
    totals: dict[str, Decimal] = {}
    for row in rows:
        table.add_row(
            row.period, *(row.dimensions[name] for name in dimensions), f"{row.amount.amount} {row.amount.currency}"
        )
        totals[row.amount.currency] = totals.get(row.amount.currency, Decimal(0)) + Decimal(row.amount.amount)
    console.print(table)
    console.print("total: " + (", ".join(f"{amount} {code}" for code, amount in sorted(totals.items())) or "none"))
    unconverted: dict[str, Decimal] = {}
    for row in rows:
        if row.unconverted:
            code = row.amount.currency
            unconverted[code] = unconverted.get(code, Decimal(0)) + Decimal(row.amount.amount)
    for code, amount in sorted(unconverted.items()):
        console.print(f"no exchange rate to the reporting currency: {amount} {code} listed in {code}", highlight=False)


def reprice_with_progress(everything: bool, *, as_json: bool) -> Any:
    """Run a re-pricing through the API and show its progress; return the last progress message."""

    async def work(connection: Connection) -> Any:
        last = None
        columns = (
            TextColumn("re-pricing"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("corrected {task.fields[corrected]}"),
            TimeElapsedColumn(),
        )
        with Progress(*columns, console=errors, transient=True, disable=as_json) as progress:
            task = progress.add_task("re-pricing", total=None, corrected=0)
            request = allocation_pb2.RepriceRequest(all=everything)
            async for message in stream_messages(
                connection, "allocation", "Reprice", request, timeout=REPRICE_TIMEOUT_S
            ):
                progress.update(task, total=message.total, completed=message.examined, corrected=message.corrected)
                last = message
        return last

    return run(work)


def print_reprice(result: Any, *, as_json: bool) -> None:
    if as_json:
        print_json(result)
        return
    console.print(f"price book {result.version} (catalogue {result.catalogue_version})", highlight=False)
    console.print(
        f"  examined {result.examined}, corrected {result.corrected}, unchanged {result.unchanged}, "
        f"credits added {result.credits_added}",
        highlight=False,
    )


def price_rows(provider: str | None = None, model: str | None = None) -> list[Any]:
    request = allocation_pb2.StreamPricesRequest(provider=provider or "", model=model or "")
    return collect("allocation", "StreamPrices", request, timeout=STREAM_TIMEOUT_S)


def write_prices_csv(prices: list[Any], path: Path) -> None:
    """Write streamed price rows as a catalogue CSV that the allocation service can load back."""
    rows = [
        parse_price_row(
            {
                "provider": price.provider,
                "model": price.model,
                "bucket": price.bucket,
                "service_tier": price.service_tier,
                "unit_price": price.unit_price.amount,
                "price_per": str(price.price_per),
                "currency": price.unit_price.currency,
                "effective_from": price.effective_from,
                "effective_to": price.effective_to,
                "source": price.source,
                "region": price.region,
                "context_over": str(price.context_over) if price.context_over else "",
                "context_measure": price.context_measure,
            },  # fmt: skip
            f"row {price.row_id}",
        )
        for price in prices
    ]
    version = prices[0].catalogue_version if prices else "empty"
    header = (
        f"aifinops price catalogue {version}, exported {datetime.datetime.now(datetime.UTC).date().isoformat()}.\n"
        "unit_price is in currency per price_per units of the bucket; effective_to is exclusive."
    )
    path.write_text(price_rows_csv(rows, header))


@click.command("spend")
@click.option("--tenant", help="Tenant to report on; defaults to AIFINOPS_TENANT.")
@click.option(
    "--by",
    "dimensions",
    multiple=True,
    default=("team",),
    show_default=True,
    help="Dimension to group by (repeatable): team, cost_centre, product, use_case, environment, rule_id, provider, "
    "model, service_tier, charge_category, project_id, api_key_id, workspace_id, user_id, account_id, resource_id, "
    "or tag:<key>.",
)
@click.option("--period", type=click.Choice(["day", "month", "total"]), default="month", show_default=True)
@click.option("--currency", help="Reporting currency; defaults to the tenant's, else each amount's own currency.")
@click.option("--from", "start", type=click.DateTime(formats=["%Y-%m-%d"]), help="First local day included.")
@click.option("--to", "end", type=click.DateTime(formats=["%Y-%m-%d"]), help="First local day excluded.")
@click.option("--time-zone", help="IANA time zone that days and months are cut in; defaults to the tenant's.")
@click.option(
    "--category",
    "categories",
    multiple=True,
    type=click.Choice(["usage", "purchase", "tax", "adjustment", "credit", "refund"]),
    help="Only this charge category (repeatable); every category when omitted.",
)
@click.option(
    "--spend-only", is_flag=True, help="Only usage, purchase, tax and adjustment, as the report's spend counts."
)
@click.option("--csv", "as_csv", is_flag=True, help="Print CSV, one row per period and group: a chargeback file.")
@click.option("--json", "as_json", is_flag=True, help="Print the rows as JSON.")
def spend_command(
    tenant: str | None,
    dimensions: tuple[str, ...],
    period: str,
    currency: str | None,
    start: datetime.datetime | None,
    end: datetime.datetime | None,
    time_zone: str | None,
    categories: tuple[str, ...],
    spend_only: bool,
    as_csv: bool,
    as_json: bool,
) -> None:
    """Print allocated cost by any dimensions and day or month, in the tenant's or a given time zone.

    Credits and refunds are included as negative amounts unless --spend-only or --category leaves them out.
    """
    name = tenant_of(tenant)
    chosen = categories or (SPEND_CATEGORIES if spend_only else ())
    rows = spend_rows(
        name, dimensions, period, currency=currency, start=start, end=end, time_zone=time_zone, categories=chosen
    )
    print_spend(rows, dimensions, name, as_csv=as_csv, as_json=as_json)


def list_prices(provider: str | None, model: str | None, as_json: bool) -> None:
    prices = price_rows(provider, model)
    if as_json:
        print_json(prices)
        return
    table = Table(title=f"{len(prices)} price rows", title_justify="left")
    for column in ("provider", "model", "tier", "bucket", "price", "per", "from", "to", "region", "updated"):
        table.add_column(column, justify="right" if column in ("price", "per") else "left", overflow="fold")
    for price in prices:
        table.add_row(
            price.provider, price.model, price.service_tier, price.bucket,
            f"{price.unit_price.amount} {price.unit_price.currency}", f"{price.price_per:,}",
            price.effective_from[:10], price.effective_to[:10] or "-", price.region or "-",
            "yes" if price.updated else "",
        )  # fmt: skip
    console.print(table)
    if prices:
        console.print(f"catalogue {prices[0].catalogue_version}", highlight=False)


def update_price(update: allocation_pb2.PriceUpdate, changed_by: str, *, reprice: bool, as_json: bool) -> None:
    response = call(
        "allocation", "UpdatePrices", allocation_pb2.UpdatePricesRequest(updates=[update], changed_by=changed_by)
    )
    result = reprice_with_progress(False, as_json=as_json) if reprice else None
    if as_json:
        print_json({"update": as_dict(response), "reprice": as_dict(result) if result is not None else None})
        return
    console.print(
        f"catalogue {response.catalogue_version}: added {response.added}, closed {response.closed}, "
        f"corrected {response.corrected}, unchanged {response.unchanged}",
        highlight=False,
    )
    if result is not None:
        print_reprice(result, as_json=False)
    else:
        console.print("costs are re-priced before the allocation service's next batch, or run `aifinops prices reload`")


def price_update(
    provider: str,
    model: str,
    bucket: str,
    tier: str,
    price: str,
    currency: str,
    per: int,
    start: str,
    source: str | None,
) -> allocation_pb2.PriceUpdate:
    return allocation_pb2.PriceUpdate(
        provider=provider, model=model, bucket=bucket, service_tier=tier,
        unit_price=common_pb2.Money(amount=price, currency=currency), price_per=per, effective_from=start,
        source=source or "",
    )  # fmt: skip


@click.group("rules")
def rules_group() -> None:
    """The allocation rules in force, from the allocation service."""


@rules_group.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print the rules as JSON.")
def rules_list(as_json: bool) -> None:
    """List the allocation rules in match order: the first rule whose conditions all hold decides the owner."""
    rules = every_page(
        "allocation", "ListAllocationRules", allocation_pb2.ListAllocationRulesRequest(page_size=500), "rules"
    )
    if as_json:
        print_json(rules)
        return
    table = Table(title=f"{len(rules)} allocation rules", title_justify="left")
    for column in ("#", "id", "match", "owner or pool"):
        table.add_column(column, overflow="fold")
    for rule in rules:
        match = [f"{key}={value}" for key, value in sorted(rule.conditions.items())]
        match += [f"tag:{key}={value}" for key, value in sorted(rule.tags.items())]
        owner = (
            f"split to pool {rule.pool}"
            if rule.pool
            else ", ".join(f"{key}={value}" for key, value in sorted(rule.allocation.items()) if key != "rule_id")
        )
        table.add_row(str(rule.position), rule.rule_id, ", ".join(match) or "(everything)", owner)
    console.print(table)
