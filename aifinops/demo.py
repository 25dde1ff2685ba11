"""The demo: the five services on real sample provider files, end to end, then the report.

Steps: start the broker and the services, import the sample files through the
batch path, post one usage payload to the webhook and the outcomes to the value
API, import one file a second time (it must record nothing new), wait until every
topic and outbox is drained, print the report, stop everything.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import httpx
from rich.console import Console

from aifinops.report import build_report, render_report
from aifinops.stack import Stack, StackConfig
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


def examples_dir() -> Path:
    """Return the examples folder of a source checkout, where the demo's sample files live."""
    root = Path(__file__).resolve().parent.parent / "examples"
    if not root.is_dir():
        raise FileNotFoundError(f"sample files not found at {root}; run the demo from a checkout of the repository")
    return root


async def run_demo(run_dir: Path, console: Console, *, as_json: bool = False) -> int:
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
    )
    stack = Stack(config)
    say: Callable[..., None] = (lambda *_args, **_kwargs: None) if as_json else console.print
    try:
        say("[bold]Starting[/] the embedded broker and the five services ...")
        await stack.start()
        await feed_samples(stack, DEMO_TENANT, say)
        say("Waiting until every topic and outbox is drained ...")
        await stack.wait_until_drained()
        report = await build_report(stack.settings(), DEMO_TENANT)
    finally:
        stack.stop()

    if as_json:
        console.print_json(json.dumps(report.as_json()))
    else:
        console.print()
        render_report(report, console)
        console.print(f"\nLogs and databases of this run: {run_dir}/")
    return 0


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
