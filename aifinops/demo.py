"""The demo: the five services on real sample provider files, end to end, then the report.

Steps: start the broker, the ITSM stand-in and the services. Import the sample files
through the batch path, post one usage payload to the webhook and the outcomes to the
value API, and import one file a second time (it must record nothing new). Wait until
every topic and outbox is drained. Stop the ITSM stand-in while more usage raises
findings, start it again and check that every ticket arrived once. Print the report and
stop everything.
"""

from __future__ import annotations

import asyncio
import json
import os
import shlex
import shutil
import signal
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from rich.console import Console
from rich.text import Text

from aifinops.committed import committed_spend
from aifinops.itsm_demo import resolve_one_incident, run_itsm_outage
from aifinops.ops_client import write_connection_file
from aifinops.report import build_report, render_report
from aifinops.stack import Stack, StackConfig
from services.allocation.commands import render_drawdowns
from services.allocation.commitments import Drawdown
from services.allocation.settings import AllocationSettings
from services.ingest.batch import import_file
from services.optimizer.lifecycle import (
    change_status,
    list_recommendations,
    optimizer_outbox,
    request_ticket,
)
from services.risk.settings import RiskSettings
from services.value.files import import_outcomes_file
from services.value.outcomes import rows_from_csv
from shared.db import create_scratch_database
from shared.events import (
    EventEnvelope,
    GpuUtilisationReported,
    SeatActivityReported,
    SeatEntitlementReported,
    parse_event,
    utc_now,
)
from shared.kafka import EventPublisher, OutgoingEvent
from shared.settings import ServiceSettings
from shared.topics import EVENT_TOPICS

DEMO_TENANT = "demo"

# Sample files imported in this order; see examples/data/SOURCES.md for where each comes from.
SAMPLE_FILES = (
    "spec_example_usage_completions.json",
    "cookbook_real_usage_completions_buckets.json",
    "dashboard_export_usage_completions.tsv",
    "docs_example_usage_report_messages.json",
    "focus_1.0_sample_trimmed.csv",
    "cookbook_real_costs_buckets.json",
    "litellm_spend_logs_payload.json",
    "aws_cur2_bedrock_gpu_constructed.csv",
    "azure_cost_export_openai_constructed.csv",
    "gcp_billing_export_vertex_ai_constructed.ndjson",
    "cloudevents_gpu_cluster_constructed.json",
)
# NOTE: the ingest tests import the Copilot seat list and DCGM scrapes from examples/data; the demo leaves them out
# because its seat and GPU reports (SEAT_AND_GPU_REPORTS) describe one fleet linked to the FOCUS GPU rows, and a
# second, unrelated snapshot of the same seats and GPUs would replace it as the latest.
WEBHOOK_SAMPLE = ("anthropic-usage-report", "anthropic_usage_webhook_2026-11.json")
OUTCOMES_FILE = "outcomes.csv"
REIMPORTED_FILE = "dashboard_export_usage_completions.tsv"
# OpenAI's own daily cost statement for the dashboard usage export's project, reconciled against computed cost.
PROVIDER_COST_FILE = "dashboard_export_costs_daily.tsv"
# Value and optimizer samples (examples/data/SOURCES.md says where each comes from). The usage file is the
# month of support usage before the webhook's, the outcome file its outcomes, and the reports are events.
VALUE_USAGE_FILE = "anthropic_usage_support_2026-10.json"
VALUE_OUTCOMES_FILE = "outcomes_support_2026-10.csv"
SEAT_AND_GPU_REPORTS = "seat_and_gpu_reports.json"


def examples_dir() -> Path:
    """Return the examples folder of a source checkout, where the demo's sample files live."""
    root = Path(__file__).resolve().parent.parent / "examples"
    if not root.is_dir():
        raise FileNotFoundError(f"sample files not found at {root}; run the demo from a checkout of the repository")
    return root


