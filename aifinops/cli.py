"""The ``aifinops`` command line."""

from __future__ import annotations

import asyncio
import datetime
import getpass
import json
import signal
import sys
from pathlib import Path
from typing import Any

import click
import grpc
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn

from aifinops.console import SafeConsole
from shared.logging import configure_logging
from shared.settings import ServiceSettings

console = SafeConsole()
errors = SafeConsole(stderr=True)


def _settings() -> ServiceSettings:
    return ServiceSettings()


@click.group()
@click.option("--log-level", default="WARNING", show_default=True, help="Level of the log lines written to stderr.")
def main(log_level: str) -> None:
    """aifinops: capture AI usage, price and allocate it, review it for risk, map it to value, recommend savings.

    Commands read KAFKA_BOOTSTRAP_SERVERS, DATABASE_URL (else SQLite files under AIFINOPS_DATA_DIR)
    and AIFINOPS_TENANT from the environment; while `aifinops demo --keep-running` runs, unset ones come from
    its connection file, so every command works on the demo's data. Commands over the services' ops APIs
    (spend, showback, findings, budgets, recommendations, economics, value, prices, rules, dlq, imports) connect as
    aifinops/ops_client.py describes: AIFINOPS_<SERVICE>_GRPC and AIFINOPS_TOKEN, else that connection file.
    """
    configure_logging("cli", level=log_level)
    from aifinops.ops_client import apply_stack_environment

    apply_stack_environment()
    # Turn SIGTERM into SystemExit so that commands which started services stop them on the way out.
    signal.signal(signal.SIGTERM, lambda _signum, _frame: sys.exit(128 + signal.SIGTERM))


@main.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--format", "format_name", help="Input format; detected from the file when omitted.")
@click.option("--tenant", help="Tenant to record the usage for; defaults to AIFINOPS_TENANT.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@click.option(
    "--observed-at",
    help="When a snapshot without times of its own was taken (seat lists, GPU metric scrapes without "
    "timestamps), as an RFC 3339 timestamp with a zone, such as 2026-05-01T12:00:00Z.",
)
@click.option(
    "--currency",
    help="ISO 4217 currency of an export that has amounts but no currency column (some Azure exports, "
    "OpenCost); never overrides a stated currency.",
)
def import_command(
    file: Path,
    format_name: str | None,
    tenant: str | None,
    as_json: bool,
    observed_at: str | None,
    currency: str | None,
) -> None:
    """Import a provider export FILE; a re-import records nothing new.

    Exits 1 when any row was rejected (invalid, or a restatement of a recorded row), 2 when the file
    as a whole cannot be read.
    """
    from services.ingest.batch import import_file
    from services.ingest.importer import InvalidTenant
    from services.ingest.normalisers import FormatError, UnknownFormat
    from services.ingest.normalisers.base import RowRejected, currency_code, rfc3339

    settings = _settings()
    try:
        observed = rfc3339(observed_at, "--observed-at") if observed_at else None
        currency_name = currency_code(currency, "--currency") if currency else None
    except RowRejected as error:
        errors.print(f"error: {error.field_path} {error.reason}")
        sys.exit(2)
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
                    observed_at=observed,
                    currency=currency_name,
                )
            )
        except (UnknownFormat, InvalidTenant) as error:
            errors.print(f"error: {error}")
            sys.exit(2)
        except FormatError as error:
            errors.print(f"error: {file}: {error}{_detected_hint(file, format_name)}")
            sys.exit(2)
    summary = result.summary
    if as_json:
        console.print_json(json.dumps({**summary.as_dict(), "detected": result.detected}))
    else:
        how = "detected" if result.detected else "given"
        console.print(f"{file.name}: format {result.normaliser.format_name} ({how})")
        console.print(
            f"  read {summary.rows_read}, accepted {summary.accepted}, duplicate {summary.duplicates}, "
            f"rejected {summary.rejected} (conflicting {summary.conflicts}), empty {summary.empty}",
            highlight=False,
        )
        if summary.rejected > len(summary.rejections):
            console.print(
                f"  the first {len(summary.rejections)} rejected rows follow; all are in ingest_rejected_rows "
                "and on the dead-letter topic",
                highlight=False,
            )
        for rejection in summary.rejections:
            console.print(
                f"  rejected row {rejection.row_number}: {rejection.field_path}: {rejection.reason}", highlight=False
            )
        every_row_rejected = summary.rows_read > 0 and summary.rejected == summary.rows_read
        if every_row_rejected and format_name:
            console.print(f"  every row was rejected{_detected_hint(file, format_name)}", highlight=False)
        if summary.rows_read == 0:
            console.print(
                f"  {file.name} has no data rows (only a header, or an empty list), so nothing was imported",
                highlight=False,
            )
    if summary.rejected:
        sys.exit(1)


