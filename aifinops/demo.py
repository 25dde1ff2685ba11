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
import shutil
import signal
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import httpx
from rich.console import Console

from aifinops.itsm_demo import resolve_one_incident, run_itsm_outage
from aifinops.ops_client import write_connection_file
from aifinops.report import build_report, render_report
from aifinops.stack import Stack, StackConfig
from services.allocation.commands import commitments, render_drawdowns
from services.allocation.commitments import Drawdown
from services.allocation.settings import AllocationSettings
from services.ingest.batch import import_file
from services.value.outcomes import rows_from_csv

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
    "dcgm_exporter_scrapes_constructed.prom",
    "github_copilot_billing_seats_list.json",
)
WEBHOOK_SAMPLE = ("anthropic-usage-report", "anthropic_usage_webhook_2026-11.json")
OUTCOMES_FILE = "outcomes.csv"
REIMPORTED_FILE = "dashboard_export_usage_completions.tsv"
# OpenAI's own daily cost statement for the dashboard usage export's project, reconciled against computed cost.
PROVIDER_COST_FILE = "dashboard_export_costs_daily.tsv"
# The demo's usage is from 2025 and 2026; commitments are projected as of the end of the last sample month.
DEMO_AS_OF = datetime(2025, 10, 31, tzinfo=UTC)


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
    config = StackConfig(
        run_dir=run_dir,
        tenant=DEMO_TENANT,
        database_url=os.environ.get("DATABASE_URL") or None,
        bootstrap_servers=os.environ.get("KAFKA_BOOTSTRAP_SERVERS") or None,
        allocation_rules=examples / "config" / "allocation_rules.yaml",
        budgets=examples / "config" / "budgets.yaml",
        optimizer_policy=examples / "config" / "optimizer.yaml",
        risk_policy=examples / "config" / "policy.yaml",
        contracts=examples / "config" / "contracts.yaml",
        itsm_standin=True,
        allocation_terms=examples / "config" / "tenant_terms.yaml",
    )
    stack = Stack(config)
    say: Callable[..., None] = (lambda *_args, **_kwargs: None) if as_json else console.print
    try:
        say("[bold]Starting[/] the embedded broker and the five services ...")
        await stack.start()
        await feed_samples(stack, DEMO_TENANT, say)
        await feed_provider_costs(stack, DEMO_TENANT, say)
        say("Waiting until every topic and outbox is drained ...")
        await stack.wait_until_drained()
        tickets = await run_itsm_outage(stack, DEMO_TENANT, say)
        await resolve_one_incident(stack, DEMO_TENANT, say)
        await stack.wait_until_drained()
        report = await build_report(stack.settings(), DEMO_TENANT)
        report.itsm_check = tickets.__dict__
        drawn = await demo_commitments(stack, config)
        if as_json:
            console.print_json(json.dumps(report.as_json()))
        else:
            console.print()
            render_report(report, console)
            render_drawdowns(drawn, console, as_of=DEMO_AS_OF)
            console.print(f"\nLogs and databases of this run: {run_dir}/")
        if keep_running:
            await _serve_until_interrupted(stack, run_dir, console)
    finally:
        stack.stop()
    return 0


async def _serve_until_interrupted(stack: Stack, run_dir: Path, console: Console) -> None:
    """Keep the stack up and tell the CLI where it is, until Ctrl-C or SIGTERM."""
    targets = {name: stack.grpc_target(name) for name in stack.processes}
    write_connection_file(run_dir / "connection.json", targets, stack.tokens["admin"])
    console.print(
        f"\nThe services keep running (tenant {DEMO_TENANT}); in another terminal try\n"
        f"  .venv/bin/aifinops dlq list\n"
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
        outcomes = list(rows_from_csv((examples / "data" / OUTCOMES_FILE).read_bytes()))
        response = await client.post(
            stack.url("value", "/v1/outcomes"), json=outcomes, headers={"x-aifinops-tenant": tenant}
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


async def demo_commitments(stack: Stack, config: StackConfig) -> list[Drawdown]:
    settings = AllocationSettings(
        KAFKA_BOOTSTRAP_SERVERS=stack.bootstrap_servers,
        DATABASE_URL=config.database_url,
        AIFINOPS_DATA_DIR=str(stack.data_dir),
        ALLOCATION_TERMS_FILE=str(config.allocation_terms) if config.allocation_terms else None,
    )
    return await commitments(settings, DEMO_TENANT, DEMO_AS_OF)
