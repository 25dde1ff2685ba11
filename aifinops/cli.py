"""The ``aifinops`` command line."""

from __future__ import annotations

import asyncio
import getpass
import json
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn

from shared.logging import configure_logging
from shared.settings import ServiceSettings

console = Console()
errors = Console(stderr=True)


def _settings() -> ServiceSettings:
    return ServiceSettings()


@click.group()
@click.option("--log-level", default="WARNING", show_default=True, help="Level of the log lines written to stderr.")
def main(log_level: str) -> None:
    """aifinops: capture AI usage, price and allocate it, review it for risk, map it to value, recommend savings.

    Commands read KAFKA_BOOTSTRAP_SERVERS, DATABASE_URL (else SQLite files under AIFINOPS_DATA_DIR)
    and AIFINOPS_TENANT from the environment.
    """
    configure_logging("cli", level=log_level)


@main.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--format", "format_name", help="Input format; detected from the file when omitted.")
@click.option("--tenant", help="Tenant to record the usage for; defaults to AIFINOPS_TENANT.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
def import_command(file: Path, format_name: str | None, tenant: str | None, as_json: bool) -> None:
    """Import a provider export FILE; a re-import records nothing new. Exits 1 when any row was rejected."""
    from services.ingest.batch import import_file
    from services.ingest.normalisers import FormatError, UnknownFormat

    settings = _settings()
    with Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TimeRemainingColumn(),
        console=errors,
        transient=True,
        disable=as_json,
    ) as progress:
        task = progress.add_task(f"importing {file.name}", total=file.stat().st_size)
        try:
            result = asyncio.run(
                import_file(
                    file,
                    settings=settings,
                    tenant=tenant or settings.tenant,
                    format_name=format_name,
                    on_bytes=lambda size: progress.advance(task, size),
                )
            )
        except UnknownFormat as error:
            errors.print(f"error: {error}")
            sys.exit(2)
        except FormatError as error:
            errors.print(f"error: {file}: {error}")
            sys.exit(2)
    summary = result.summary
    if as_json:
        console.print_json(json.dumps({**summary.as_dict(), "detected": result.detected}))
    else:
        how = "detected" if result.detected else "given"
        console.print(f"{file.name}: format {result.normaliser.format_name} ({how})")
        console.print(
            f"  read {summary.rows_read}, accepted {summary.accepted}, duplicate {summary.duplicates}, "
            f"rejected {summary.rejected}, empty {summary.empty}"
        )
        for rejection in summary.rejections:
            console.print(
                f"  rejected row {rejection.row_number}: {rejection.field_path}: {rejection.reason}", highlight=False
            )
    if summary.rejected:
        sys.exit(1)


@main.command("formats")
def formats_command() -> None:
    """List the input formats that import and the webhook understand."""
    from services.ingest.normalisers import NORMALISERS

    for name, normaliser in sorted(NORMALISERS.items()):
        console.print(f"{name:28} {normaliser.description}", highlight=False)


@main.group("schemas")
def schemas_group() -> None:
    """Event schemas for downstream subscribers."""


@schemas_group.command("export")
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path), default=Path("schemas"))
def schemas_export(directory: Path) -> None:
    """Write one JSON Schema file per event type into DIRECTORY (default: ./schemas)."""
    from shared.events import SCHEMA_VERSION, event_json_schemas
    from shared.topics import EVENT_TOPICS

    directory.mkdir(parents=True, exist_ok=True)
    for event_type, schema in event_json_schemas().items():
        schema["$id"] = f"urn:aifinops:event:{event_type}:v{SCHEMA_VERSION}"
        schema["x-aifinops-topic"] = str(EVENT_TOPICS[event_type])
        path = directory / f"{event_type}.v{SCHEMA_VERSION}.schema.json"
        path.write_text(json.dumps(schema, indent=2, sort_keys=True) + "\n")
        console.print(f"wrote {path}")


