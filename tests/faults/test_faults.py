"""Break the running pipeline on purpose and check that nothing is lost and nothing is counted twice.

Every scenario sends the same workload (the demo samples plus a generated usage export of 1,000 rows) into a fresh
stack on its own database, disturbs it, waits until every topic and outbox is drained and compares the report,
exactly, with the report of an undisturbed run: ledger totals to the cent and below, spend per team, provider and
model, every finding's figures, unit economics and every recommendation with its arithmetic.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, text

from aifinops.itsm_demo import check_tickets
from aifinops.stack import SERVICES, Stack, StackConfig
from services.ingest.replay import replay_outboxes
from shared.db import Database
from shared.kafka import EventPublisher, OutgoingEvent, ensure_topics
from shared.outbox import outbox_table
from tests.conftest import EXAMPLES
from tests.faults.conftest import PrivatePostgres
from tests.faults.workload import (
    assert_same_report,
    drained_report,
    run_and_report,
    total_spend,
    write_usage_export,
)

pytestmark = pytest.mark.faults

TENANT = "faults"
EXPORT_ROWS = 1000
PROGRESS_TABLES = {
    "ingest": "ingest_usage_events",
    "allocation": "allocation_cost_ledger",
    "risk": "risk_cost_entries",
    "value": "value_cost_entries",
    "optimizer": "optimizer_usage",
}

StackFactory = Callable[[str], Awaitable[Stack]]


@pytest.fixture(scope="module")
def export(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_usage_export(tmp_path_factory.mktemp("workload") / "usage_export.tsv", EXPORT_ROWS)


@pytest.fixture
async def new_stack(private_postgres: PrivatePostgres, tmp_path: Path) -> AsyncIterator[StackFactory]:
    stacks: list[Stack] = []

    async def create(name: str) -> Stack:
        database_url = await asyncio.to_thread(private_postgres.new_database)
        stack = Stack(StackConfig(
            run_dir=tmp_path / name, tenant=TENANT, database_url=database_url,
            allocation_rules=EXAMPLES / "config" / "allocation_rules.yaml",
            budgets=EXAMPLES / "config" / "budgets.yaml",
            optimizer_policy=EXAMPLES / "config" / "optimizer.yaml",
        ))  # fmt: skip
        stacks.append(stack)
        await stack.start()
        return stack

    yield create
    for stack in stacks:
        stack.stop()


@pytest.fixture(scope="module")
def baseline_store() -> dict[str, Any]:
    return {}


@pytest.fixture
async def baseline(new_stack: StackFactory, export: Path, baseline_store: dict[str, Any]) -> dict[str, Any]:
    if "report" not in baseline_store:
        stack = await new_stack("baseline")
        baseline_store["report"] = await run_and_report(stack, TENANT, export)
    return baseline_store["report"]


async def rows_in(stack: Stack, service: str) -> int:
    database = Database(stack.settings().database_url_for(service))
    try:
        async with database.engine.connect() as connection:
            return int(
                (await connection.execute(text(f"SELECT count(*) FROM {PROGRESS_TABLES[service]}"))).scalar_one()
            )
    except Exception:  # the table may not exist yet, or the database may be restarting
        return 0
    finally:
        await database.dispose()


async def wait_for_rows(stack: Stack, service: str, at_least: int, timeout_s: float = 120) -> None:
    for _ in range(int(timeout_s / 0.05)):
        if await rows_in(stack, service) >= at_least:
            return
        await asyncio.sleep(0.05)
    raise TimeoutError(f"{service} stored fewer than {at_least} rows within {timeout_s} s")


async def test_undisturbed_runs_agree(new_stack: StackFactory, export: Path, baseline: dict[str, Any]) -> None:
    report = await run_and_report(await new_stack("again"), TENANT, export)
    assert_same_report(report, baseline)
    assert report["cost_events"] > EXPORT_ROWS  # the demo samples and every generated row
    assert total_spend(report) > 0


@pytest.mark.parametrize("service", ["allocation", "risk", "value", "optimizer", "ingest"])
async def test_service_killed_mid_batch(
    new_stack: StackFactory, export: Path, baseline: dict[str, Any], service: str
) -> None:
    stack = await new_stack(f"kill-{service}")

    async def kill_and_restart() -> None:
        await wait_for_rows(stack, service, 150)
        stack.stop_service(service, kill=True)
        await asyncio.sleep(1.0)
        stack.start_service(service)
        await stack.wait_ready((service,), timeout_s=60)

    report = await run_and_report(stack, TENANT, export, kill_and_restart)
    assert await rows_in(stack, "allocation") >= EXPORT_ROWS  # the kill happened while work remained
    assert_same_report(report, baseline)


async def test_postgres_restart(
    new_stack: StackFactory, export: Path, baseline: dict[str, Any], private_postgres: PrivatePostgres
) -> None:
    stack = await new_stack("postgres-restart")

    async def restart_database() -> None:
        await wait_for_rows(stack, "allocation", 300)
        await asyncio.to_thread(private_postgres.stop, "immediate")
        await asyncio.sleep(2.0)
        await asyncio.to_thread(private_postgres.start)

    report = await run_and_report(stack, TENANT, export, restart_database)
    assert_same_report(report, baseline)


async def test_broker_lost_then_replayed(new_stack: StackFactory, export: Path, baseline: dict[str, Any]) -> None:
    stack = await new_stack("broker-loss")

    async def lose_broker() -> None:
        await wait_for_rows(stack, "allocation", 300)
        stack.restart_broker()  # a fresh broker: every topic, record and offset is gone
        await ensure_topics(stack.bootstrap_servers)

    await run_and_report(stack, TENANT, export, lose_broker)
    replayed = await replay_outboxes(stack.settings())
    assert replayed["ingest"] > EXPORT_ROWS
    assert replayed["allocation"] > EXPORT_ROWS  # at least one cost event per generated usage row
    assert_same_report(await drained_report(stack, TENANT), baseline)


async def test_every_event_three_times_out_of_order(
    new_stack: StackFactory, export: Path, baseline: dict[str, Any]
) -> None:
    stack = await new_stack("triplicates")
    await run_and_report(stack, TENANT, export)
    publisher = EventPublisher(stack.bootstrap_servers, client_id="fault-triplicates")
    await publisher.start()
    try:
        for service in SERVICES:
            database = Database(stack.settings().database_url_for(service))
            table = outbox_table(service)
            async with database.engine.connect() as connection:
                rows = (await connection.execute(select(table))).all()
            await database.dispose()
            events = [
                OutgoingEvent(row.topic, row.key, row.value, row.event_id, row.event_type, row.correlation_id)
                for row in rows
            ]
            resent = events * 2
            random.Random(11).shuffle(resent)
            for start in range(0, len(resent), 2000):
                await publisher.publish(resent[start : start + 2000])
    finally:
        await publisher.stop()
    assert_same_report(await drained_report(stack, TENANT), baseline)


async def test_itsm_down_for_a_while(
    private_postgres: PrivatePostgres, tmp_path: Path, export: Path, baseline: dict[str, Any]
) -> None:
    database_url = await asyncio.to_thread(private_postgres.new_database)
    stack = Stack(StackConfig(
        run_dir=tmp_path / "itsm-down", tenant=TENANT, database_url=database_url,
        allocation_rules=EXAMPLES / "config" / "allocation_rules.yaml",
        budgets=EXAMPLES / "config" / "budgets.yaml",
        optimizer_policy=EXAMPLES / "config" / "optimizer.yaml",
        itsm_standin=True,
    ))  # fmt: skip
    try:
        await stack.start()
        stack.stop_itsm_standin()  # down before the first finding: every ticket has to wait in the outbox
        report = await run_and_report(stack, TENANT, export)
        await asyncio.sleep(5.0)  # several failed delivery attempts with backoff
        waiting = await stack.ticket_backlog()
        assert waiting["pending"] > 0
        await stack.start_itsm_standin()
        await stack.wait_until_tickets_sent(timeout_s=120)
        check = await check_tickets(stack, TENANT)
    finally:
        stack.stop()
    assert check.findings_needing_tickets > 0
    assert check.missing == []  # every finding that needs a ticket has one in ServiceNow, Jira and the webhook
    assert check.duplicate_incidents == 0
    assert check.duplicate_issues == 0
    assert check.incidents == check.findings_needing_tickets
    assert check.issues == check.findings_needing_tickets
    # The baseline ran without an ITSM system, so everything but the tickets must match it.
    without_tickets = ("tickets", "ticket_backlog")
    assert_same_report(
        {key: value for key, value in report.items() if key not in without_tickets},
        {key: value for key, value in baseline.items() if key not in without_tickets},
    )


@pytest.mark.parametrize("service", ["allocation", "value"])
async def test_service_stopped_gracefully_mid_batch(
    new_stack: StackFactory, export: Path, baseline: dict[str, Any], service: str
) -> None:
    stack = await new_stack(f"sigterm-{service}")
    exits: list[tuple[int | None, float]] = []

    async def stop_and_restart() -> None:
        await wait_for_rows(stack, service, 150)
        started = asyncio.get_running_loop().time()
        code = await asyncio.to_thread(stack.stop_service, service)  # SIGTERM, then SIGKILL after 30 s
        exits.append((code, asyncio.get_running_loop().time() - started))
        stack.start_service(service)
        await stack.wait_ready((service,), timeout_s=60)

    report = await run_and_report(stack, TENANT, export, stop_and_restart)
    ((code, seconds),) = exits
    assert code == 0  # it stopped by itself, not by the SIGKILL that follows 30 s of waiting
    assert seconds < 30
    assert_same_report(report, baseline)