def _detected_hint(file: Path, format_name: str | None) -> str:
    """Suggest the detected format when the one given with --format failed, or return ''."""
    if not format_name:
        return ""
    from services.ingest.batch import choose_normaliser
    from services.ingest.normalisers import FormatError, UnknownFormat

    try:
        detected, _ = choose_normaliser(file, None)
    except (UnknownFormat, FormatError, OSError):
        return f"; check that the file is in format {format_name}"
    if detected.format_name == format_name:
        return ""
    return f"; the file looks like format {detected.format_name}, so leave out --format to import it as that"


@main.command("formats")
def formats_command() -> None:
    """List the input formats that import and the webhook understand."""
    from services.ingest.normalisers import NORMALISERS

    for name, normaliser in sorted(NORMALISERS.items()):
        console.print(f"{name:34} {normaliser.description}", highlight=False)


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
    from services.value.intake import ConflictingOutcomes
    from services.value.outcomes import OutcomeRejected

    settings = _settings()
    try:
        new, duplicate, rejected = asyncio.run(import_outcomes_file(file, settings, tenant or settings.tenant))
    except OutcomeRejected as error:
        errors.print(f"error: {file}: {error.field_path}: {error.reason}", markup=False, highlight=False)
        sys.exit(2)
    except ConflictingOutcomes as error:
        errors.print(
            f"error: {file}: {len(error.event_ids)} rows restate recorded outcome ids with other content; "
            "nothing was recorded. Give corrections a new outcome_id",
            markup=False,
            highlight=False,
        )
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
    from aifinops.report import build_report, known_tenants, render_report

    settings = _settings()
    report = asyncio.run(build_report(settings, tenant or settings.tenant))
    if not report.has_data:
        others = [name for name in asyncio.run(known_tenants(settings)) if name != report.tenant]
        hint = f"tenants with data: {', '.join(others)}" if others else "no tenant has data in these databases"
        errors.print(
            f"error: tenant {report.tenant!r} has no data (no captured usage, costs, findings, outcomes or "
            f"recommendations); {hint}. Name the tenant with --tenant or AIFINOPS_TENANT",
            highlight=False,
        )
        sys.exit(1)
    if as_json:
        console.print_json(json.dumps(report.as_json()))
    else:
        render_report(report, console)


@main.command("replay")
@click.option("--ingest-only", is_flag=True, help="Send only what ingest stored, not what the other services derived.")
def replay_command(ingest_only: bool) -> None:
    """Send every stored event again, for recovery after a broker lost its data.

    Every service's outbox is sent again in pipeline order (ingest, allocation, risk, value, optimizer).
    Consumers skip event ids they already stored, so a replay adds only what was lost.
    """
    from services.ingest.replay import PIPELINE_ORDER, replay_outboxes

    counts = asyncio.run(replay_outboxes(_settings(), ("ingest",) if ingest_only else PIPELINE_ORDER))
    for service, count in counts.items():
        console.print(f"{service}: replayed {count} events")


def _call(service: str, method: str, request: object) -> object:
    """Call one unary ops method; print the error and exit non-zero when it fails."""
    from aifinops.ops_client import Connection, OpsConnectionError

    async def run() -> object:
        connection = Connection.resolve()
        async with connection.channel(service) as channel:
            stub = _stub(service, channel)
            return await getattr(stub, method)(request, metadata=connection.metadata(), timeout=30)

    try:
        return asyncio.run(run())
    except OpsConnectionError as error:
        errors.print(f"error: {error}")
        sys.exit(2)
    except grpc.aio.AioRpcError as error:
        errors.print(f"error: {service} answered {error.code().name}: {error.details()}")
        sys.exit(1)