@main.group("outcomes")
def outcomes_group() -> None:
    """Business outcomes that link cost to value."""


@outcomes_group.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--tenant", help="Tenant to record the outcomes for; defaults to AIFINOPS_TENANT.")
def outcomes_import(file: Path, tenant: str | None) -> None:
    """Import outcomes from a CSV FILE (use_case, outcome_kind, quantity, unit, occurred_at, ...)."""
    from services.value.files import import_outcomes_file
    from services.value.outcomes import OutcomeRejected

    settings = _settings()
    try:
        new, duplicate, rejected = asyncio.run(import_outcomes_file(file, settings, tenant or settings.tenant))
    except OutcomeRejected as error:
        errors.print(f"error: {file}: {error}")
        sys.exit(2)
    console.print(f"{file.name}: accepted {new}, duplicate {duplicate}, rejected {len(rejected)}")
    for error in rejected:
        console.print(f"  rejected row {error.index + 1}: {error.field_path}: {error.reason}", highlight=False)
    if rejected:
        sys.exit(1)


@main.command("report")
@click.option("--tenant", help="Tenant to report on; defaults to AIFINOPS_TENANT.")
@click.option("--json", "as_json", is_flag=True, help="Print exact figures as JSON.")
def report_command(tenant: str | None, as_json: bool) -> None:
    """Print spend, findings, unit economics and recommendations from the services' tables."""
    from aifinops.report import build_report, render_report

    settings = _settings()
    report = asyncio.run(build_report(settings, tenant or settings.tenant))
    if as_json:
        console.print_json(json.dumps(report.as_json()))
    else:
        render_report(report, console)


@main.command("replay")
def replay_command() -> None:
    """Send every stored usage event again, for recovery after a broker lost its data.

    Consumers skip event ids they already stored, so a replay adds only what was lost.
    """
    from services.ingest.replay import replay_usage_events

    count = asyncio.run(replay_usage_events(_settings()))
    console.print(f"replayed {count} usage events")