async def run_demo(run_dir: Path, console: Console, *, as_json: bool = False, keep_running: bool = False) -> int:
    examples = examples_dir()
    if run_dir.exists():
        shutil.rmtree(run_dir)
    database_url = None
    server = ServiceSettings(DATABASE_URL=os.environ.get("DATABASE_URL") or None).database_url
    if server:
        # A database of its own, so a second demo on the same server never meets the first one's findings.
        database_url, _name = await create_scratch_database(server, prefix="aifinops_demo")
    config = StackConfig(
        run_dir=run_dir,
        tenant=DEMO_TENANT,
        database_url=database_url,
        bootstrap_servers=os.environ.get("KAFKA_BOOTSTRAP_SERVERS") or None,
        allocation_rules=examples / "config" / "allocation_rules.yaml",
        budgets=examples / "config" / "budgets.yaml",
        optimizer_policy=examples / "config" / "optimizer.yaml",
        risk_policy=examples / "config" / "policy.yaml",
        contracts=examples / "config" / "contracts.yaml",
        itsm_standin=True,
        allocation_terms=examples / "config" / "tenant_terms.yaml",
        use_cases=examples / "config" / "use_cases.yaml",
    )
    stack = Stack(config)
    say: Callable[..., None] = (lambda *_args, **_kwargs: None) if as_json else console.print
    try:
        say(Text.assemble(("Starting", "bold"), " the embedded broker and the five services ..."))
        await stack.start()
        await feed_samples(stack, DEMO_TENANT, say)
        await feed_provider_costs(stack, DEMO_TENANT, say)
        await feed_value_and_optimizer_samples(stack, DEMO_TENANT, say)
        say("Waiting until every topic and outbox is drained ...")
        await stack.wait_until_drained()
        tickets = await run_itsm_outage(stack, DEMO_TENANT, say)
        await resolve_one_incident(stack, DEMO_TENANT, say)
        await walk_recommendation_lifecycle(stack, DEMO_TENANT, say)
        await stack.wait_until_drained()
        report = await build_report(stack.settings(), DEMO_TENANT)
        report.itsm_check = tickets.__dict__
        as_of, drawn = await demo_commitments(stack, config)
        if as_json:
            console.print_json(json.dumps(report.as_json()))
        else:
            console.print()
            render_report(report, console)
            render_drawdowns(drawn, console, as_of=as_of)
            env_file = write_demo_env(stack, run_dir)
            console.print(f"\nLogs and databases of this run: {run_dir}/")
            console.print(
                f"To query them after the demo stops: set -a; . {env_file}; set +a; .venv/bin/aifinops report",
                highlight=False,
            )
        if keep_running:
            await _serve_until_interrupted(stack, run_dir, console)
    finally:
        stack.stop()
    return 0


def demo_environment(stack: Stack) -> dict[str, str]:
    """The settings under which the CLI's commands read and write the demo's data."""
    wanted = ("KAFKA_BOOTSTRAP_SERVERS", "DATABASE_URL", "AIFINOPS_DATA_DIR", "AIFINOPS_TENANT")
    environment = {
        name: value
        for name, value in stack.environment().items()
        if name in wanted
        or name.endswith("_FILE")
        and name.split("_")[0] in ("ALLOCATION", "RISK", "VALUE", "OPTIMIZER")
    }
    environment["AIFINOPS_DATA_DIR"] = str(stack.data_dir.resolve())
    return environment


def write_demo_env(stack: Stack, run_dir: Path) -> Path:
    """Write the demo's settings as KEY=value lines a shell can source, to query its data after it stopped."""
    environment = {name: value for name, value in demo_environment(stack).items() if name != "KAFKA_BOOTSTRAP_SERVERS"}
    path = run_dir / "demo.env"
    path.write_text("".join(f"{name}={shlex.quote(value)}\n" for name, value in sorted(environment.items())))
    return path