def _stub(service: str, channel: grpc.aio.Channel) -> object:
    from aifinops.ops_client import Connection

    return Connection().stub(service, channel)


def _print_messages(messages: list[object], columns: list[str], as_json: bool, title: str) -> None:
    from google.protobuf.json_format import MessageToDict
    from rich.table import Table

    if as_json:
        console.print_json(json.dumps([MessageToDict(m, preserving_proto_field_name=True) for m in messages]))
        return
    table = Table(title=title, title_justify="left")
    for column in columns:
        table.add_column(column)
    for message in messages:
        table.add_row(*(str(getattr(message, column)) for column in columns))
    console.print(table)


@main.group("dlq")
def dlq_group() -> None:
    """Dead letters: messages and rows a service could not process (through the ingest ops API)."""


@dlq_group.command("list")
@click.option("--consumer", default="", help="Only letters from this service or command.")
@click.option("--limit", default=50, show_default=True, help="Letters per page.")
@click.option("--page-token", default="", help="Token printed by the previous page.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def dlq_list(consumer: str, limit: int, page_token: str, as_json: bool) -> None:
    """List dead letters, newest first."""
    from shared.protos.ingest.v1 import ingest_pb2

    request = ingest_pb2.ListDeadLettersRequest(consumer=consumer, page_size=limit, page_token=page_token)
    response = _call("ingest", "ListDeadLetters", request)
    letters = list(response.dead_letters)  # type: ignore[attr-defined]
    _print_messages(letters, ["id", "consumer", "tenant", "failed_at", "field_path", "reason"], as_json, "Dead letters")
    if response.next_page_token and not as_json:  # type: ignore[attr-defined]
        console.print(f"next page: --page-token {response.next_page_token}")  # type: ignore[attr-defined]


@dlq_group.command("show")
@click.argument("letter_id")
def dlq_show(letter_id: str) -> None:
    """Print one dead letter with its original bytes; LETTER_ID may be a unique prefix of 6 or more characters."""
    from google.protobuf.json_format import MessageToDict

    from shared.protos.ingest.v1 import ingest_pb2

    letter = _call("ingest", "GetDeadLetter", ingest_pb2.GetDeadLetterRequest(id=letter_id))
    shown = MessageToDict(letter, preserving_proto_field_name=True)  # type: ignore[arg-type]
    shown["original_bytes"] = letter.original_bytes.decode("utf-8", errors="replace")  # type: ignore[attr-defined]
    console.print_json(json.dumps(shown))


@dlq_group.command("replay")
@click.argument("letter_id")
def dlq_replay(letter_id: str) -> None:
    """Send a dead letter's original bytes to its original topic again, once its cause is fixed.

    LETTER_ID may be a unique prefix of 6 or more characters.
    """
    from shared.protos.ingest.v1 import ingest_pb2

    response = _call("ingest", "ReplayDeadLetter", ingest_pb2.ReplayDeadLetterRequest(id=letter_id))
    console.print(f"replayed {letter_id} to {response.topic} at {response.replayed_at}")  # type: ignore[attr-defined]


@main.group("imports")
def imports_group() -> None:
    """File imports and webhook payloads with their status and counts (through the ingest ops API)."""


IMPORT_COLUMNS = ["import_id", "status", "channel", "file_name", "format", "started_at", "finished_at"]


@imports_group.command("list")
@click.option("--tenant", help="Tenant whose imports to list; defaults to AIFINOPS_TENANT.")
@click.option("--limit", default=50, show_default=True, help="Imports per page.")
@click.option("--page-token", default="", help="Token printed by the previous page.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def imports_list(tenant: str | None, limit: int, page_token: str, as_json: bool) -> None:
    """List imports, newest first. An import whose process was killed shows as interrupted."""
    from shared.protos.ingest.v1 import ingest_pb2

    request = ingest_pb2.ListImportsRequest(tenant=tenant or _settings().tenant, page_size=limit, page_token=page_token)
    response = _call("ingest", "ListImports", request)
    imports = list(response.imports)  # type: ignore[attr-defined]
    _print_messages(imports, [*IMPORT_COLUMNS, "rows_read", "accepted", "rejected"], as_json, "Imports")
    if response.next_page_token and not as_json:  # type: ignore[attr-defined]
        console.print(f"next page: --page-token {response.next_page_token}")  # type: ignore[attr-defined]


@imports_group.command("show")
@click.argument("import_id")
def imports_show(import_id: str) -> None:
    """Print one import with its status and counts."""
    from google.protobuf.json_format import MessageToDict

    from shared.protos.ingest.v1 import ingest_pb2

    found = _call("ingest", "GetImport", ingest_pb2.GetImportRequest(import_id=import_id))
    console.print_json(
        json.dumps(MessageToDict(found, preserving_proto_field_name=True, always_print_fields_with_no_presence=True))  # type: ignore[arg-type]
    )


@main.command("demo")
@click.option(
    "--run-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path(".aifinops/demo"),
    show_default=True,
    help="Folder for the demo's databases and logs; emptied first.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.option(
    "--keep-running", is_flag=True, help="Leave the services running after the report, for the other commands."
)
def demo_command(run_dir: Path, as_json: bool, keep_running: bool) -> None:
    """Run the five services on the sample provider files and print the report."""
    from aifinops.demo import run_demo

    sys.exit(asyncio.run(run_demo(run_dir, console, as_json=as_json, keep_running=keep_running)))


from aifinops.findings_cli import findings_group  # noqa: E402 - registered after the core commands

main.add_command(findings_group)


@main.group("prices")
def prices_group() -> None:
    """List, update, export and re-price the price catalogue.

    list, update, export and reload call the allocation service's ops API. import-litellm works on local files.
    """


@prices_group.command("reload")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@click.option(
    "--all",
    "everything",
    is_flag=True,
    help="Examine every cost, not only those priced under other files; re-splits proportional shared costs.",
)
def prices_reload(as_json: bool, everything: bool) -> None:
    """Re-price costs computed under other prices, terms or rules, through the allocation service.

    The service validates its price files first. Unpriced usage that now has a price is priced; changed costs
    are published again with a correction (old amount, new amount, reason). Running it twice changes nothing
    the second time. A progress bar shows the costs examined.
    """
    from aifinops.allocation_cli import print_reprice, reprice_with_progress

    print_reprice(reprice_with_progress(everything, as_json=as_json), as_json=as_json)


@prices_group.command("export")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--aliases", "aliases_file", type=click.Path(dir_okay=False, path_type=Path), help="Also write aliases.")
def prices_export(file: Path, aliases_file: Path | None) -> None:
    """Write the price catalogue in force to FILE as CSV, one row per price, readable and re-loadable.

    The rows come from the allocation service, price updates included. The aliases come from the local
    ALLOCATION_ALIASES_FILE, else the shipped alias table.
    """
    from aifinops.allocation_cli import price_rows, write_prices_csv

    prices = price_rows()
    write_prices_csv(prices, file)
    if aliases_file is not None:
        from services.allocation.settings import AllocationSettings
        from shared.catalogue import PriceCatalogue, aliases_csv

        settings = AllocationSettings()
        catalogue = PriceCatalogue.load(settings.prices_file, settings.aliases_file)
        aliases_file.write_text(aliases_csv(catalogue.aliases, f"aliases of price catalogue {catalogue.version}"))
    version = prices[0].catalogue_version if prices else "-"
    console.print(f"wrote {len(prices)} price rows of catalogue {version} to {file}")


@prices_group.command("list")
@click.option("--provider", help="Only this provider, such as openai.")
@click.option("--model", help="Only this model id, such as gpt-4o.")
@click.option("--json", "as_json", is_flag=True, help="Print the rows as JSON.")
def prices_list(provider: str | None, model: str | None, as_json: bool) -> None:
    """List the price rows in force, price updates included."""
    from aifinops.allocation_cli import list_prices

    list_prices(provider, model, as_json)


@prices_group.command("update")
@click.option("--provider", required=True, help="Provider, such as openai.")
@click.option("--model", required=True, help="Model id as the catalogue lists it, such as gpt-4o.")
@click.option("--bucket", required=True, help="Usage bucket, such as input_uncached_tokens or output_tokens.")
@click.option("--tier", default="standard", show_default=True, help="Service tier: standard, batch, flex, priority.")
@click.option("--price", required=True, help="Price per --per units, as a decimal number such as 2.50.")
@click.option("--currency", default="USD", show_default=True, help="ISO 4217 currency of the price.")
@click.option("--per", type=int, default=1_000_000, show_default=True, help="Units the price is for.")
@click.option(
    "--from",
    "start",
    required=True,
    help="Day (YYYY-MM-DD, midnight UTC) or RFC 3339 instant from which the price applies; the row open then "
    "is closed there, and a row starting then is corrected.",
)
@click.option("--source", help="Where the price comes from, such as a contract or a pricing page.")
@click.option("--by", "changed_by", default=getpass.getuser, show_default="the current user", help="Who changes it.")
@click.option("--no-reprice", is_flag=True, help="Store the price only; the service re-prices before its next batch.")
@click.option("--json", "as_json", is_flag=True, help="Print the results as JSON.")
def prices_update(
    provider: str,
    model: str,
    bucket: str,
    tier: str,
    price: str,
    currency: str,
    per: int,
    start: str,
    source: str | None,
    changed_by: str,
    no_reprice: bool,
    as_json: bool,
) -> None:
    """Change one price in the allocation service's catalogue, then re-price the costs it affects.

    The change is stored beside the catalogue file and outlives restarts.
    """
    from aifinops.allocation_cli import price_update, update_price

    update = price_update(provider, model, bucket, tier, price, currency, per, start, source)
    update_price(update, changed_by, reprice=not no_reprice, as_json=as_json)


@prices_group.command("import-litellm")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--effective-from",
    required=True,
    type=click.DateTime(formats=["%Y-%m-%d"]),
    help="Date (UTC, YYYY-MM-DD) from which the imported prices apply; changed prices close the old row there.",
)
@click.option(
    "--into",
    "target",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Catalogue CSV to merge into; defaults to the shipped catalogue.",
)
@click.option("--output", required=True, type=click.Path(dir_okay=False, path_type=Path), help="CSV file to write.")
@click.option("--provider", "providers", multiple=True, help="Import only this provider (repeatable), e.g. openai.")
def prices_import_litellm(
    file: Path, effective_from: datetime.datetime, target: Path | None, output: Path, providers: tuple[str, ...]
) -> None:
    """Merge LiteLLM's model price map FILE (model_prices_and_context_window.json) into a catalogue CSV."""
    from services.allocation.commands import import_litellm

    try:
        summary, skipped, read = import_litellm(
            file, target, effective_from=effective_from.date(), providers=set(providers) or None, output=output
        )
    except ValueError as error:
        errors.print(f"error: {error}", highlight=False)
        sys.exit(2)
    console.print(
        f"read {read} prices; added {summary.added}, changed {summary.changed}, unchanged {summary.unchanged}; "
        f"wrote {output}",
        highlight=False,
    )
    for model, reason in sorted(summary.rejected.items()):
        console.print(f"  rejected {model}: {reason}", highlight=False)
    for model, keys in sorted(skipped.items()):
        console.print(f"  skipped on {model}: {', '.join(sorted(keys))}", highlight=False)


@main.command("showback")
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
@click.option("--csv", "as_csv", is_flag=True, help="Print CSV, one row per period and group: a chargeback file.")
def showback_command(
    tenant: str | None,
    dimensions: tuple[str, ...],
    period: str,
    currency: str | None,
    start: datetime.datetime | None,
    end: datetime.datetime | None,
    as_csv: bool,
) -> None:
    """Print allocated cost by any dimensions and day or month, in the tenant's time zone.

    Credits and refunds are included as negative amounts. Use --csv for a chargeback file. `aifinops spend`
    takes the same options and more.
    """
    from aifinops.allocation_cli import print_spend, spend_rows
    from aifinops.api import tenant_of

    name = tenant_of(tenant)
    rows = spend_rows(name, dimensions, period, currency=currency, start=start, end=end)
    print_spend(rows, dimensions, name, as_csv=as_csv, as_json=False)


@main.group("export")
def export_group() -> None:
    """Exports of allocated cost for other tools."""


@export_group.command("focus")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--tenant", help="Tenant to export; defaults to AIFINOPS_TENANT.")
@click.option("--from", "start", type=click.DateTime(formats=["%Y-%m-%d"]), help="First UTC day included.")
@click.option("--to", "end", type=click.DateTime(formats=["%Y-%m-%d"]), help="First UTC day excluded.")
def export_focus_command(
    file: Path, tenant: str | None, start: datetime.datetime | None, end: datetime.datetime | None
) -> None:
    """Write allocated cost as a FOCUS 1.2 cost-and-usage CSV to FILE, corrections as ChargeClass Correction."""
    from services.allocation.commands import export_focus
    from services.allocation.settings import AllocationSettings

    settings = AllocationSettings()
    count = asyncio.run(
        export_focus(
            settings,
            tenant or settings.tenant,
            file,
            start=start.date() if start else None,
            end=end.date() if end else None,
        )
    )
    console.print(f"wrote {count} FOCUS rows to {file}")


@main.command("commitments")
@click.option("--tenant", help="Tenant to report on; defaults to AIFINOPS_TENANT.")
@click.option(
    "--as-of",
    type=click.DateTime(formats=["%Y-%m-%d"]),
    help="Day to project from (00:00 UTC); defaults to the data clock, the end of the tenant's newest usage.",
)
def commitments_command(tenant: str | None, as_of: datetime.datetime | None) -> None:
    """Show how much of each committed-spend contract usage has drawn down.

    Contracts come from ALLOCATION_TERMS_FILE and the spend commitments of RISK_CONTRACTS_FILE.
    """
    from aifinops.committed import committed_spend
    from services.allocation.commands import render_drawdowns
    from services.allocation.settings import AllocationSettings
    from services.risk.settings import RiskSettings

    settings = AllocationSettings()
    when = as_of.replace(tzinfo=datetime.UTC) if as_of else None
    try:
        now, results = asyncio.run(committed_spend(settings, tenant or settings.tenant, RiskSettings(), when))
    except ValueError as error:  # an invalid terms or contracts file, named in the message
        errors.print(f"error: {error}", highlight=False)
        sys.exit(2)
    render_drawdowns(results, console, as_of=now)


@main.group("recommendations")
def recommendations_group() -> None:
    """Savings recommendations: list them and move them through their lifecycle.

    A recommendation is open, accepted, dismissed (with a reason) or implemented. ID may be the full id or a
    unique prefix of at least 8 characters, as `list` prints it. The commands call the optimizer service's ops
    API, which stores each change and publishes it to the savings topic.
    """


def _by_option(function: Any) -> Any:
    return click.option(
        "--by", "changed_by", default=getpass.getuser, show_default="the current user", help="Who made the change."
    )(function)


def _tenant_option(function: Any) -> Any:
    return click.option("--tenant", help="Tenant of the recommendations; defaults to AIFINOPS_TENANT.")(function)


def _change_recommendation(method: str, tenant: str | None, recommendation_id: str, **fields: Any) -> Any:
    """Call one lifecycle method of the optimizer API and return the recommendation as it is now."""
    from aifinops.api import call, tenant_of
    from shared.protos.optimizer.v1 import optimizer_pb2

    request = optimizer_pb2.ChangeRecommendationRequest(
        tenant=tenant_of(tenant), recommendation_id=recommendation_id, **fields
    )
    return call("optimizer", method, request)


@recommendations_group.command("list")
@click.option("--status", type=click.Choice(["open", "accepted", "dismissed", "implemented"]), help="Only this status.")
@click.option("--kind", help="Only this kind, such as batch_tier or unused_seats.")
@_tenant_option
@click.option("--json", "as_json", is_flag=True, help="Print exact figures as JSON.")
def recommendations_list(status: str | None, kind: str | None, tenant: str | None, as_json: bool) -> None:
    """List recommendations, largest estimated monthly savings first."""
    from aifinops.api import every_page, print_json, tenant_of
    from shared.protos.optimizer.v1 import optimizer_pb2

    request = optimizer_pb2.ListRecommendationsRequest(
        tenant=tenant_of(tenant), status=status or "", kind=kind or "", page_size=500
    )
    found = every_page("optimizer", "ListRecommendations", request, "recommendations")
    if as_json:
        print_json(found)
        return
    for item in found:
        money = item.estimated_monthly_savings
        realised = ""
        if item.realised_monthly_savings:
            realised = f", realised {_plain(item.realised_monthly_savings)} {money.currency}"
        savings = f"{_plain(money.amount)} {money.currency}/month"
        console.print(
            f"{item.recommendation_id[:8]}  {item.status:<11} {item.kind:<17} {savings}{realised}  {item.scope}",
            highlight=False,
        )
    if not found:
        console.print("no recommendations")


def _plain(amount: str) -> str:
    """Write a decimal amount without trailing zeros or an exponent, as the recommendation list shows it."""
    from decimal import Decimal

    return f"{Decimal(amount).normalize():f}"


@recommendations_group.command("show")
@click.argument("recommendation_id")
@_tenant_option
@click.option("--json", "as_json", is_flag=True, help="Print exact figures as JSON.")
def recommendations_show(recommendation_id: str, tenant: str | None, as_json: bool) -> None:
    """Print one recommendation with its arithmetic, evidence, price rows and status history."""
    from aifinops.api import call, print_json, tenant_of
    from shared.protos.optimizer.v1 import optimizer_pb2

    request = optimizer_pb2.GetRecommendationRequest(tenant=tenant_of(tenant), recommendation_id=recommendation_id)
    view = call("optimizer", "GetRecommendation", request)
    if as_json:
        print_json(view)
        return
    money = view.estimated_monthly_savings
    console.print(f"{view.recommendation_id}  {view.kind}  {view.scope}", highlight=False)
    console.print(
        f"status {view.status} (revision {view.revision}), confidence {view.confidence}, saves about "
        f"{money.amount} {money.currency} a month",
        highlight=False,
    )
    for line in view.arithmetic.splitlines():
        console.print(f"  {line}", highlight=False)
    if view.caveat:
        console.print(f"caveat: {view.caveat}", highlight=False)
    if view.realised_arithmetic:
        console.print(view.realised_arithmetic, highlight=False)
    console.print(f"price rows: {', '.join(view.price_row_ids) or '-'}", highlight=False)
    evidence = list(view.evidence_event_ids)
    console.print(f"evidence: {len(evidence)} events, the first ten: {', '.join(evidence[:10])}", highlight=False)
    for step in view.history:
        reason = f": {step.reason}" if step.reason else ""
        console.print(
            f"  r{step.revision} {step.changed_at} {step.status} by {step.changed_by or '-'}{reason}", highlight=False
        )


def _status_command(name: str, method: str, summary: str) -> None:
    @recommendations_group.command(name, help=summary)
    @click.argument("recommendation_id")
    @_by_option
    @_tenant_option
    def command(recommendation_id: str, changed_by: str, tenant: str | None) -> None:
        view = _change_recommendation(method, tenant, recommendation_id, changed_by=changed_by)
        console.print(f"{view.recommendation_id}: {view.status} (revision {view.revision})", highlight=False)


_status_command("accept", "AcceptRecommendation", "Accept a recommendation: someone will act on it.")
_status_command(
    "implement",
    "ImplementRecommendation",
    "Mark a recommendation implemented; realised savings are measured from now on.",
)
_status_command("reopen", "ReopenRecommendation", "Reopen a dismissed recommendation.")


@recommendations_group.command("dismiss")
@click.argument("recommendation_id")
@click.option("--reason", required=True, help="Why the recommendation will not be acted on.")
@_by_option
@_tenant_option
def recommendations_dismiss(recommendation_id: str, reason: str, changed_by: str, tenant: str | None) -> None:
    """Dismiss a recommendation with a reason; new usage does not reopen it."""
    view = _change_recommendation(
        "DismissRecommendation", tenant, recommendation_id, changed_by=changed_by, reason=reason
    )
    console.print(f"{view.recommendation_id}: dismissed (revision {view.revision})", highlight=False)


@recommendations_group.command("ticket")
@click.argument("recommendation_id")
@_by_option
@_tenant_option
def recommendations_ticket(recommendation_id: str, changed_by: str, tenant: str | None) -> None:
    """Request an ITSM ticket for a recommendation; the risk service's connectors open it."""
    view = _change_recommendation("RequestTicket", tenant, recommendation_id, changed_by=changed_by)
    console.print(f"{view.recommendation_id}: ticket requested (revision {view.revision})", highlight=False)


@recommendations_group.command("measure")
@click.argument("recommendation_id")
@_tenant_option
def recommendations_measure(recommendation_id: str, tenant: str | None) -> None:
    """Measure an implemented recommendation's realised savings now."""
    view = _change_recommendation("MeasureRecommendation", tenant, recommendation_id)
    if not view.realised_monthly_savings:
        console.print("not measured yet: no cost or seat data since the recommendation was implemented")
    else:
        console.print(view.realised_arithmetic, highlight=False)


@main.command("economics")
@click.option("--use-case", help="Only this use case.")
@click.option("--tenant", help="Tenant to report on; defaults to AIFINOPS_TENANT.")
@click.option("--json", "as_json", is_flag=True, help="Print exact figures as JSON.")
def economics_command(use_case: str | None, tenant: str | None, as_json: bool) -> None:
    """Print unit economics per use case and month: cost per outcome, value, ROI, payback and trend."""
    _print_unit_economics(use_case, tenant, as_json)


def _print_unit_economics(use_case: str | None, tenant: str | None, as_json: bool) -> None:
    """Read unit economics from the value service's API and print them as the report does."""
    from aifinops.api import every_page, tenant_of
    from aifinops.report import Report, render_unit_economics
    from shared.protos.value.v1 import value_pb2

    name = tenant_of(tenant)
    request = value_pb2.ListUnitEconomicsRequest(tenant=name, use_case=use_case or "", page_size=500)
    rows = [_unit_economics_row(item) for item in every_page("value", "ListUnitEconomics", request, "unit_economics")]
    if as_json:
        console.print_json(json.dumps(rows))
        return
    unlinked = [
        {key: row[key] for key in ("use_case", "period", "cost", "currency", "owner", "cost_events")}
        for row in rows
        if not row["value_linked"]
    ]
    render_unit_economics(Report(tenant=name, unit_economics=rows, value_unlinked=unlinked), console)


def _unit_economics_row(item: Any) -> dict[str, Any]:
    """Turn a UnitEconomics message into the row the report renders, with None for unknown figures."""
    from aifinops.api import as_dict

    row: dict[str, Any] = {key: (value if value != "" else None) for key, value in as_dict(item).items()}
    cost = row.pop("cost")
    row.update(cost=cost["amount"], currency=cost["currency"], cost_events=int(row["cost_events"]))
    row["revision"] = int(row["revision"])
    return row


@main.group("value")
def value_group() -> None:
    """Value: what AI spend buys, per use case (through the value service's API)."""


@value_group.command("economics")
@click.option("--use-case", help="Only this use case.")
@click.option("--tenant", help="Tenant to report on; defaults to AIFINOPS_TENANT.")
@click.option("--json", "as_json", is_flag=True, help="Print exact figures as JSON.")
def value_economics(use_case: str | None, tenant: str | None, as_json: bool) -> None:
    """Print unit economics per use case and month: cost per outcome, value, ROI, payback and trend."""
    _print_unit_economics(use_case, tenant, as_json)


from aifinops.allocation_cli import rules_group, spend_command  # noqa: E402 - registered after the core commands
from aifinops.findings_cli import budgets_group  # noqa: E402

main.add_command(spend_command)
main.add_command(rules_group)
main.add_command(budgets_group)


if __name__ == "__main__":
    main()