@main.command("demo")
@click.option(
    "--run-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path(".aifinops/demo"),
    show_default=True,
    help="Folder for the demo's databases and logs; emptied first.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def demo_command(run_dir: Path, as_json: bool) -> None:
    """Run the five services on the sample provider files and print the report."""
    from aifinops.demo import run_demo

    sys.exit(asyncio.run(run_demo(run_dir, console, as_json=as_json)))


@main.group("recommendations")
def recommendations_group() -> None:
    """Savings recommendations: list them and move them through their lifecycle.

    A recommendation is open, accepted, dismissed (with a reason) or implemented. ID may be the full id or a
    unique prefix of at least 8 characters, as `list` prints it. Changes are published to the savings topic;
    when the broker is down they are stored and the optimizer service sends them later.
    """


def _by_option(function: Any) -> Any:
    return click.option(
        "--by", "changed_by", default=getpass.getuser, show_default="the current user", help="Who made the change."
    )(function)


def _tenant_option(function: Any) -> Any:
    return click.option("--tenant", help="Tenant of the recommendations; defaults to AIFINOPS_TENANT.")(function)


def _run_lifecycle(action: Callable[..., Awaitable[Any]], *args: Any, **kwargs: Any) -> Any:
    """Run a lifecycle function against the optimizer's database and outbox; exit 2 on a rejected change."""
    from services.optimizer.lifecycle import LifecycleError, optimizer_outbox

    async def run() -> Any:
        async with optimizer_outbox(_settings()) as (database, outbox):
            return await action(database, outbox, *args, **kwargs)

    try:
        return asyncio.run(run())
    except LifecycleError as error:
        errors.print(f"error: {error}", soft_wrap=True)
        sys.exit(2)


@recommendations_group.command("list")
@click.option("--status", type=click.Choice(["open", "accepted", "dismissed", "implemented"]), help="Only this status.")
@click.option("--kind", help="Only this kind, such as batch_tier or unused_seats.")
@_tenant_option
@click.option("--json", "as_json", is_flag=True, help="Print exact figures as JSON.")
def recommendations_list(status: str | None, kind: str | None, tenant: str | None, as_json: bool) -> None:
    """List recommendations, largest estimated monthly savings first."""
    from services.optimizer.lifecycle import list_recommendations
    from services.optimizer.tables import TABLES as OPTIMIZER_TABLES
    from shared.db import Database

    settings = _settings()

    async def read() -> list[Any]:
        database = Database(settings.database_url_for("optimizer"))
        try:
            await database.create_tables(OPTIMIZER_TABLES)  # the optimizer may not have run yet
            return await list_recommendations(database, tenant or settings.tenant, status=status, kind=kind)
        finally:
            await database.dispose()

    views = asyncio.run(read())
    if as_json:
        console.print_json(json.dumps([view.as_json() for view in views]))
        return
    for view in views:
        realised = (
            f", realised {view.realised_amount.normalize():f} {view.currency}"
            if view.realised_amount is not None
            else ""
        )
        savings = f"{view.estimated_monthly_savings.normalize():f}"
        console.print(
            f"{view.recommendation_id[:8]}  {view.status:<11} {view.kind:<17} {savings} {view.currency}/month"
            f"{realised}  {view.scope}",
            highlight=False,
        )
    if not views:
        console.print("no recommendations")


@recommendations_group.command("show")
@click.argument("recommendation_id")
@_tenant_option
@click.option("--json", "as_json", is_flag=True, help="Print exact figures as JSON.")
def recommendations_show(recommendation_id: str, tenant: str | None, as_json: bool) -> None:
    """Print one recommendation with its arithmetic, evidence, price rows and status history."""
    from services.optimizer.lifecycle import LifecycleError, history, list_recommendations
    from services.optimizer.tables import TABLES as OPTIMIZER_TABLES
    from shared.db import Database

    settings = _settings()
    tenant = tenant or settings.tenant

    async def read() -> tuple[Any, list[dict[str, Any]]]:
        database = Database(settings.database_url_for("optimizer"))
        try:
            await database.create_tables(OPTIMIZER_TABLES)  # the optimizer may not have run yet
            steps = await history(database, tenant, recommendation_id)
            views = await list_recommendations(database, tenant)
        finally:
            await database.dispose()
        [view] = [view for view in views if view.recommendation_id.startswith(recommendation_id)]
        return view, steps

    try:
        view, steps = asyncio.run(read())
    except LifecycleError as error:
        errors.print(f"error: {error}", soft_wrap=True)
        sys.exit(2)
    if as_json:
        console.print_json(json.dumps({**view.as_json(), "history": steps}))
        return
    console.print(f"{view.recommendation_id}  {view.kind}  {view.scope}", highlight=False)
    console.print(
        f"status {view.status} (revision {view.revision}), confidence {view.confidence}, saves about "
        f"{view.estimated_monthly_savings} {view.currency} a month",
        highlight=False,
    )
    for line in view.arithmetic.splitlines():
        console.print(f"  {line}", highlight=False)
    if view.caveat:
        console.print(f"caveat: {view.caveat}", highlight=False)
    if view.realised_arithmetic:
        console.print(view.realised_arithmetic, highlight=False)
    console.print(f"price rows: {', '.join(view.price_rows) or '-'}", highlight=False)
    console.print(
        f"evidence: {len(view.evidence)} events, the first ten: {', '.join(view.evidence[:10])}", highlight=False
    )
    for step in steps:
        reason = f": {step['reason']}" if step["reason"] else ""
        console.print(
            f"  r{step['revision']} {step['changed_at']} {step['status']} by {step['changed_by'] or '-'}{reason}",
            highlight=False,
        )


def _status_command(name: str, status: str, summary: str) -> None:
    @recommendations_group.command(name, help=summary)
    @click.argument("recommendation_id")
    @_by_option
    @_tenant_option
    def command(recommendation_id: str, changed_by: str, tenant: str | None) -> None:
        from services.optimizer.lifecycle import change_status

        event = _run_lifecycle(change_status, tenant or _settings().tenant, recommendation_id, status, by=changed_by)
        console.print(f"{event.recommendation_id}: {event.status} (revision {event.revision})", highlight=False)


_status_command("accept", "accepted", "Accept a recommendation: someone will act on it.")
_status_command(
    "implement", "implemented", "Mark a recommendation implemented; realised savings are measured from now on."
)
_status_command("reopen", "open", "Reopen a dismissed recommendation.")


@recommendations_group.command("dismiss")
@click.argument("recommendation_id")
@click.option("--reason", required=True, help="Why the recommendation will not be acted on.")
@_by_option
@_tenant_option
def recommendations_dismiss(recommendation_id: str, reason: str, changed_by: str, tenant: str | None) -> None:
    """Dismiss a recommendation with a reason; new usage does not reopen it."""
    from services.optimizer.lifecycle import change_status

    event = _run_lifecycle(
        change_status, tenant or _settings().tenant, recommendation_id, "dismissed", by=changed_by, reason=reason
    )
    console.print(f"{event.recommendation_id}: dismissed (revision {event.revision})", highlight=False)


@recommendations_group.command("ticket")
@click.argument("recommendation_id")
@_by_option
@_tenant_option
def recommendations_ticket(recommendation_id: str, changed_by: str, tenant: str | None) -> None:
    """Request an ITSM ticket for a recommendation; the risk service's connectors open it."""
    from services.optimizer.lifecycle import request_ticket

    event = _run_lifecycle(request_ticket, tenant or _settings().tenant, recommendation_id, by=changed_by)
    console.print(f"{event.recommendation_id}: ticket requested (revision {event.revision})", highlight=False)


@recommendations_group.command("measure")
@click.argument("recommendation_id")
@_tenant_option
def recommendations_measure(recommendation_id: str, tenant: str | None) -> None:
    """Measure an implemented recommendation's realised savings now."""
    from services.optimizer.lifecycle import measure_now

    event = _run_lifecycle(measure_now, tenant or _settings().tenant, recommendation_id)
    if event.realised_monthly_savings is None:
        console.print("not measured yet: no cost or seat data since the recommendation was implemented")
    else:
        console.print(event.realised_arithmetic or "", highlight=False)


@main.command("economics")
@click.option("--use-case", help="Only this use case.")
@click.option("--tenant", help="Tenant to report on; defaults to AIFINOPS_TENANT.")
@click.option("--json", "as_json", is_flag=True, help="Print exact figures as JSON.")
def economics_command(use_case: str | None, tenant: str | None, as_json: bool) -> None:
    """Print unit economics per use case and month: cost per outcome, value, ROI, payback and trend."""
    from aifinops.report import Report, render_unit_economics
    from services.value.queries import read_unit_economics
    from services.value.tables import TABLES as VALUE_TABLES
    from shared.db import Database

    settings = _settings()
    tenant = tenant or settings.tenant

    async def read() -> list[dict[str, Any]]:
        database = Database(settings.database_url_for("value"))
        try:
            await database.create_tables(VALUE_TABLES)  # the value service may not have run yet
            return await read_unit_economics(database, tenant, use_case)
        finally:
            await database.dispose()

    rows = asyncio.run(read())
    if as_json:
        console.print_json(json.dumps(rows))
        return
    unlinked = [
        {key: row[key] for key in ("use_case", "period", "cost", "currency", "owner", "cost_events")}
        for row in rows
        if not row["value_linked"]
    ]
    render_unit_economics(Report(tenant=tenant, unit_economics=rows, value_unlinked=unlinked), console)


if __name__ == "__main__":
    main()