async def _serve_until_interrupted(stack: Stack, run_dir: Path, console: Console) -> None:
    """Keep the stack up and tell the CLI where it is, until Ctrl-C or SIGTERM."""
    targets = {name: stack.grpc_target(name) for name in stack.processes}
    write_connection_file(
        run_dir / "connection.json", targets, stack.tokens["admin"], DEMO_TENANT, demo_environment(stack)
    )
    console.print(
        f"\nThe services keep running (tenant {DEMO_TENANT}); in another terminal try\n"
        f"  .venv/bin/aifinops dlq list\n"
        f"  .venv/bin/aifinops spend --by team --period total\n"
        f"  .venv/bin/aifinops findings list\n"
        f"Ops gRPC targets: {', '.join(f'{name} {target}' for name, target in targets.items())}\n"
        "Press Ctrl-C to stop them."
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    await stop.wait()
    (run_dir / "connection.json").unlink(missing_ok=True)


async def feed_samples(stack: Stack, tenant: str, say: Callable[..., None]) -> None:
    """Send every sample through its real entry point: file imports, the webhook and the outcomes API."""
    examples = examples_dir()
    settings = stack.settings()

    for name in SAMPLE_FILES:
        result = await import_file(examples / "data" / name, settings=settings, tenant=tenant)
        summary = result.summary
        say(
            f"imported {name}: format {result.normaliser.format_name} (detected), read {summary.rows_read}, "
            f"accepted {summary.accepted}, duplicate {summary.duplicates}, rejected {summary.rejected}, "
            f"empty {summary.empty}",
            highlight=False,
        )

    format_name, file_name = WEBHOOK_SAMPLE
    async with httpx.AsyncClient(timeout=30) as client:
        body = (examples / "data" / file_name).read_bytes()
        response = await client.post(
            stack.url("ingest", f"/v1/usage/{format_name}"),
            content=body,
            headers=stack.webhook_headers(body, tenant),
        )
        response.raise_for_status()
        say(
            f"webhook {file_name}: HTTP {response.status_code}, accepted {response.json()['accepted']}", highlight=False
        )
        outcomes = json.dumps(list(rows_from_csv((examples / "data" / OUTCOMES_FILE).read_bytes()))).encode()
        response = await client.post(
            stack.url("value", "/v1/outcomes"),
            content=outcomes,
            headers={**stack.webhook_headers(outcomes, tenant), "content-type": "application/json"},
        )
        response.raise_for_status()
        say(
            f"outcomes {OUTCOMES_FILE}: HTTP {response.status_code}, accepted {response.json()['accepted']}",
            highlight=False,
        )

    again = await import_file(examples / "data" / REIMPORTED_FILE, settings=settings, tenant=tenant)
    say(
        f"re-imported {REIMPORTED_FILE}: accepted {again.summary.accepted}, "
        f"duplicate {again.summary.duplicates} (nothing new is recorded)",
        highlight=False,
    )


async def feed_provider_costs(stack: Stack, tenant: str, say: Callable[..., None]) -> None:
    """Import OpenAI's daily cost statement, which allocation reconciles with the cost it computed from usage."""
    path = examples_dir() / "data" / PROVIDER_COST_FILE
    result = await import_file(path, settings=stack.settings(), tenant=tenant)
    say(f"imported {PROVIDER_COST_FILE}: accepted {result.summary.accepted} daily statements", highlight=False)


async def demo_commitments(stack: Stack, config: StackConfig) -> tuple[datetime, list[Drawdown]]:
    """Return the data clock and the drawdown of every spend commitment in the tenant terms and contracts files."""
    settings = AllocationSettings(
        KAFKA_BOOTSTRAP_SERVERS=stack.bootstrap_servers,
        DATABASE_URL=config.database_url,
        AIFINOPS_DATA_DIR=str(stack.data_dir),
        ALLOCATION_TERMS_FILE=str(config.allocation_terms) if config.allocation_terms else None,
    )
    # These settings read RISK_TIME_ZONE from the environment the stack passes on to risk, so both use one zone.
    risk = RiskSettings(RISK_CONTRACTS_FILE=str(config.contracts) if config.contracts else None)
    return await committed_spend(settings, DEMO_TENANT, risk)


async def feed_value_and_optimizer_samples(stack: Stack, tenant: str, say: Callable[..., None]) -> None:
    """Send the samples behind unit economics trends, commitments, GPU and seat recommendations."""
    examples = examples_dir() / "data"
    settings = stack.settings()
    result = await import_file(examples / VALUE_USAGE_FILE, settings=settings, tenant=tenant)
    say(
        f"imported {VALUE_USAGE_FILE}: format {result.normaliser.format_name} (detected), "
        f"accepted {result.summary.accepted}, duplicate {result.summary.duplicates}",
        highlight=False,
    )
    new, duplicate, rejected = await import_outcomes_file(examples / VALUE_OUTCOMES_FILE, settings, tenant)
    say(f"imported outcomes {VALUE_OUTCOMES_FILE}: accepted {new}, duplicate {duplicate}, rejected {len(rejected)}")
    reports = await publish_sample_reports(stack, tenant, examples / SEAT_AND_GPU_REPORTS)
    say(f"published {reports} seat and GPU reports from {SEAT_AND_GPU_REPORTS}")


async def publish_sample_reports(stack: Stack, tenant: str, path: Path) -> int:
    """Publish the seat and GPU report events of a sample file on their topics, for one tenant.

    These reports normally come from the ingest service's seat and GPU telemetry imports. The file contains the
    events those imports produce, so the demo does not depend on them.
    """
    events = []
    for item in json.loads(path.read_text()):
        event = parse_event(json.dumps({**item, "tenant": tenant, "correlation_id": f"demo:{path.name}"}))
        events.append(event)
    await _publish(stack, events)
    return len(events)


async def _publish(stack: Stack, events: Sequence[EventEnvelope]) -> None:
    outgoing = []
    for event in events:
        if isinstance(event, SeatActivityReported | SeatEntitlementReported):
            key = f"{event.vendor}:{event.product}"
        elif isinstance(event, GpuUtilisationReported):
            key = f"gpu:{event.host}:{event.gpu_id}"
        else:
            raise ValueError(
                f"{event.event_id}: the sample reports hold seat and GPU reports only, not {event.EVENT_TYPE}"
            )
        outgoing.append(OutgoingEvent.of(EVENT_TOPICS[event.EVENT_TYPE], event, key=key))
    publisher = EventPublisher(stack.bootstrap_servers, client_id="aifinops-demo")
    await publisher.start()
    try:
        await publisher.publish(outgoing)
    finally:
        await publisher.stop()


async def walk_recommendation_lifecycle(stack: Stack, tenant: str, say: Callable[..., None]) -> None:
    """Dismiss, accept and implement a recommendation each, request a ticket, then report the seats removed."""
    async with optimizer_outbox(stack.settings()) as (database, outbox):
        found = {(view.kind, view.scope): view for view in await list_recommendations(database, tenant)}
        steps = [
            (
                ("cheaper_model", "team:document-ai model:openai/gpt-4o tier:standard"),
                "dismissed",
                "gpt-4o-mini missed invoice fields on the sample set",
            ),
            (("batch_tier", "team:document-ai use_case:document-extraction model:openai/gpt-5-mini"), "accepted", None),
            (("unused_seats", "seats:github/github-copilot"), "implemented", None),
        ]
        for key, status, reason in steps:
            view = found.get(key)
            if view is None:
                say(f"no {key[0]} recommendation for {key[1]}; lifecycle step skipped", style="yellow")
                continue
            if view.status == status:  # an earlier demo run on the same database already took this step
                say(
                    f"recommendation {view.recommendation_id[:8]} ({key[0]} {key[1]}): already {status}",
                    highlight=False,
                )
                continue
            await change_status(database, outbox, tenant, view.recommendation_id, status, by="demo", reason=reason)
            say(f"recommendation {view.recommendation_id[:8]} ({key[0]} {key[1]}): {status}", highlight=False)
            if status == "accepted":
                await request_ticket(database, outbox, tenant, view.recommendation_id, by="demo")
                say(f"recommendation {view.recommendation_id[:8]}: ITSM ticket requested", highlight=False)
    # The 11 unused Copilot seats are octocat's idle seat and the 10 paid seats that were not assigned. After they are
    # removed, the next seat report lists octokitten alone and one entitled seat. It is dated after the
    # implementation, because realised savings count only reports taken after it. The seat list and the totals
    # carry the same date, so risk and the optimizer read them as one report.
    now = utc_now()
    as_of = now + timedelta(seconds=1)
    common = {
        "occurred_at": now,
        "source": "demo.sample-reports",
        "tenant": tenant,
        "correlation_id": "demo:lifecycle",
        "vendor": "github",
        "product": "github-copilot",
        "as_of": as_of,
    }
    totals = SeatEntitlementReported(
        event_id=f"demo-seats:github-copilot:totals:{as_of.isoformat()}",
        entitled_seats=1,
        active_seats=1,
        inactive_seats=0,
        pending_cancellation_seats=1,
        evidence={"format": "synthetic-seat-report"},
        **common,
    )
    remaining = SeatActivityReported(
        event_id=f"demo-seats:github-copilot:octokitten:{as_of.isoformat()}",
        seat_holder="octokitten",
        last_activity_at=datetime(2021, 10, 13, 6, 53, 32, tzinfo=UTC),
        pending_cancellation_date="2021-11-01",
        evidence={"format": "synthetic-seat-report"},
        **common,
    )
    await _publish(stack, [remaining, totals])
    say(
        f"published a later seat report as of {as_of.date().isoformat()}: 1 entitled GitHub Copilot seat, "
        "octokitten's, pending cancellation",
        highlight=False,
    )
