"""The ``aifinops`` command line."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

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
    if summary.rejected:
        sys.exit(1)


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
    """Send every stored ingest event again (usage, provider costs, seats, GPU), for recovery after a broker loss.

    Consumers skip event ids they already stored, so a replay adds only what was lost.
    """
    from services.ingest.replay import replay_usage_events

    count = asyncio.run(replay_usage_events(_settings()))
    console.print(f"replayed {count} ingest events")


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


if __name__ == "__main__":
    main()
